"""The simulator's turn detection (server_vad / semantic_vad), driven by plain websockets."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from sim_client import (
    AUDIO_DELTA,
    DIALECTS,
    ITEM_ADDED,
    TEXT_DELTA,
    Client,
    assert_sdk_valid,
    client,
    pcm,
)

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, vad

pytestmark = pytest.mark.timeout(15)


@pytest.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(serve_beta=True) as server:
        yield server
    assert_sdk_valid(
        server.connections
    )  # whatever the test did, the simulator spoke the SDK's events


# --- turn detection (server_vad / semantic_vad) -------------------------------------------

BYTES_PER_MS = 48  # pcm16 mono at 24 kHz


def tone(ms: int, dbfs: float = -6.0, freq: float = 440.0) -> bytes:
    """A sine whose peak is `dbfs` below full scale: "speech" for the simulated VAD."""
    t = np.arange(24 * ms) / 24000
    return (32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return b"\0\0" * (24 * ms)


def noise(ms: int, dbfs: float) -> bytes:
    """White noise at an RMS level of `dbfs` (deterministic)."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal(24 * ms) * 32768 * 10 ** (dbfs / 20)).astype("<i2").tobytes()


async def append_in_chunks(c: Client, audio: bytes, chunk_ms: int = 50) -> None:
    """Append like a streaming client; 50 ms chunks end mid-frame (frames are 20 ms)."""
    step = chunk_ms * BYTES_PER_MS
    for at in range(0, len(audio), step):
        await c.append(audio[at : at + step])


async def drain(c: Client, seconds: float = 0.3) -> list[str]:
    """The types of every event arriving until `seconds` pass without one."""
    types = []
    with contextlib.suppress(TimeoutError):
        while True:
            types.append((await c.recv(seconds))["type"])
    return types


def turn_update(dialect: str, turn: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """A session.update setting turn detection at the dialect's path (plus `extra`)."""
    if dialect == "beta":
        return {"turn_detection": turn, **extra}
    audio_in: dict[str, Any] = {"turn_detection": turn}
    if "input_audio_transcription" in extra:
        audio_in["transcription"] = extra.pop("input_audio_transcription")
    return {"type": "realtime", "audio": {"input": audio_in}, **extra}


def turn_of(dialect: str, session: dict[str, Any]) -> Any:
    if dialect == "beta":
        return session["turn_detection"]
    return session["audio"]["input"]["turn_detection"]


def test_speech_level_follows_threshold() -> None:
    def level(audio: bytes) -> float:
        return float(vad.frame_levels_db(audio[: vad.FRAME_BYTES])[0])

    loud, medium = level(tone(20)), level(tone(20, dbfs=-20))
    assert -10 < loud < -8  # a -6 dBFS sine has an RMS of about -9 dB
    assert all(loud > vad.speech_level_db(t) for t in (0.0, 0.5, 1.0))
    assert vad.speech_level_db(0.9) > medium > vad.speech_level_db(0.5)
    assert level(silence(20)) == vad.SILENCE_DB
    for quiet in (noise(20, -50), pcm(20)):  # faint noise; the fixture used by other tests
        assert level(quiet) < vad.speech_level_db(0.5)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_default_session_server_vad_commits_and_answers_with_audio(
    sim: RealtimeSimulator, dialect: str
) -> None:
    async with client(sim, dialect) as c:
        await append_in_chunks(c, tone(600) + silence(1000))
        started = await c.until("input_audio_buffer.speech_started")
        stopped = await c.until("input_audio_buffer.speech_stopped")
        committed = await c.until("input_audio_buffer.committed")
        done = await c.until("response.done")
        item_id = started["item_id"]
        assert started["audio_start_ms"] == 0  # onset at 0: no audio before it to pad with
        assert abs(stopped["audio_end_ms"] - 800) <= 20  # 600 ms speech + 200 ms silence
        assert stopped["item_id"] == committed["item_id"] == item_id
        types = c.types()
        order = [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            ITEM_ADDED[dialect],
            "response.created",
        ]
        assert [types.index(t) for t in order] == sorted(types.index(t) for t in order)
        assert c.of(ITEM_ADDED[dialect])[0]["item"]["id"] == item_id
        # Nobody sent response.create: the session's (audio) modalities apply.
        assert c.of(AUDIO_DELTA[dialect]) and not c.of(TEXT_DELTA[dialect])
        key = {"beta": "modalities", "ga": "output_modalities"}[dialect]
        assert done["response"][key] == sim.connections[0].session[key]
        assert "audio" in done["response"][key]
    conn = sim.connections[0]
    assert conn.vad_events == [("speech_started", 0), ("speech_stopped", 800)]
    assert [len(pcm) for pcm in conn.commits] == [800 * BYTES_PER_MS]
    assert sim.received_types().count("response.create") == 0


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_create_response_false_commits_and_transcribes_only(
    sim: RealtimeSimulator, dialect: str
) -> None:
    turn = {"type": "server_vad", "create_response": False}
    update = turn_update(dialect, turn, input_audio_transcription={"model": "whisper-1"})
    async with client(sim, dialect) as c:
        session = await c.update(update)
        assert turn_of(dialect, session)["create_response"] is False
        await c.append(tone(400) + silence(400))
        committed = await c.until("input_audio_buffer.committed")
        heard = await c.until("conversation.item.input_audio_transcription.completed")
        assert heard["item_id"] == committed["item_id"]
        assert heard["transcript"] == "Turn on the kitchen light."
        assert await c.nothing_for(0.3)
        assert not [t for t in c.types() if t.startswith("response.")]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_semantic_vad_eagerness_sets_the_wait(sim: RealtimeSimulator, dialect: str) -> None:
    ends: dict[str, int] = {}
    for eagerness in ("high", "auto", "medium", "low"):
        turn = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        async with client(sim, dialect) as c:
            session = await c.update(turn_update(dialect, turn))
            assert turn_of(dialect, session)["type"] == "semantic_vad"
            await c.append(tone(500) + silence(3000))
            stopped = await c.until("input_audio_buffer.speech_stopped")
            ends[eagerness] = stopped["audio_end_ms"] - 500  # the silence waited
    assert ends == {"high": 300, "auto": 800, "medium": 800, "low": 1500}


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_silence_and_faint_noise_start_nothing(sim: RealtimeSimulator, dialect: str) -> None:
    async with client(sim, dialect) as c:
        await append_in_chunks(c, silence(1000) + noise(1000, -50) + pcm(1000))
        assert await c.nothing_for(0.3)
        await c.send("input_audio_buffer.commit")  # a manual commit still works with VAD on
        assert (await c.recv())["type"] == "input_audio_buffer.committed"
    assert sim.connections[0].vad_events == []


async def test_threshold_raises_the_speech_level(sim: RealtimeSimulator) -> None:
    async with client(sim, "ga") as c:
        await c.update(turn_update("ga", {"type": "server_vad", "threshold": 0.9}))
        await c.append(tone(500, dbfs=-20) + silence(500))
        assert await c.nothing_for(0.3)
        await c.append(tone(500) + silence(500))
        assert (await c.recv())["type"] == "input_audio_buffer.speech_started"
    assert sim.connections[0].vad_events[0] == ("speech_started", 700)  # 1000 - 300 padding


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("padding", [300, 100])
async def test_prefix_padding_moves_audio_start_ms(
    sim: RealtimeSimulator, dialect: str, padding: int
) -> None:
    turn = {"type": "server_vad", "prefix_padding_ms": padding, "create_response": False}
    async with client(sim, dialect) as c:
        await c.update(turn_update(dialect, turn))
        await append_in_chunks(c, silence(1000) + tone(300) + silence(500))
        started = await c.until("input_audio_buffer.speech_started")
        stopped = await c.until("input_audio_buffer.speech_stopped")
        assert started["audio_start_ms"] == 1000 - padding
        assert stopped["audio_end_ms"] == 1500
        await c.until("input_audio_buffer.committed")
    # The committed turn runs from the padded start to the end of the silence.
    assert [len(x) for x in sim.connections[0].commits] == [(padding + 500) * BYTES_PER_MS]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("interrupt", [True, False])
async def test_speech_interrupts_an_active_response(
    sim: RealtimeSimulator, dialect: str, interrupt: bool
) -> None:
    sim.scenario = Scenario(silent=True)  # the response runs until cancelled
    async with client(sim, dialect) as c:
        turn = {"type": "server_vad", "interrupt_response": interrupt}
        await c.update(turn_update(dialect, turn))
        await c.send("response.create")
        first = (await c.until("response.created"))["response"]["id"]
        await c.append(tone(300) + silence(300))
        await c.until("input_audio_buffer.committed")
        if interrupt:
            created = await c.until("response.created")  # the automatic one, for the new turn
            done = c.of("response.done")[0]
            assert done["response"]["id"] == first != created["response"]["id"]
            assert done["response"]["status"] == "cancelled"
            assert done["response"]["status_details"] == {
                "type": "cancelled",
                "reason": "turn_detected",
            }
            types = c.types()
            assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
        else:
            assert "response.done" not in await drain(c)  # no cancel, no second response
            assert not c.of("response.done") and len(c.of("response.created")) == 1
            await c.send("response.cancel")
            done = await c.until("response.done")
            assert done["response"]["id"] == first
            assert done["response"]["status_details"]["reason"] == "client_cancelled"


async def test_manual_commit_right_after_the_vad_commit_is_empty(sim: RealtimeSimulator) -> None:
    async with client(sim, "ga") as c:
        await c.update(turn_update("ga", {"type": "server_vad", "create_response": False}))
        await c.append(tone(300) + silence(200))  # ends exactly where the VAD commits
        await c.until("input_audio_buffer.committed")
        await c.send("input_audio_buffer.commit")
        error = (await c.until("error"))["error"]
        assert error["code"] == "input_audio_buffer_commit_empty"
        assert "only has 0.00ms of audio" in error["message"]
    assert len(sim.connections[0].commits) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_turn_detection_null_turns_the_vad_off(sim: RealtimeSimulator, dialect: str) -> None:
    async with client(sim, dialect) as c:
        session = await c.update(turn_update(dialect, None))
        assert turn_of(dialect, session) is None
        await append_in_chunks(c, tone(600) + silence(1500))
        assert await c.nothing_for(0.3)
        await c.send("input_audio_buffer.commit")
        assert (await c.recv())["type"] == "input_audio_buffer.committed"
        assert not [t for t in await drain(c) if t.startswith("response.")]
    conn = sim.connections[0]
    assert conn.vad_events == [] and [len(x) for x in conn.commits] == [2100 * BYTES_PER_MS]


@pytest.mark.parametrize("modality", ["text", "audio"])
async def test_idle_timeout_prompts_after_the_response_played(
    sim: RealtimeSimulator, modality: str
) -> None:
    sim.scenario = Scenario(reply="one two three four")
    turn = {"type": "server_vad", "idle_timeout_ms": 1000}
    async with client(sim, "ga") as c:
        await c.update(turn_update("ga", turn, output_modalities=[modality]))
        await c.say("hi")
        await c.send("response.create")
        await c.until("response.done")
        played = sum(len(base64.b64decode(e["delta"])) for e in c.of(AUDIO_DELTA["ga"])) // 48
        assert (played > 0) is (modality == "audio")
        await drain(c, 0.1)  # rate_limits.updated
        await c.append(silence(600))
        assert await c.nothing_for(0.2)
        await c.append(silence(600 + played))
        timeout = await c.until("input_audio_buffer.timeout_triggered")
        assert (timeout["audio_start_ms"], timeout["audio_end_ms"]) == (played, played + 1000)
        committed = await c.until("input_audio_buffer.committed")
        assert committed["item_id"] == timeout["item_id"]
        await c.until("response.created")  # the model prompts the user
    assert sim.connections[0].vad_events == [("timeout_triggered", played + 1000)]


@pytest.mark.parametrize(
    ("dialect", "turn", "param"),
    [
        ("ga", {"type": "magic_vad"}, "session.audio.input.turn_detection.type"),
        (
            "beta",
            {"type": "semantic_vad", "eagerness": "eager"},
            "session.turn_detection.eagerness",
        ),
    ],
)
async def test_invalid_turn_detection_is_rejected(
    sim: RealtimeSimulator, dialect: str, turn: dict[str, Any], param: str
) -> None:
    async with client(sim, dialect) as c:
        before = sim.connections[0].session
        await c.send("session.update", session=turn_update(dialect, turn))
        error = (await c.recv())["error"]
        assert (error["code"], error["param"]) == ("invalid_value", param)
        assert sim.connections[0].session == before
