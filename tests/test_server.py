"""The real server, driven as Home Assistant drives it, against the simulator in both dialects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from pathlib import Path

import numpy as np
import pytest
from harness import (
    FALLBACK,
    SECRET_KEY,
    HomeAssistant,
    ServerProcess,
    read_until,
    send_audio,
    server_config,
    start_server,
    stop_server,
    tone,
)
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")

FORUM_ANSWER = (
    "こんばんは!本当ですね。これだけ一緒にいると、忙しい日々でもこうやって会える時間が、本当に特別"
)
FORUM_TRANSCRIPT = "こんばんは、だいぶ涼しくなってきたね"


def new_connections(sim: RealtimeSimulator, before: int) -> list:
    return sim.connections[before:]


def sent_types(connections: list) -> list[str]:
    return [event["type"] for conn in connections for event in conn.received]


def assert_text_only(connections: list, dialect: str) -> None:
    """Text-only on every session.update and on every response.create we sent."""
    key = "modalities" if dialect == "beta" else "output_modalities"
    updates = [e for c in connections for e in c.received if e["type"] == "session.update"]
    responses = [e for c in connections for e in c.received if e["type"] == "response.create"]
    assert updates and all(u["session"][key] == ["text"] for u in updates)
    assert all(r["response"][key] == ["text"] for r in responses)


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


async def test_describe_offers_stt_and_agent(server: ServerProcess) -> None:
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 5)
    info = Info.from_event(event)
    assert info.asr[0].installed and info.asr[0].supports_transcript_streaming
    assert info.handle[0].installed and info.handle[0].supports_handled_streaming
    assert info.asr[0].models[0].languages == ["en", "ja"]
    assert info.handle[0].models[0].languages == ["en", "ja"]
    assert info.asr[0].version
    assert SECRET_KEY not in str(event.data)


async def test_stt_then_agent_is_one_round_trip(
    sim: RealtimeSimulator, ha: HomeAssistant, dialect: str
) -> None:
    said = unique("what is the weather like")
    sim.scenario = Scenario(transcript=said, reply="It is sunny and warm today.")
    before = len(sim.connections)

    # linger: read on after transcript / handled, which HA does not, to see what follows
    transcript, stt_events = await ha.stt(tone(1.5), linger=0.3)
    assert transcript.text == said
    types = [e.type for e in stt_events]
    assert types[0] == "transcript-start"
    assert types.index("transcript") < types.index("transcript-stop")

    handled, events = await ha.converse(said, conversation_id=uuid.uuid4().hex, linger=0.3)
    assert handled.text == "It is sunny and warm today."
    types = [e.type for e in events]
    assert types[0] == "handled-start" and types[-2:] == ["handled", "handled-stop"]
    chunks = "".join(e.data["text"] for e in events if e.type == "handled-chunk")
    assert chunks.strip() == handled.text

    connections = new_connections(sim, before)
    sent = sent_types(connections)
    assert sent.count("response.create") == 1, "the agent request must reuse the started answer"
    assert "conversation.item.create" not in sent
    assert_text_only(connections, dialect)
    assert all(c.dialect == dialect for c in connections)


async def test_nothing_reaches_ha_2026_before_audio_stop(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """HA 2026 reads the STT result while it still uploads, and a `transcript` or `error`
    ends its request at once: the server must not answer before the speaker is done."""
    said = unique("read while uploading")
    sim.scenario = Scenario(transcript=said)
    events: list[Event] = []
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        upload = asyncio.create_task(send_audio(client, tone(1.5), 16000, 2, 1, 10, paced=True))
        try:
            async with asyncio.timeout(10):
                first = await client.read_event()
            uploaded_first = upload.done() and not upload.cancelled()
            assert first is not None
            events.append(first)
            await read_until(client, events, Transcript, 10)
        finally:
            upload.cancel()
    assert uploaded_first, f"{first.type} came before audio-stop"
    assert Transcript.from_event(events[-1]).text == said


async def test_audio_reaches_the_api_as_24khz_and_full_length(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    sim.scenario = Scenario(transcript=unique("play some music"))
    before = len(sim.connections)
    await ha.stt(tone(2.0, rate=16000, freq=440.0))
    (audio,) = [a for c in new_connections(sim, before) for a in c.commits]
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    assert abs(len(samples) - 48000) <= 48, "2 s at 24 kHz"
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak_hz = np.argmax(spectrum) * 24000 / len(samples)
    assert abs(peak_hz - 440.0) <= 1.0


async def test_audio_streams_upstream_before_the_speaker_stops(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    sim.scenario = Scenario(transcript=unique("turn on the lights"))
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        audio = tone(1.0)
        for start in range(0, len(audio), 640):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=audio[start : start + 640])
            await client.write_event(chunk.event())
        for _ in range(100):
            appended = [
                e
                for c in new_connections(sim, before)
                for e in c.received
                if e["type"] == "input_audio_buffer.append"
            ]
            if appended:
                break
            await asyncio.sleep(0.05)
        assert appended, "audio must reach the API while the user is still speaking"
        assert not any(
            e["type"] == "input_audio_buffer.commit"
            for e in (e for c in new_connections(sim, before) for e in c.received)
        )
        await client.write_event(AudioStop().event())


@pytest.mark.parametrize(
    ("rate", "width", "channels"), [(8000, 2, 1), (44100, 2, 2), (48000, 4, 1)]
)
async def test_any_input_format_becomes_24khz_mono(
    sim: RealtimeSimulator, ha: HomeAssistant, rate: int, width: int, channels: int
) -> None:
    sim.scenario = Scenario(transcript=unique("hello"))
    before = len(sim.connections)
    mono = np.frombuffer(tone(1.0, rate=rate, width=width), dtype=f"<i{width}")
    audio = np.repeat(mono, channels).tobytes()
    transcript, _ = await ha.stt(audio, rate=rate, width=width, channels=channels)
    assert transcript.text.startswith("hello")
    (pcm,) = [a for c in new_connections(sim, before) for a in c.commits]
    assert abs(len(pcm) // 2 - 24000) <= 24


async def test_forum_replay_gives_transcript_text_and_no_audio(
    sim: RealtimeSimulator, ha: HomeAssistant, server: ServerProcess
) -> None:
    """The forum post's session: text-only confirmed, answered as audio, cut by the filter."""
    sim.scenario = Scenario(mode="forum_replay")
    before = len(sim.connections)
    transcript, stt_events = await ha.stt(tone(1.5), language="ja")
    assert transcript.text == FORUM_TRANSCRIPT
    handled, events = await ha.converse(transcript.text, conversation_id=uuid.uuid4().hex)
    assert handled.text == FORUM_ANSWER
    assert not [e for e in stt_events + events if e.type.startswith("audio") or e.payload]
    assert sent_types(new_connections(sim, before)).count("response.create") == 1
    await asyncio.sleep(0.2)
    assert "(incomplete: content_filter" in server.log()
    assert "23 audio deltas dropped" in server.log(), "the forum log's 23 audio deltas"


async def test_audio_despite_text_uses_the_audio_transcript(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    sim.scenario = Scenario(mode="audio_despite_text", reply="Spoken anyway, but we only read it.")
    said = unique("tell me a joke")
    sim.scenario.transcript = said
    await ha.stt(tone(1.0))
    handled, events = await ha.converse(said)
    assert handled.text == "Spoken anyway, but we only read it."
    assert not [e for e in events if e.payload]


async def test_typed_message_becomes_a_text_turn(
    sim: RealtimeSimulator, ha: HomeAssistant, dialect: str
) -> None:
    sim.scenario = Scenario(reply=lambda text: f"Echo: {text}")
    before = len(sim.connections)
    handled, _ = await ha.converse("What is 2 plus 2?", conversation_id=uuid.uuid4().hex)
    assert handled.text == "Echo: What is 2 plus 2?"
    connections = new_connections(sim, before)
    items = [e for c in connections for e in c.received if e["type"] == "conversation.item.create"]
    assert items[0]["item"]["content"] == [{"type": "input_text", "text": "What is 2 plus 2?"}]
    assert not [e for c in connections for e in c.received if e["type"].startswith("input_audio")]
    assert_text_only(connections, dialect)


async def test_follow_ups_share_one_conversation(sim: RealtimeSimulator, ha: HomeAssistant) -> None:
    sim.scenario = Scenario(reply="Noted.")
    before = len(sim.connections)
    conversation = uuid.uuid4().hex
    await ha.converse("My name is Ada.", conversation_id=conversation)
    await ha.converse("What is my name?", conversation_id=conversation)
    await ha.converse("Unrelated question", conversation_id=uuid.uuid4().hex)
    connections = new_connections(sim, before)
    per_connection = [
        [
            e["item"]["content"][0]["text"]
            for e in c.received
            if e["type"] == "conversation.item.create"
        ]
        for c in connections
    ]
    assert ["My name is Ada.", "What is my name?"] in per_connection
    assert ["Unrelated question"] in per_connection


async def test_spoken_follow_up_is_answered_in_its_conversation(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    """HA 2025.7+ keeps the conversation_id for follow-ups: the next utterance from the same
    HA runs in that conversation's session (its history), and is answered in one round trip."""
    conversation = uuid.uuid4().hex
    first = unique("set a timer")
    sim.scenario = Scenario(transcript=first, reply="For how long?")
    await ha.stt(tone(1.0))
    assert (await ha.converse(first, conversation_id=conversation))[0].text == "For how long?"
    before = len(sim.connections)
    session = sim.connections[-1]
    creates = sent_types([session]).count("response.create")
    second = unique("five minutes")
    sim.scenario = Scenario(transcript=second, reply=lambda text: f"Timer: {text}")
    await ha.stt(tone(1.0))
    handled, _ = await ha.converse(second, conversation_id=conversation)
    assert handled.text == f"Timer: {second}"
    # The follow-up was spoken into the first turn's session, which holds the history.
    assert len(sim.connections) == before, "no session of its own"
    assert len(session.commits) == 2
    assert sent_types([session]).count("response.create") == creates + 1, "one round trip"
    assert "conversation.item.create" not in sent_types([session])


async def test_run_pipeline_streams_transcript_and_answer(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    said = unique("what's on my calendar")
    sim.scenario = Scenario(transcript=said, reply="You have two meetings today.")
    async with AsyncTcpClient.from_uri(server.uri) as client:
        pipeline = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
        await client.write_event(pipeline.event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=1, audio=tone(1.0)).event()
        )
        await client.write_event(AudioStop().event())
        events = []
        async with asyncio.timeout(10):
            while (event := await client.read_event()) is not None:
                events.append(event)
                if event.type == "handled-stop":
                    break
    types = [e.type for e in events]
    assert types.index("transcript") < types.index("handled-start") < types.index("handled")
    assert next(e for e in events if e.type == "transcript").data["text"] == said
    assert (
        next(e for e in events if e.type == "handled").data["text"]
        == "You have two meetings today."
    )


FAULTS = [
    pytest.param(
        Scenario(cut_after=3, reply="One two three four five six seven."),
        "partial",
        id="content-filter",
    ),
    pytest.param(Scenario(error_code="server_error"), "fallback", id="server-error"),
    pytest.param(
        Scenario(disconnect_after=2, reply="Alpha beta gamma delta epsilon."),
        "partial+fallback",
        id="disconnect",
    ),
    pytest.param(
        Scenario(session_expired_after=1, reply="Alpha beta gamma delta."),
        "partial+fallback",
        id="session-expired",
    ),
    pytest.param(Scenario(silent=True), "fallback", id="silent"),
    pytest.param(Scenario(first_token_delay=60), "fallback", id="slow-first-token"),
    pytest.param(Scenario(reject_handshake=401), "key", id="http-401"),
    pytest.param(Scenario(error_code="insufficient_quota"), "key", id="no-quota"),
]


@pytest.mark.parametrize(("scenario", "expected"), FAULTS)
async def test_every_fault_ends_in_text_or_fallback(
    sim: RealtimeSimulator, ha: HomeAssistant, scenario: Scenario, expected: str
) -> None:
    said = unique("fault test")
    scenario.transcript = said
    sim.scenario = scenario
    loop = asyncio.get_running_loop()
    started = loop.time()
    handled, _ = await ha.converse(said, conversation_id=uuid.uuid4().hex)
    elapsed = loop.time() - started
    assert elapsed < 3.0 + 2.0, "must end within the response timeout"
    if expected == "fallback":
        assert handled.text == FALLBACK
    elif expected == "key":
        assert "API key" in handled.text and FALLBACK not in handled.text
    elif expected == "partial":
        assert handled.text and FALLBACK not in handled.text
        assert scenario.reply.startswith(handled.text.rstrip(". "))
    else:
        assert handled.text.endswith(FALLBACK) and handled.text != FALLBACK
    # ...and the next request is served normally.
    sim.scenario = Scenario(reply="Back to normal.")
    handled, _ = await ha.converse("are you there", conversation_id=uuid.uuid4().hex)
    assert handled.text == "Back to normal."


async def test_spoken_turn_survives_upstream_error(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    said = unique("what time is it")
    sim.scenario = Scenario(transcript=said, error_code="rate_limit_exceeded")
    transcript, _ = await ha.stt(tone(1.0))
    handled, _ = await ha.converse(transcript.text or said)
    assert handled.text == FALLBACK


async def test_api_key_never_reaches_logs_or_clients(
    server: ServerProcess, sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    sim.scenario = Scenario(reply="Keyed.")
    assert (await ha.converse(unique("use the key")))[0].text == "Keyed."
    assert SECRET_KEY not in server.log()
    header_keys = [
        c.headers.get("Authorization", "") + c.headers.get("api-key", "") for c in sim.connections
    ]
    assert any(SECRET_KEY in h for h in header_keys), "the key is sent upstream as a header"
    assert not any(SECRET_KEY in str(c.query) for c in sim.connections)
    assert base64.b64encode(SECRET_KEY.encode()).decode() not in server.log()


async def test_debug_logging_never_shows_the_key(
    sim: RealtimeSimulator, dialect: str, tmp_path: Path
) -> None:
    debug_server = await start_server(tmp_path, server_config(sim.url, dialect), "--debug")
    try:
        ha = HomeAssistant(debug_server.uri)
        said = unique("debug me")
        sim.scenario = Scenario(transcript=said, reply="Debugging.")
        await ha.stt(tone(0.5))
        assert (await ha.converse(said))[0].text == "Debugging."
        sim.scenario = Scenario(reject_handshake=401)
        assert "API key" in (await ha.converse("fail please"))[0].text
        # Through the faults and their retries, each logged at warning level or below.
        faults = [
            Scenario(reply="Retried.", error_code="rate_limit_exceeded", fail_first=1),
            Scenario(reply="Retried.", error_code="server_error", error_delivery="response_failed"),
            Scenario(reply="Retried.", disconnect_after=0, fail_first=1),
            Scenario(reply="Retried.", session_expired_after=0, fail_first=1),
        ]
        for fault in faults:
            sim.scenario = fault
            await ha.converse(unique("fault"))
    finally:
        await stop_server(debug_server)
    log = debug_server.log()
    assert "DEBUG" in log and "Realtime event" in log
    assert log.count("retrying") >= 4, log
    assert SECRET_KEY not in log
    assert SECRET_KEY[-8:] not in log


async def test_dialect_mismatch_is_logged_and_never_spoken_as_audio(tmp_path: Path) -> None:
    """A GA-configured server meeting a beta-only server: the settings are refused."""
    async with RealtimeSimulator(dialect="beta") as beta_only:
        server = await start_server(tmp_path, server_config(beta_only.url, "ga"))
        try:
            handled, events = await HomeAssistant(server.uri).converse("hello?")
        finally:
            await stop_server(server)
    assert handled.text == FALLBACK
    assert not [e for e in events if e.payload]
    log = server.log()
    assert "rejected our session settings" in log and "realtime.dialect" in log
    assert "unknown_parameter" in log


async def exchange(uri: str, *events: Event, until: str | None = None) -> list[Event]:
    """Send events, then read until the server closes the connection, an event of type
    `until` came, or 5 s passed."""
    received: list[Event] = []
    async with AsyncTcpClient.from_uri(uri) as client:
        for event in events:
            await client.write_event(event)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while (event := await client.read_event()) is not None:
                    received.append(event)
                    if event.type == until:
                        break
    return received


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0" * 160).event()],
            "before audio-start",
        ),
        ([AudioStart(rate=16000, width=3, channels=1).event()], "width 3"),
        ([AudioStart(rate=0, width=2, channels=1).event()], "rate 0"),
        ([AudioStart(rate=16000, width=2, channels=0).event()], "channels 0"),
        (
            [
                AudioStart(rate=16000, width=2, channels=1).event(),
                AudioChunk(rate=16000, width=2, channels=1, audio=tone(0.1)).event(),
                AudioChunk(rate=16000, width=3, channels=1, audio=b"\0" * 30).event(),
            ],
            "width 3",
        ),
    ],
)
async def test_bad_audio_gets_a_clear_error_and_the_server_goes_on(
    server: ServerProcess,
    ha: HomeAssistant,
    sim: RealtimeSimulator,
    events: list[Event],
    message: str,
) -> None:
    received = await exchange(server.uri, *events)
    errors = [e for e in received if e.type == "error"]
    assert len(errors) == 1 and message in errors[0].data["text"]
    sim.scenario = Scenario(reply="Still here.")
    assert (await ha.converse("still there?"))[0].text == "Still here."


async def test_empty_agent_request_is_not_handled(server: ServerProcess) -> None:
    received = await exchange(server.uri, Transcript(text="  ").event(), until="not-handled")
    assert [e.type for e in received] == ["not-handled"]


async def test_utterance_is_capped_at_max_seconds(sim: RealtimeSimulator, tmp_path: Path) -> None:
    config = server_config(sim.url, "ga", audio={"max_utterance_seconds": 2})
    capped = await start_server(tmp_path, config)
    try:
        said = unique("a very long ramble")
        sim.scenario = Scenario(transcript=said)
        before = len(sim.connections)
        # HA 2026 reads the result while it uploads: the cap ends the turn, it stops there.
        ha_2026 = HomeAssistant(capped.uri, version=(2026, 11))
        transcript, _ = await ha_2026.stt(tone(5.0), chunk_ms=100)
    finally:
        await stop_server(capped)
    assert transcript.text == said
    (audio,) = [a for c in new_connections(sim, before) for a in c.commits]
    assert abs(len(audio) / 48000 - 2.0) <= 0.15, "only the first 2 s go upstream"
    assert "max_utterance_seconds" in capped.log()
