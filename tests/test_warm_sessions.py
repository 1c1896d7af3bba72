"""Warm sessions: spares ready before anyone speaks, rotation, reconnect and re-seeding."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from sim_client import assert_sdk_valid
from test_conversations import settings_for, speak

from wyoming_realtime_text.config import SatelliteSettings
from wyoming_realtime_text.conversations import Assistant
from wyoming_realtime_text.home.peer import Peer
from wyoming_realtime_text.realtime import pool
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection
from wyoming_realtime_text.turn import Outcome


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(serve_beta=True) as simulator:
        yield simulator
    assert_sdk_valid(simulator.connections, client=True)  # both sides spoke the SDK's events


async def until(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def user_texts(conn: SimConnection) -> list[tuple[str, str]]:
    return [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in conn.received
        if e["type"] == "conversation.item.create"
    ]


async def test_an_utterance_uses_a_session_opened_before_it(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim, warm_sessions=None))
    assistant.start()
    try:
        await until(lambda: all(p.ready == 1 for p in assistant.pools.values()), "warm sessions")
        opened = len(sim.connections)  # one spare per kind: plain and with turn detection
        sim.scenario = Scenario(handshake_delay=0.5)  # a cold start would show it
        started = time.monotonic()
        turn = await speak(assistant)
        await turn.wait()
        assert turn.outcome is Outcome.COMPLETED
        (used,) = [c for c in sim.connections if c.commits]
        assert sim.connections.index(used) < opened, "the utterance went to a warm session"
        assert used.log[0][0] < started
        commit_at = next(t for t, way, kind in used.log if kind == "input_audio_buffer.commit")
        assert commit_at - started < 0.5, "no handshake on the utterance's path"
        await until(lambda: len(sim.connections) == opened + 1, "a replacement spare")
    finally:
        await assistant.close()
    assert all(c.closed for c in sim.connections)


async def test_a_lost_session_is_replaced_and_re_seeded(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim, warm_sessions=None))
    try:
        sim.scenario = Scenario(reply="Nice to meet you, Ada.")
        first = await assistant.answer("My name is Ada.", "c1", "en")
        await first.wait()
        await asyncio.sleep(0.05)
        sim.scenario = Scenario(session_expired_after=1, reply="One two three.")
        lost = await assistant.answer("Count to three.", "c1", "en")
        await lost.wait()
        assert lost.outcome is Outcome.FALLBACK
        sim.scenario = Scenario(reply="Your name is Ada.")
        follow_up = await assistant.answer("What is my name?", "c1", "en")
        await follow_up.wait()
        assert follow_up.answer.text == "Your name is Ada."
        old, new = sim.connections
        assert old.closed
        assert user_texts(new) == [
            ("user", "My name is Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "What is my name?"),
        ]
    finally:
        await assistant.close()


async def test_a_new_session_is_told_the_calls_the_old_one_made(sim: RealtimeSimulator) -> None:
    """A command's calls and what became of them are re-seeded with its words, so that
    "turn it off again" still knows what "it" is after a lost session."""
    assistant = Assistant(settings_for(sim))
    tools = assistant.home.tools(Peer.from_request("1.10.2", {"conversation_id": "c1"}))
    try:
        sim.scenario = Scenario()
        command = await assistant.answer("Turn on the kitchen light.", "c1", "en", tools=tools)
        await command.wait()
        (call,) = command.calls
        await command.report([(call, "Sent to Home Assistant.")])
        await asyncio.sleep(0.05)  # remembered
        sim.scenario = Scenario(session_expired_after=1, reply="One two three.")
        await (await assistant.answer("Count to three.", "c1", "en")).wait()
        sim.scenario = Scenario(reply="It is on.")
        await (await assistant.answer("Is it on?", "c1", "en")).wait()
        _, new = sim.connections
        created = [e["item"] for e in new.received if e["type"] == "conversation.item.create"]
        assert [item["type"] for item in created] == [
            "message",
            "function_call",
            "function_call_output",
            "message",
        ]
        assert (created[1]["call_id"], created[1]["name"]) == (call.call_id, call.name)
        assert created[1]["arguments"] == call.arguments
        assert created[2] == {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": "Sent to Home Assistant.",
        }
        assert created[0]["content"][0]["text"] == "Turn on the kitchen light."
        assert created[3]["content"][0]["text"] == "Is it on?"
        errors = [t for _, way, t in new.log if way == "out" and t == "error"]
        assert errors == [], "the API took every re-seeded item"
        assert command.user_item_id in new.items and set(command.item_ids) <= set(new.items)
    finally:
        await assistant.close()


async def test_an_aging_session_is_rotated_while_idle(
    sim: RealtimeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "MAX_SESSION_SECONDS", {"ga": 1.5, "beta": 1.5})
    monkeypatch.setattr(pool, "ROTATE_MARGIN_SECONDS", 1.0)  # rotate after 0.5 s
    assistant = Assistant(settings_for(sim, warm_sessions=None))
    try:
        sim.scenario = Scenario(reply="Noted.")
        await (await assistant.answer("Remember the number 7.", "c1", "en")).wait()
        await asyncio.sleep(0.7)
        await assistant.sweep()
        await until(lambda: len(sim.connections) == 2 and sim.connections[0].closed, "rotation")
        assert user_texts(sim.connections[1]) == [
            ("user", "Remember the number 7."),
            ("assistant", "Noted."),
        ]
        await (await assistant.answer("Which number?", "c1", "en")).wait()
        assert user_texts(sim.connections[1])[-1] == ("user", "Which number?")
        assert len(sim.connections) == 2, "the rotated session served the next turn"
    finally:
        await assistant.close()


async def test_an_old_spare_is_never_handed_out(
    sim: RealtimeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = Assistant(settings_for(sim, warm_sessions=None))
    assistant.start()
    try:
        await until(lambda: assistant.pools[False].ready == 1, "a warm session")
        monkeypatch.setattr(pool, "MAX_SESSION_SECONDS", {"ga": 0.0, "beta": 0.0})
        monkeypatch.setattr(pool, "ROTATE_MARGIN_SECONDS", 0.0)
        turn = await assistant.answer("hello", "c1", "en")
        await turn.wait()
        spare = sim.connections[0]
        assert spare.closed and not user_texts(spare)
    finally:
        await assistant.close()


async def test_re_seeded_turns_get_their_new_ids_for_trimming(sim: RealtimeSimulator) -> None:
    """A re-seeded turn is deleted from the new session when the history outgrows max_turns."""
    assistant = Assistant(settings_for(sim, max_turns=1))
    try:
        sim.scenario = Scenario(reply="Hello Ada.")
        await (await assistant.answer("I am Ada.", "c1", "en")).wait()
        sim.scenario = Scenario(session_expired_after=1, reply="One two three.")
        await (await assistant.answer("Count to three.", "c1", "en")).wait()
        sim.scenario = Scenario(reply="Noted.")
        await (await assistant.answer("I like tea.", "c1", "en")).wait()
        _, new = sim.connections
        await until(
            lambda: any(e["type"] == "conversation.item.delete" for e in new.received), "trimming"
        )
        await asyncio.sleep(0.1)
        deleted = [e["item_id"] for e in new.received if e["type"] == "conversation.item.delete"]
        assert len(deleted) == 2, "the re-seeded question and answer"
        assert not [t for _, way, t in new.log if way == "out" and t == "error"]
        left = [(item["role"], new.item_texts.get(i)) for i, item in new.items.items()]
        assert left == [("user", "I like tea."), ("assistant", None)]
    finally:
        await assistant.close()


async def test_a_refused_key_does_not_keep_the_warm_pool_retrying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool, "RETRY_SECONDS", 0.05)  # a transient failure retries this fast
    async with RealtimeSimulator(api_key="sk-other") as sim:
        assistant = Assistant(settings_for(sim, warm_sessions=None))
        assistant.start()
        try:
            await until(lambda: sim.handshakes == 1, "one try for the pool")
            await asyncio.sleep(0.3)
            assert sim.handshakes == 1, "no retry loop on a refused key"
            turn = await assistant.answer("hello", "c1", "en")
            await turn.wait()
            assert (turn.outcome, turn.reason) == (Outcome.FALLBACK, "http_401")
            assert turn.answer.text == assistant.settings.key_error_text
            await asyncio.sleep(0.3)
            assert sim.handshakes == 3, "the turn's own try, and one more for its pool"
        finally:
            await assistant.close()


@pytest.mark.parametrize(("ha_turns", "satellites"), [("api", 0), ("api", 2), ("ha", 0), ("ha", 2)])
async def test_warm_sessions_is_the_number_of_spares_at_idle(
    sim: RealtimeSimulator, ha_turns: str, satellites: int
) -> None:
    """The README's meaning: `warm_sessions` spares, plus one per satellite served here;
    nothing more while nobody speaks. With ha_turns: ha, Home Assistant's turns have sessions
    of their own kind (no turn detection): `warm_sessions` spares of each kind."""
    raw = settings_for(sim, warm_sessions=None)
    links = [SatelliteSettings(uri=f"tcp://127.0.0.1:{10700 + n}") for n in range(satellites)]
    vad = dataclasses.replace(raw.turn_detection, ha_turns=ha_turns)
    assistant = Assistant(dataclasses.replace(raw, satellites=links, turn_detection=vad))
    assistant.start()
    spares = 1 + satellites + (1 if ha_turns == "ha" else 0)
    try:
        await until(lambda: sim.handshakes == spares, "the spares")
        await asyncio.sleep(0.3)
        assert sim.handshakes == spares
        if ha_turns == "ha":
            assert [p.ready for p in assistant.pools.values()] == [1 + satellites, 1]
        else:
            assert assistant.pools[False] is assistant.pools[True]
            assert assistant.pools[True].ready == 1 + satellites
    finally:
        await assistant.close()


async def test_an_unreachable_api_is_warned_about_once_not_per_pool_and_retry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning per problem: the pools retrying every RETRY_SECONDS say it once, and
    once sessions open again, that is said too."""
    monkeypatch.setattr(pool, "RETRY_SECONDS", 0.05)
    caplog.set_level(logging.DEBUG, logger="wyoming_realtime_text")
    async with RealtimeSimulator() as sim:
        sim.scenario = Scenario(reject_handshake=503)
        assistant = Assistant(settings_for(sim, warm_sessions=None))
        assistant.start()
        try:
            await until(lambda: sim.handshakes >= 8, "several retries by both pools")
            warned = [r for r in caplog.records if "Cannot open a warm session" in r.message]
            assert [r.levelname for r in warned].count("WARNING") == 1, warned
            sim.scenario = Scenario()
            await until(lambda: all(p.ready == 1 for p in assistant.pools.values()), "spares")
            assert any(r.message == "Warm sessions open again" for r in caplog.records)
        finally:
            await assistant.close()
