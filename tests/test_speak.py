"""Speaking: the TTS relay, satellite hub mode and `ask`, with simulated TTS and satellites."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from harness import (
    FALLBACK,
    ServerProcess,
    free_port,
    running_server,
    server_config,
    start_server,
    stop_server,
    tone,
)
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator import (
    RealtimeSimulator,
    Scenario,
    SimulatedSatellite,
    SimulatedTts,
)
from wyoming_realtime_text.simulator.tts import SAMPLES_PER_CHUNK, Fault
from wyoming_realtime_text.simulator.tts import tone as tts_tone

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER_SECOND = "The second sentence follows. And a third one ends it."


def by_pitch(pcm: bytes) -> str:
    """The simulator 'hears' which room spoke from the tone's pitch (440 vs 880 Hz)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    peak = np.argmax(np.abs(np.fft.rfft(samples))) * 24000 / max(len(samples), 1)
    return "kitchen asks" if peak < 660 else "bedroom asks"


def answer_to(text: str) -> str:
    return f"Answer to {text}. {ANSWER_SECOND}"


def speaking_scenario(**faults: object) -> Scenario:
    return Scenario(transcript=by_pitch, reply=answer_to, delta_delay=0.03, **faults)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tts() -> AsyncIterator[SimulatedTts]:
    async with SimulatedTts(streaming=True, rate=22050) as peer:
        yield peer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def satellites() -> AsyncIterator[list[SimulatedSatellite]]:
    sats = [
        SimulatedSatellite(name="kitchen", audio=tone(1.0, freq=440.0), realtime=True),
        SimulatedSatellite(name="bedroom", audio=tone(1.0, freq=880.0), realtime=True),
    ]
    for sat in sats:
        await sat.start()
    yield sats
    for sat in sats:
        await sat.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(
    sim: RealtimeSimulator,
    tts: SimulatedTts,
    satellites: list[SimulatedSatellite],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    config = server_config(
        sim.url,
        "ga",
        tts={"uri": tts.uri, "voice": "sim-voice"},
    )
    config["satellites"] = [{"uri": s.uri, "name": s.name} for s in satellites]
    async with running_server(tmp_path_factory.mktemp("hub"), config) as server:
        for sat in satellites:
            await sat.wait_connected(10)
        yield server


async def run_pipeline(
    uri: str,
    audio: bytes,
    end: PipelineStage = PipelineStage.TTS,
    speech_ends: tuple[str, ...] = ("audio-stop", "error"),
) -> list[Event]:
    """A direct client: run-pipeline + audio; read until the text and the speech are done
    (the speech at the first event of `speech_ends`)."""
    events: list[Event] = []
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(RunPipeline(PipelineStage.ASR, end).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio).event())
        await client.write_event(AudioStop().event())
        text_done = speech_done = False
        async with asyncio.timeout(15):
            while not (text_done and speech_done):
                event = await client.read_event()
                assert event is not None, f"closed early after {[e.type for e in events]}"
                events.append(event)
                text_done = text_done or event.type == "handled-stop"
                speech_done = speech_done or event.type in speech_ends
    return events


def spoken(events: list[Event]) -> bytes:
    return b"".join(e.payload or b"" for e in events if e.type == "audio-chunk")


def expected_tts_audio(peer: SimulatedTts, texts: list[str]) -> int:
    fmt = {"rate": peer.rate, "width": peer.width, "channels": peer.channels}
    return sum(len(tts_tone(peer.seconds_per_char * len(t), **fmt)) for t in texts)


async def test_run_pipeline_to_tts_streams_text_and_speech(
    sim: RealtimeSimulator, tts: SimulatedTts, hub: ServerProcess
) -> None:
    sim.scenario = speaking_scenario()
    before, received_before = len(tts.synthesized), len(tts.received)
    connections_before = tts.connections
    tts.first_text_at = None
    events = await run_pipeline(hub.uri, tone(1.0, freq=440.0))
    assert tts.connections == connections_before + 1, "streaming is one connection"
    types = [e.type for e in events]
    assert types.index("transcript") < types.index("handled-start")
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert types.index("audio-start") < types.index("audio-stop")
    handled = next(e for e in events if e.type == "handled").data["text"]
    assert handled == answer_to("kitchen asks")
    start = next(e for e in events if e.type == "audio-start").data
    assert (start["rate"], start["width"], start["channels"]) == (22050, 2, 1)
    said = tts.synthesized[before:]
    assert " ".join(said) == handled, "the TTS spoke the answer, sentence by sentence"
    assert len(spoken(events)) == expected_tts_audio(tts, said)
    # Streaming: the TTS got its first text before the Realtime response was complete.
    done_at = max(t for c in sim.connections for t, way, kind in c.log if kind == "response.done")
    assert tts.first_text_at is not None and tts.first_text_at < done_at
    stream = [e.type for e in tts.received[received_before:] if e.type != "describe"]
    assert stream[0] == "synthesize-start" and stream[-2:] == ["synthesize", "synthesize-stop"]
    assert set(stream[1:-2]) == {"synthesize-chunk"} and len(stream) > 5


async def test_audio_despite_text_never_reaches_the_client(
    sim: RealtimeSimulator, tts: SimulatedTts, hub: ServerProcess
) -> None:
    sim.scenario = speaking_scenario(mode="audio_despite_text")
    before = len(tts.synthesized)
    events = await run_pipeline(hub.uri, tone(1.0, freq=440.0))
    assert next(e for e in events if e.type == "handled").data["text"] == answer_to("kitchen asks")
    audio_events = [e for e in events if e.type.startswith("audio")]
    assert all(e.data.get("rate", 22050) == 22050 for e in audio_events)
    assert len(spoken(events)) == expected_tts_audio(tts, tts.synthesized[before:])


async def test_satellite_turn_gets_transcript_speech_and_text(
    sim: RealtimeSimulator,
    tts: SimulatedTts,
    satellites: list[SimulatedSatellite],
    hub: ServerProcess,
) -> None:
    sim.scenario = speaking_scenario()
    kitchen = satellites[0]
    heard_before, played_before = len(kitchen.transcripts), len(kitchen.played_audio)
    before = len(tts.synthesized)
    await kitchen.trigger()
    await kitchen.wait_played(15)
    assert kitchen.transcripts[heard_before:] == ["kitchen asks"]
    synthesize = [e for e in kitchen.received if e.type == "synthesize"]
    assert synthesize[-1].data["text"] == answer_to("kitchen asks")
    played = kitchen.played_audio[played_before:]
    assert len(played) == expected_tts_audio(tts, tts.synthesized[before:])
    types = [e.type for e in kitchen.received]
    last_transcript = len(types) - 1 - types[::-1].index("transcript")
    assert "audio-start" in types[last_transcript:]


async def test_two_satellites_at_once_get_their_own_answers(
    sim: RealtimeSimulator,
    satellites: list[SimulatedSatellite],
    hub: ServerProcess,
) -> None:
    sim.scenario = speaking_scenario(mode="audio_despite_text")
    kitchen, bedroom = satellites
    marks = [len(s.received) for s in satellites]
    await asyncio.gather(kitchen.trigger(), bedroom.trigger())
    await asyncio.gather(kitchen.wait_played(20), bedroom.wait_played(20))
    for sat, mark, room in zip(satellites, marks, ("kitchen", "bedroom"), strict=True):
        new = sat.received[mark:]
        assert [e.data["text"] for e in new if e.type == "transcript"] == [f"{room} asks"]
        texts = [e.data["text"] for e in new if e.type == "synthesize"]
        assert texts == [answer_to(f"{room} asks")]
        rates = {e.data["rate"] for e in new if e.type in ("audio-start", "audio-chunk")}
        assert rates == {22050}, "only TTS audio reaches a satellite"


async def test_each_satellite_keeps_its_own_conversation(
    sim: RealtimeSimulator,
    satellites: list[SimulatedSatellite],
    hub: ServerProcess,
) -> None:
    sim.scenario = speaking_scenario()
    kitchen, bedroom = satellites
    for sat in (kitchen, bedroom, kitchen):
        await sat.trigger()
        await sat.wait_played(15)
    rooms_per_session = [{by_pitch(audio) for audio in c.commits} for c in sim.connections]
    assert all(len(rooms) <= 1 for rooms in rooms_per_session), "rooms never share a session"
    kitchen_turns = [
        len(c.commits)
        for c in sim.connections
        if by_pitch(c.commits[0] if c.commits else b"") == "kitchen asks"
    ]
    assert max(kitchen_turns) >= 2, "the kitchen's follow-up went to its own session"


async def test_vanished_satellite_cancels_its_turn_upstream(
    sim: RealtimeSimulator,
    satellites: list[SimulatedSatellite],
    hub: ServerProcess,
) -> None:
    sim.scenario = speaking_scenario(silent=True)
    bedroom = satellites[1]
    created = sim.received_types().count("response.create")
    await bedroom.trigger()
    for _ in range(200):
        if sim.received_types().count("response.create") > created:
            break
        await asyncio.sleep(0.02)
    port = int(bedroom.uri.rsplit(":", 1)[1])
    await bedroom.stop()
    for _ in range(100):
        if any(e["type"] == "response.cancel" for c in sim.connections for e in c.received):
            break
        await asyncio.sleep(0.05)
    assert any(e["type"] == "response.cancel" for c in sim.connections for e in c.received)
    # It comes back on the same address, and the hub reconnects with backoff.
    sim.scenario = speaking_scenario()
    bedroom.port = port
    await bedroom.start()
    await bedroom.wait_connected(15)
    await bedroom.trigger()
    await bedroom.wait_played(15)
    assert bedroom.transcripts[-1] == "bedroom asks"


async def test_tts_down_gives_an_error_and_still_the_text(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    sim.scenario = speaking_scenario()
    config = server_config(sim.url, "ga", tts={"uri": f"tcp://127.0.0.1:{free_port()}"})
    server = await start_server(tmp_path, config)
    try:
        events = await run_pipeline(server.uri, tone(1.0))
    finally:
        await stop_server(server)
    errors = [e for e in events if e.type == "error"]
    assert errors and errors[0].data["code"] == "tts-failed"
    assert "cannot reach the TTS" in errors[0].data["text"]
    assert next(e for e in events if e.type == "handled").data["text"] == answer_to("kitchen asks")
    assert not spoken(events)


async def test_sentence_tts_gets_one_synthesize_per_sentence_early(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    sim.scenario = speaking_scenario()
    async with SimulatedTts(streaming=False, rate=16000) as plain:
        server = await start_server(tmp_path, server_config(sim.url, "ga", tts={"uri": plain.uri}))
        try:
            events = await run_pipeline(server.uri, tone(1.0))
        finally:
            await stop_server(server)
    assert plain.synthesized == [
        "Answer to kitchen asks.",
        "The second sentence follows.",
        "And a third one ends it.",
    ]
    done_at = max(t for c in sim.connections for t, way, kind in c.log if kind == "response.done")
    assert plain.first_text_at is not None and plain.first_text_at < done_at
    assert len(spoken(events)) == expected_tts_audio(plain, plain.synthesized)
    assert next(e for e in events if e.type == "audio-start").data["rate"] == 16000


SENTENCES = ["Answer to kitchen asks.", "The second sentence follows.", "And a third one ends it."]


async def all_closed(peer: SimulatedTts) -> bool:
    """Whether every connection to the TTS is closed (the relay's are, soon after audio-stop)."""
    for _ in range(100):
        if peer.open_connections == 0:
            return True
        await asyncio.sleep(0.02)
    return False


def tts_audio(peer: SimulatedTts, text: str) -> bytes:
    fmt = {"rate": peer.rate, "width": peer.width, "channels": peer.channels}
    return tts_tone(peer.seconds_per_char * len(text), **fmt)


@pytest.mark.parametrize("one_per_connection", [True, False], ids=["closes", "stays-open"])
async def test_sentence_tts_gets_a_connection_per_sentence(
    sim: RealtimeSimulator, tmp_path: Path, one_per_connection: bool
) -> None:
    """As Home Assistant does; a TTS that closes after its answer must still speak it all."""
    sim.scenario = speaking_scenario()
    async with SimulatedTts(streaming=False, one_per_connection=one_per_connection) as plain:
        server = await start_server(tmp_path, server_config(sim.url, "ga", tts={"uri": plain.uri}))
        try:
            events = await run_pipeline(server.uri, tone(1.0))
            closed = await all_closed(plain)
        finally:
            await stop_server(server)
    assert not [e for e in events if e.type == "error"], server.log()
    describe, *sentences = plain.connection_log
    assert [e.type for e in describe.received] == ["describe"]
    assert [[e.type for e in c.received] for c in sentences] == [["synthesize"]] * len(SENTENCES)
    assert [c.synthesized for c in sentences] == [[s] for s in SENTENCES]
    assert closed, "every connection to the TTS is closed after the answer"
    types = [e.type for e in events]
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert spoken(events) == b"".join(tts_audio(plain, s) for s in SENTENCES), "in order"


@pytest.mark.parametrize(
    ("fault", "message", "said"),
    [
        (
            "error",
            "sentence 2 of 3 not spoken: the TTS at {} failed: simulated TTS failure",
            (0, 2),
        ),
        ("close", "sentence 2 of 3 not spoken: the TTS at {} closed the connection", (0, 2)),
        (
            "silent",
            "sentence 2 and the rest not spoken: the TTS at {} did not answer in time",
            (0,),
        ),
    ],
    ids=["error", "close", "silent"],
)
async def test_sentence_the_tts_fails_on_is_an_error_not_silence(
    sim: RealtimeSimulator, tmp_path: Path, fault: Fault, message: str, said: tuple[int, ...]
) -> None:
    """The rest is still spoken after a failed sentence, but not after a timeout, which would
    only add another timeout of silence per sentence. `said`: the SENTENCES spoken."""
    sim.scenario = speaking_scenario()
    async with SimulatedTts(streaming=False, one_per_connection=True, faults={2: fault}) as plain:
        tts = {"uri": plain.uri, "timeout": 1}
        server = await start_server(tmp_path, server_config(sim.url, "ga", tts=tts))
        try:
            started = time.monotonic()
            events = await run_pipeline(server.uri, tone(1.0), speech_ends=("audio-stop",))
            elapsed = time.monotonic() - started
            closed = await all_closed(plain)
        finally:
            await stop_server(server)
    message = message.format(plain.uri)
    errors = [(e.data["code"], e.data["text"]) for e in events if e.type == "error"]
    assert errors == [("tts-failed", message)]
    logged = [line for line in server.log().splitlines() if "not spoken" in line]
    assert len(logged) == 1 and logged[0].endswith(message), server.log()
    types = [e.type for e in events]
    assert types.index("error") < types.index("audio-stop"), "seen by a client reading to it"
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert plain.synthesized == [SENTENCES[i] for i in said]
    # A TTS that closes mid-sentence has sent its first chunk, which is played too.
    cut = tts_audio(plain, SENTENCES[1])[: SAMPLES_PER_CHUNK * plain.width]
    first, *rest = [tts_audio(plain, SENTENCES[i]) for i in said]
    assert spoken(events) == first + (cut if fault == "close" else b"") + b"".join(rest)
    assert elapsed < 1 + 4, "bounded by tts.timeout (1 s)"
    assert closed, "every connection to the TTS is closed after the answer"


async def test_missing_tts_is_a_clear_error(sim: RealtimeSimulator, server: ServerProcess) -> None:
    sim.scenario = speaking_scenario()
    events = await run_pipeline(server.uri, tone(1.0))
    assert [e.data["code"] for e in events if e.type == "error"] == ["tts-not-configured"]
    assert next(e for e in events if e.type == "handled").data["text"] != FALLBACK


async def test_ask_prints_text_and_saves_speech(
    sim: RealtimeSimulator, hub: ServerProcess, tmp_path: Path
) -> None:
    sim.scenario = speaking_scenario()
    recording = tmp_path / "question.wav"
    with wave.open(str(recording), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(tone(1.0, freq=880.0))
    out = tmp_path / "answer.wav"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_realtime_text", "ask", str(recording),
        "--uri", hub.uri, "--speak", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[0] == "you: bedroom asks"
    assert lines[1] == f"assistant: {answer_to('bedroom asks')}"
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == 22050 and wav.getnframes() > 0


async def test_ask_errors_are_one_line(tmp_path: Path) -> None:
    recording = tmp_path / "q.wav"
    with wave.open(str(recording), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(tone(0.2))
    for args, message in (
        ([str(recording), "--uri", f"tcp://127.0.0.1:{free_port()}"], "cannot talk to the server"),
        ([str(tmp_path / "missing.wav")], "cannot read"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wyoming_realtime_text", "ask", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 1
        lines = stderr.decode().strip().splitlines()
        assert len(lines) == 1 and message in lines[0], stderr.decode()


async def test_slow_first_token_does_not_time_out_the_tts(
    sim: RealtimeSimulator, tts: SimulatedTts, tmp_path: Path
) -> None:
    """tts.timeout is for a silent TTS, not for a model that takes its time to start."""
    sim.scenario = speaking_scenario(first_token_delay=2.0)
    config = server_config(sim.url, "ga", tts={"uri": tts.uri, "timeout": 1})
    server = await start_server(tmp_path, config)
    try:
        events = await run_pipeline(server.uri, tone(1.0))
    finally:
        await stop_server(server)
    assert not [e for e in events if e.type == "error"], server.log()
    assert spoken(events)


async def test_refused_stream_gets_one_error_not_one_per_chunk(hub: ServerProcess) -> None:
    async with AsyncTcpClient.from_uri(hub.uri) as client:
        await client.write_event(RunPipeline(PipelineStage.WAKE, PipelineStage.TTS).event())
        for _ in range(50):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(640))
            await client.write_event(chunk.event())
        events: list[Event] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                while (event := await client.read_event()) is not None:
                    events.append(event)
    assert [(e.type, e.data.get("code")) for e in events] == [("error", "wake-not-configured")]
    assert "local wake word" in events[0].data["text"] and "wake.uri" in events[0].data["text"]
