"""The SDK as oracle: every event of every flow, client and server, checked in both dialects.

The real server runs as a subprocess against the simulator (beta: a compatible server, the
conftest's ``serve_beta=True``), driven as Home Assistant and a satellite drive it. After
each flow, every event the server sent (``conn.received``) is checked strictly against the
openai SDK's client event models and every event the simulator sent (``conn.sent``) against
its server event models (tests/sdk_oracle.py). Each test also asserts the events its flow
must have produced, so a flow that quietly did nothing cannot pass.

The simulator's own paths that the server never provokes (bad input, item retrieval,
turn detection interrupting a response, the idle timeout, refused handshakes...) are
checked in test_sdk_oracle_sim.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from harness import (
    SILENCE,
    HomeAssistant,
    ServerProcess,
    running_server,
    server_config,
    speech,
    tone,
)
from sim_client import assert_sdk_valid, eventually

from wyoming_realtime_text.simulator import (
    RealtimeSimulator,
    Scenario,
    SimConnection,
    SimulatedSatellite,
    SimulatedTts,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

TEXT_EVENTS = {
    "ga": {"response.output_text.delta", "response.output_text.done"},
    "beta": {"response.text.delta", "response.text.done"},
}
AUDIO_EVENTS = {
    "ga": {"response.output_audio.delta", "response.output_audio_transcript.delta"},
    "beta": {"response.audio.delta", "response.audio_transcript.delta"},
}
ITEM_ADDED = {"ga": "conversation.item.added", "beta": "conversation.item.created"}
TRANSCRIBED = "conversation.item.input_audio_transcription.completed"
NOT_TRANSCRIBED = "conversation.item.input_audio_transcription.failed"


@dataclass
class Rig:
    """The server under test with a streaming satellite and a TTS service of its own."""

    server: ServerProcess
    talker: SimulatedSatellite
    tts: SimulatedTts


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    sim: RealtimeSimulator, dialect: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    """One server per dialect; `max_turns: 1` so that a follow-up trims the history."""
    talker = SimulatedSatellite(
        name="talker", audio=speech("kitchen") + SILENCE, send_audio_stop=False, realtime=True
    )
    async with SimulatedTts() as tts:
        await talker.start()
        # GA with a reasoning model, so that session.update carries `reasoning` too.
        realtime = {"model": "gpt-realtime-2.1-mini"} if dialect == "ga" else {}
        config = server_config(
            sim.url,
            dialect,
            realtime=realtime,
            tts={"uri": tts.uri},
            conversation={"max_turns": 1},
        )
        config["satellites"] = [{"uri": talker.uri, "name": talker.name}]
        try:
            async with running_server(tmp_path_factory.mktemp("oracle"), config) as server:
                await talker.wait_connected(10)
                yield Rig(server, talker, tts)
        finally:
            await talker.stop()


@pytest.fixture
def server(rig: Rig) -> ServerProcess:
    """The rig's server, for conftest's `ha`."""
    return rig.server


async def checked(
    sim: RealtimeSimulator, before: int, client: set[str], server: set[str]
) -> list[SimConnection]:
    """The connections since `before`, once they carry the `client` and `server` event types
    expected of the flow; asserts every one of their events fits the SDK strictly."""
    connections = sim.connections[before:]

    def sent_types() -> set[str]:
        return {e["type"] for c in connections for e in c.sent}

    def received_types() -> set[str]:
        return {e["type"] for c in connections for e in c.received}

    await eventually(lambda: server <= sent_types() and client <= received_types(), 5)
    assert_sdk_valid(connections, client=True)
    return connections


def responses(connections: list[SimConnection]) -> list[dict[str, Any]]:
    """The `response` of every response.done the simulator sent."""
    return [e["response"] for c in connections for e in c.sent if e["type"] == "response.done"]


def conversation() -> str:
    return uuid.uuid4().hex


async def test_spoken_turn(sim: RealtimeSimulator, ha: HomeAssistant, dialect: str) -> None:
    said = f"what is the weather like {uuid.uuid4().hex[:6]}"
    sim.scenario = Scenario(transcript=said, reply="Sunny and warm.")
    before = len(sim.connections)
    transcript, _ = await ha.stt(tone(1.5))
    handled, _ = await ha.converse(said, conversation_id=conversation())
    assert (transcript.text, handled.text) == (said, "Sunny and warm.")
    client = {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit"}
    server = {"session.created", "session.updated", "input_audio_buffer.committed", TRANSCRIBED}
    server |= {"response.created", "response.output_item.added", "response.content_part.added"}
    server |= {"response.content_part.done", "response.output_item.done", "response.done"}
    server |= TEXT_EVENTS[dialect] | {ITEM_ADDED[dialect]}
    connections = await checked(sim, before, client | {"response.create"}, server)
    update = next(e["session"] for e in connections[0].received if e["type"] == "session.update")
    assert ("reasoning" in update) is (dialect == "ga"), "the GA rig's model reasons"
    heard = next(e for e in connections[0].sent if e["type"] == TRANSCRIBED)
    assert ("languages" in heard) is (dialect == "ga"), "GA transcription told the languages"


async def test_typed_follow_ups_trim_the_history(
    sim: RealtimeSimulator, ha: HomeAssistant, dialect: str
) -> None:
    sim.scenario = Scenario(reply=lambda text: f"Noted: {text}")
    before = len(sim.connections)
    talk = conversation()
    for text in ("My name is Ada.", "What is my name?", "And my surname?"):
        assert (await ha.converse(text, conversation_id=talk))[0].text == f"Noted: {text}"
    client = {"conversation.item.create", "conversation.item.delete", "response.create"}
    server = {"conversation.item.deleted", "response.done", ITEM_ADDED[dialect]}
    await checked(sim, before, client, server)


async def test_spoken_follow_up_in_another_language(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    talk = conversation()
    sim.scenario = Scenario(transcript="Set a timer.", reply="For how long?")
    before = len(sim.connections)
    await ha.stt(tone(1.0))
    assert (await ha.converse("Set a timer.", conversation_id=talk))[0].text == "For how long?"
    sim.scenario = Scenario(transcript="五分", reply="はい。")
    await ha.stt(tone(1.0), language="ja")
    assert (await ha.converse("五分", conversation_id=talk))[0].text == "はい。"
    await checked(sim, before, {"session.update", "response.create"}, {"response.done"})


async def test_a_warm_session_is_told_the_language(
    sim: RealtimeSimulator, dialect: str, tmp_path: Path
) -> None:
    """A spare opens before anyone speaks; taking it sends the language (a second update)."""
    sim.scenario = Scenario(transcript="Hallo.", reply="Hallo!")
    before = len(sim.connections)
    config = server_config(sim.url, dialect, realtime={"warm_sessions": 1})
    async with running_server(tmp_path, config) as warm:
        await eventually(lambda: any(c.sent for c in sim.connections[before:]), 5)
        transcript, _ = await HomeAssistant(warm.uri).stt(tone(1.0), language="de")
        assert transcript.text == "Hallo."
        connections = await checked(sim, before, {"input_audio_buffer.commit"}, {TRANSCRIBED})
    (used,) = [c for c in connections if c.commits]
    updates = [e["session"] for e in used.received if e["type"] == "session.update"]
    assert len(updates) == 2, "the spare's configuration, then the language"


async def test_cancel_at_the_response_timeout(sim: RealtimeSimulator, ha: HomeAssistant) -> None:
    sim.scenario = Scenario(first_token_delay=60)
    before = len(sim.connections)
    await ha.converse("Think hard.", conversation_id=conversation())
    connections = await checked(sim, before, {"response.cancel"}, {"response.done"})
    assert [r["status"] for r in responses(connections)] == ["cancelled"]


async def test_re_seeding_after_a_lost_session(sim: RealtimeSimulator, ha: HomeAssistant) -> None:
    talk = conversation()
    sim.scenario = Scenario(reply="Nice to meet you, Ada.")
    before = len(sim.connections)
    await ha.converse("My name is Ada.", conversation_id=talk)
    sim.scenario = Scenario(reply="Your name is Ada.", disconnect_after=0, fail_first=1)
    assert (await ha.converse("What is my name?", conversation_id=talk))[0].text == (
        "Your name is Ada."
    )
    connections = await checked(sim, before, {"conversation.item.create"}, {"response.done"})
    roles = [e["item"]["role"] for e in connections[-1].received if "item" in e]
    assert roles == ["user", "assistant", "user"], "the history, then the question"


async def test_streamed_turn_with_the_apis_turn_detection(sim: RealtimeSimulator, rig: Rig) -> None:
    sim.scenario = Scenario(transcript="What is the weather like today?", reply="Mild.")
    before = len(sim.connections)
    await rig.talker.trigger()
    await rig.talker.wait_played(20)
    assert rig.tts.synthesized[-1] == "Mild."
    client = {"input_audio_buffer.append", "input_audio_buffer.clear", "response.create"}
    server = {"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"}
    server |= {"input_audio_buffer.committed", TRANSCRIBED, "response.done"}
    await checked(sim, before, client, server)


# Scenario keyword arguments, not Scenarios: `fail_first` counts, each dialect needs a fresh one.
FAULTS = [
    pytest.param({"error_code": "rate_limit_exceeded", "fail_first": 1}, {"error"}, id="error"),
    pytest.param(
        {"error_code": "server_error", "error_delivery": "response_failed", "fail_first": 1},
        {"response.done"},
        id="failed",
    ),
    pytest.param({"cut_after": 1, "reply": "One two three four."}, {"response.done"}, id="cut"),
    pytest.param({"session_expired_after": 0, "fail_first": 1}, {"error"}, id="expired"),
]


@pytest.mark.parametrize(("fault", "expected"), FAULTS)
async def test_faults_of_a_typed_turn(
    sim: RealtimeSimulator, ha: HomeAssistant, fault: dict[str, Any], expected: set[str]
) -> None:
    sim.scenario = Scenario(**fault)
    before = len(sim.connections)
    await ha.converse("Are you there?", conversation_id=conversation())
    await checked(sim, before, {"response.create"}, expected)


async def test_audio_despite_text_is_checked_as_audio(
    sim: RealtimeSimulator, ha: HomeAssistant, dialect: str
) -> None:
    sim.scenario = Scenario(mode="audio_despite_text", reply="Spoken anyway.")
    before = len(sim.connections)
    await ha.converse("Tell me a joke.", conversation_id=conversation())
    await checked(sim, before, set(), AUDIO_EVENTS[dialect] | {"response.done"})


@pytest.mark.parametrize(
    ("fault", "expected"),
    [({"mode": "forum_replay"}, TRANSCRIBED), ({"transcription_fails": True}, NOT_TRANSCRIBED)],
    ids=["forum-replay", "transcription-fails"],
)
async def test_faults_of_a_spoken_turn(
    sim: RealtimeSimulator, ha: HomeAssistant, fault: dict[str, Any], expected: str
) -> None:
    sim.scenario = Scenario(**fault)
    before = len(sim.connections)
    await ha.stt(tone(1.5), language="ja")
    await ha.converse("こんばんは", conversation_id=conversation())
    await checked(sim, before, {"input_audio_buffer.commit"}, {expected})
