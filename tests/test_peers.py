"""The simulated Wyoming peers (TTS, satellite), driven by plain `wyoming` clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.pipeline import RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from wyoming_realtime_text.simulator import SimulatedSatellite, SimulatedTts
from wyoming_realtime_text.simulator.tts import Fault

pytestmark = pytest.mark.timeout(10)

MIC_BYTES_PER_MS = 32  # 16 kHz, 16-bit, mono
TIMEOUT = 2.0


def speech(ms: int) -> bytes:
    """Stand-in microphone audio whose byte order is checkable."""
    return (bytes(range(256)) * (ms * MIC_BYTES_PER_MS // 256 + 1))[: ms * MIC_BYTES_PER_MS]


class Wire:
    """A plain `wyoming` client read by one task, so that waiting with a timeout can never
    cut an event in half (a cancelled read would leave the stream mid-payload)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while (event := await self.client.read_event()) is not None:
            self.queue.put_nowait(event)
        self.queue.put_nowait(None)

    async def write_event(self, event: Event) -> None:
        await self.client.write_event(event)

    async def read_event(self, within: float = TIMEOUT) -> Event | None:
        return await asyncio.wait_for(self.queue.get(), within)


@asynccontextmanager
async def connect(uri: str) -> AsyncIterator[Wire]:
    async with AsyncClient.from_uri(uri) as client:
        wire = Wire(client)
        try:
            yield wire
        finally:
            wire.pump.cancel()
            await asyncio.gather(wire.pump, return_exceptions=True)


async def read_until(wire: Wire, event_type: str) -> list[Event]:
    """Every event up to and including the first of ``event_type``."""
    events: list[Event] = []
    while True:
        event = await wire.read_event()
        assert event is not None, f"closed before {event_type}: {[e.type for e in events]}"
        events.append(event)
        if event.type == event_type:
            return events


async def quiet_for(wire: Wire, seconds: float) -> list[Event]:
    """Whatever arrives within ``seconds`` (the peer is expected to stay silent)."""
    events: list[Event] = []
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            event = await wire.read_event(left)
            assert event is not None, "closed"
            events.append(event)
    return events


def no_other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def samples(events: list[Event]) -> list[int]:
    """Samples per audio chunk."""
    return [AudioChunk.from_event(e).samples for e in events if AudioChunk.is_type(e.type)]


# --- TTS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
async def test_tts_describes_one_voice_and_its_streaming(streaming: bool) -> None:
    async with SimulatedTts(streaming=streaming) as tts, connect(tts.uri) as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
    (program,) = info.tts
    assert program.name == "simulated-tts" and program.installed
    assert program.supports_synthesize_streaming is streaming
    assert [(v.name, v.languages) for v in program.voices] == [("sim-voice", ["en", "ja"])]
    assert tts.connections == 1


async def test_tts_synthesize_gives_audio_as_long_as_the_text() -> None:
    async with SimulatedTts(streaming=False, rate=16000, seconds_per_char=0.02) as tts:
        lengths = []
        for text in ("Hi there.", "Hi there, and a longer one."):
            async with connect(tts.uri) as client:
                await client.write_event(Synthesize(text=text).event())
                events = await read_until(client, "audio-stop")
            assert events[0].type == "audio-start"
            assert AudioStart.from_event(events[0]).rate == 16000
            assert {e.type for e in events[1:-1]} == {"audio-chunk"}
            assert max(samples(events)) <= 1024
            assert sum(samples(events)) == round(0.02 * len(text) * 16000)
            lengths.append(sum(samples(events)))
        assert tts.synthesized == ["Hi there.", "Hi there, and a longer one."]
        assert tts.first_text_at is not None
    assert lengths[1] == 3 * lengths[0]


async def test_tts_without_streaming_ignores_stream_events_as_piper_does() -> None:
    async with SimulatedTts(streaming=False) as tts, connect(tts.uri) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="One. Two.").event())
        await client.write_event(Synthesize(text="One. Two.").event())
        await client.write_event(SynthesizeStop().event())
        events = await read_until(client, "audio-stop")
        assert [e.type for e in events if e.type != "audio-chunk"] == ["audio-start", "audio-stop"]
        assert await quiet_for(client, 0.2) == []  # no synthesize-stopped
        assert tts.synthesized == ["One. Two."]


async def test_tts_stream_is_spoken_sentence_by_sentence() -> None:
    async with SimulatedTts(streaming=True) as tts, connect(tts.uri) as client:
        await client.write_event(SynthesizeStart().event())
        assert tts.first_text_at is None
        before = time.monotonic()
        await client.write_event(SynthesizeChunk(text="Hello there. How are").event())
        # The first sentence is spoken before the rest of the text exists.
        first = await read_until(client, "audio-stop")
        assert tts.first_text_at is not None and tts.first_text_at >= before
        assert sum(samples(first)) == round(0.01 * len("Hello there.") * 22050)
        await client.write_event(SynthesizeChunk(text=" you? こんにちは。元気").event())
        await client.write_event(Synthesize(text="ignored inside a stream").event())
        await client.write_event(SynthesizeStop().event())
        rest = await read_until(client, "synthesize-stopped")
        assert [e.type for e in rest if e.type != "audio-chunk"] == [
            *("audio-start", "audio-stop") * 3,
            "synthesize-stopped",
        ]
        assert tts.synthesized == ["Hello there.", "How are you?", "こんにちは。", "元気"]
        assert [e.type for e in tts.received].count("synthesize") == 1


async def test_tts_delay_comes_before_each_sentence() -> None:
    async with SimulatedTts(delay=0.15) as tts, connect(tts.uri) as client:
        started = time.monotonic()
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="One. Two.").event())
        await client.write_event(SynthesizeStop().event())
        await read_until(client, "synthesize-stopped")
        assert time.monotonic() - started >= 0.3
        assert tts.synthesized == ["One.", "Two."]


@pytest.mark.parametrize("request_event", [Synthesize(text="Hi."), SynthesizeStart()])
async def test_tts_failure_answers_describe_then_errors_and_closes(
    request_event: Synthesize | SynthesizeStart,
) -> None:
    async with SimulatedTts(fail=True) as tts, connect(tts.uri) as client:
        await client.write_event(Describe().event())
        await read_until(client, "info")
        await client.write_event(request_event.event())
        error = Error.from_event(await client.read_event() or Event("closed"))
        assert (error.text, error.code) == ("simulated TTS failure", "tts-failed")
        assert await client.read_event() is None
        assert tts.synthesized == []


async def test_tts_one_per_connection_closes_after_its_answer() -> None:
    async with SimulatedTts(streaming=False, one_per_connection=True) as tts:
        async with connect(tts.uri) as client:
            await client.write_event(Describe().event())
            await read_until(client, "info")  # describe is not the one answer
            await client.write_event(Synthesize(text="One.").event())
            await read_until(client, "audio-stop")
            assert await client.read_event() is None
        async with connect(tts.uri) as client:
            await client.write_event(Synthesize(text="Two.").event())
            await read_until(client, "audio-stop")
            assert await client.read_event() is None
    assert [c.synthesized for c in tts.connection_log] == [["One."], ["Two."]]
    assert tts.open_connections == 0


async def test_tts_faults_replace_the_answer_to_one_synthesize() -> None:
    faults: dict[int, Fault] = {2: "error", 3: "close", 4: "silent"}
    async with SimulatedTts(streaming=False, faults=faults) as tts:
        answers = []
        for number in range(1, 6):
            async with connect(tts.uri) as client:
                await client.write_event(Synthesize(text=f"Sentence {number}.").event())
                answers.append(await answer_types(client, 0.3))
            assert tts.requests == number
        assert tts.synthesized == ["Sentence 1.", "Sentence 5."]
    spoken = ["audio-start", *["audio-chunk"] * 3, "audio-stop"]  # 0.11 s: 2425 samples
    cut = ["audio-start", "audio-chunk", "closed"]
    assert answers == [spoken, ["error", "closed"], cut, [], spoken]
    assert tts.open_connections == 0


async def answer_types(wire: Wire, seconds: float) -> list[str]:
    """The types of what arrives within ``seconds``; "closed" if the peer hung up."""
    types: list[str] = []
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            event = await wire.read_event(left)
            types.append("closed" if event is None else event.type)
            if event is None:
                break
    return types


async def test_tts_chunk_outside_a_stream_is_an_error() -> None:
    async with SimulatedTts() as tts, connect(tts.uri) as client:
        await client.write_event(SynthesizeChunk(text="Hello.").event())
        event = await client.read_event()
        assert event is not None and Error.from_event(event).code == "protocol"
        assert tts.synthesized == []


async def test_tts_stop_ends_connections_and_tasks() -> None:
    tts = SimulatedTts(delay=5.0)
    await tts.start()
    async with connect(tts.uri) as client:
        await client.write_event(Synthesize(text="Never spoken.").event())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await tts.stop()
        assert time.monotonic() - started < 1.0  # the 5 s delay was cut short
        assert await client.read_event() is None
    assert no_other_tasks() == []


# --- satellite ---------------------------------------------------------------------------


@asynccontextmanager
async def hub_of(sat: SimulatedSatellite) -> AsyncIterator[Wire]:
    """A hub as Home Assistant starts one: run-satellite on a fresh connection."""
    async with connect(sat.uri) as hub:
        await hub.write_event(RunSatellite().event())
        await sat.wait_connected(TIMEOUT)
        yield hub


async def test_satellite_describes_itself_and_answers_ping() -> None:
    async with SimulatedSatellite(name="kitchen", area="Kitchen") as sat, connect(sat.uri) as hub:
        await hub.write_event(Describe().event())
        info = Info.from_event((await read_until(hub, "info"))[-1])
        await hub.write_event(Ping(text="hi").event())
        pong = (await read_until(hub, "pong"))[-1]
    assert info.satellite is not None
    assert (info.satellite.name, info.satellite.area) == ("kitchen", "Kitchen")
    assert [(m.mic_format.rate, m.mic_format.width, m.mic_format.channels) for m in info.mic] == [
        (16000, 2, 1)
    ]
    assert len(info.snd) == 1
    assert pong.data["text"] == "hi"


@pytest.mark.parametrize("realtime", [True, False])
async def test_satellite_turn_streams_its_audio(realtime: bool) -> None:
    audio = speech(400)
    async with SimulatedSatellite(audio=audio, realtime=realtime) as sat, hub_of(sat) as hub:
        assert sat.connected
        started = time.monotonic()
        await sat.trigger()
        events = await read_until(hub, "audio-stop")
        elapsed = time.monotonic() - started
    assert [e.type for e in events[:2]] == ["detection", "run-pipeline"]
    pipeline = RunPipeline.from_event(events[1])
    assert (pipeline.start_stage, pipeline.end_stage) == ("asr", "tts")
    assert pipeline.wake_word_name == "ok_nabu" and not pipeline.restart_on_end
    chunks = [AudioChunk.from_event(e) for e in events[2:-1]]
    assert len(chunks) == 20 and all(c.rate == 16000 and c.width == 2 for c in chunks)
    assert b"".join(c.audio for c in chunks) == audio
    assert (elapsed >= 0.38) if realtime else (elapsed < 0.2)


async def test_satellite_without_speaker_ends_its_pipeline_at_handle() -> None:
    async with SimulatedSatellite(speaker=False, audio=speech(20)) as sat, hub_of(sat) as hub:
        await hub.write_event(Describe().event())
        assert Info.from_event((await read_until(hub, "info"))[-1]).snd == []
        await sat.trigger()
        pipeline = RunPipeline.from_event((await read_until(hub, "run-pipeline"))[-1])
    assert pipeline.end_stage == "handle"


async def test_satellite_stops_streaming_on_transcript() -> None:
    async with SimulatedSatellite(audio=speech(3000)) as sat, hub_of(sat) as hub:
        await sat.trigger()
        await read_until(hub, "audio-chunk")
        await hub.write_event(Transcript(text="turn on the light").event())
        late = await quiet_for(hub, 0.3)
        assert [e.type for e in late] in ([], ["audio-chunk"])  # one may be in flight
        assert sat.transcripts == ["turn on the light"]
        assert not sat.streaming


async def test_satellite_pause_stops_streaming_and_turns() -> None:
    async with SimulatedSatellite(audio=speech(3000)) as sat, hub_of(sat) as hub:
        await sat.trigger()
        await read_until(hub, "audio-chunk")
        await hub.write_event(PauseSatellite().event())
        await quiet_for(hub, 0.1)
        assert await quiet_for(hub, 0.2) == []
        with pytest.raises(RuntimeError):
            await sat.trigger()
        await hub.write_event(RunSatellite().event())
        await asyncio.sleep(0.05)
        await sat.trigger()
        assert (await read_until(hub, "run-pipeline"))[-1].type == "run-pipeline"


async def test_satellite_plays_tts_and_answers_played() -> None:
    async with SimulatedSatellite(audio=speech(100), realtime=False) as sat, hub_of(sat) as hub:
        await sat.trigger()
        await read_until(hub, "audio-stop")
        await hub.write_event(AudioChunk(rate=22050, width=2, channels=1, audio=b"xx").event())
        await hub.write_event(Synthesize(text="Done.").event())
        await hub.write_event(AudioStart(rate=22050, width=2, channels=1).event())
        for part in (b"\x01\x02" * 100, b"\x03\x04" * 50):
            await hub.write_event(AudioChunk(rate=22050, width=2, channels=1, audio=part).event())
        await hub.write_event(AudioStop().event())
        await sat.wait_played(TIMEOUT)
        assert (await read_until(hub, "played"))[-1].type == "played"
        await sat.trigger()  # a new turn: its answer has not been played yet
        with pytest.raises(TimeoutError):
            await sat.wait_played(0.1)
    assert sat.played_audio == b"\x01\x02" * 100 + b"\x03\x04" * 50
    assert [e.type for e in sat.received][-3:] == ["audio-chunk", "audio-chunk", "audio-stop"]
    assert "synthesize" in [e.type for e in sat.received]


async def test_satellite_keeps_one_hub_and_takes_the_next_after_a_disconnect() -> None:
    async with SimulatedSatellite(audio=speech(60), realtime=False) as sat:
        async with hub_of(sat) as first, connect(sat.uri) as second:
            await second.write_event(Describe().event())
            await read_until(second, "info")  # anyone may ask who it is...
            await second.write_event(RunSatellite().event())
            assert await second.read_event() is None  # ...but the hub stays the first
            await sat.trigger()
            assert (await read_until(first, "audio-stop"))[1].type == "run-pipeline"
        await asyncio.sleep(0.05)
        assert not sat.connected
        with pytest.raises(RuntimeError):
            await sat.trigger()
        async with hub_of(sat) as again:
            await sat.trigger()
            events = await read_until(again, "audio-stop")
        assert sum(len(e.payload or b"") for e in events) == len(speech(60))


async def test_satellite_with_remote_wake_streams_continuously() -> None:
    audio = speech(100)
    async with SimulatedSatellite(audio=audio, start_stage="wake") as sat, hub_of(sat) as hub:
        pipeline = RunPipeline.from_event((await read_until(hub, "run-pipeline"))[-1])
        assert (pipeline.start_stage, pipeline.restart_on_end) == ("wake", True)
        silence = await read_until(hub, "audio-chunk")
        assert silence[-1].payload is None or set(silence[-1].payload) == {0}
        await sat.trigger()
        spoken = await read_until(hub, "audio-stop")
        assert audio in b"".join(e.payload or b"" for e in spoken)
        await hub.write_event(Transcript(text="hello").event())
        assert "audio-chunk" in [e.type for e in await read_until(hub, "audio-chunk")]


async def test_satellite_stop_ends_connections_and_tasks() -> None:
    sat = SimulatedSatellite(audio=speech(5000))
    await sat.start()
    async with hub_of(sat) as hub:
        await sat.trigger()
        await read_until(hub, "audio-chunk")
        started = time.monotonic()
        await sat.stop()
        assert time.monotonic() - started < 1.0
        while (event := await hub.read_event()) is not None:
            assert event.type == "audio-chunk"
    assert no_other_tasks() == []
