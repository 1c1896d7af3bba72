"""The conversation layer in-process against the simulator: history bounds, expiry, claims."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from harness import tone
from sim_client import assert_sdk_valid

from wyoming_realtime_text.audio import AudioConverter
from wyoming_realtime_text.config import Settings, parse_settings
from wyoming_realtime_text.conversations import Assistant
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario
from wyoming_realtime_text.turn import Outcome, Turn


def settings_for(
    sim: RealtimeSimulator, warm_sessions: int | None = 0, **conversation: object
) -> Settings:
    """Settings against `sim`; warm sessions off unless asked for (None: the default, 1)."""
    realtime = {"url": sim.url, "api_key": "k", "response_timeout": 2}
    if warm_sessions is not None:
        realtime["warm_sessions"] = warm_sessions
    return parse_settings(
        {
            "realtime": realtime,
            "conversation": conversation,
            "fallback_text": "Fallback.",
        }
    )


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(serve_beta=True) as simulator:
        yield simulator
    assert_sdk_valid(simulator.connections, client=True)  # both sides spoke the SDK's events


async def speak(assistant: Assistant, seconds: float = 1.0, **kwargs: object):
    turn = await assistant.start_audio_turn("en-US", respond=True, **kwargs)
    converter = AudioConverter()
    turn.feed_audio(converter.convert(tone(seconds), 16000, 2, 1))
    turn.feed_audio(converter.flush())
    turn.end_audio()
    return turn


async def test_history_is_bounded_by_deleting_old_items(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim, max_turns=2))
    try:
        for n in range(4):
            turn = await assistant.answer(f"message {n}", "c1", "en")
            await turn.wait()
            assert turn.outcome is Outcome.COMPLETED
        await asyncio.sleep(0.1)  # remembering happens after the answer
        (conn,) = sim.connections
        deleted = [e["item_id"] for e in conn.received if e["type"] == "conversation.item.delete"]
        assert len(deleted) == 4, "two oldest turns: a user item and an answer item each"
        assert not [t for _, way, t in conn.log if way == "out" and t == "error"]
        assert len(assistant.conversations["c1"].turns) == 2
    finally:
        await assistant.close()


async def test_idle_conversations_are_closed(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim, idle_seconds=60))
    try:
        await (await assistant.answer("hello", "idle-one", "en")).wait()
        await assistant.sweep(now=time.monotonic() + 45)  # not idle long enough yet
        await asyncio.sleep(0.1)
        assert "idle-one" in assistant.conversations and not sim.connections[0].closed
        await assistant.sweep(now=time.monotonic() + 3600)
        await asyncio.sleep(0.1)
        assert "idle-one" not in assistant.conversations
        assert sim.connections[0].closed
    finally:
        await assistant.close()


async def test_an_unclaimed_answer_is_given_up_at_the_claim_window(sim: RealtimeSimulator) -> None:
    """HA answered the command itself ("prefer handling commands locally"): nobody asks.

    The answer still streaming is cancelled upstream within claim_seconds, its session is
    closed, the page shows it as not asked, and a request arriving later is asked anew.
    """
    sim.scenario = Scenario(reply="A long answer " + "and more " * 40, delta_delay=0.05)
    assistant = Assistant(settings_for(sim, claim_seconds=0.3))
    ended: list[str] = []
    assistant.activity.on_end.append(lambda turn: ended.append(turn.ending))
    try:
        spoken = await speak(assistant)
        assistant.activity.track("10.0.0.2:5000", spoken)
        await spoken.transcript.wait()
        await asyncio.wait_for(spoken.wait(), 2)
        await asyncio.sleep(0.1)
        (conn,) = sim.connections
        assert "response.cancel" in [e["type"] for e in conn.received]
        assert conn.closed
        assert spoken.claim.asked is False and spoken.ending == "unclaimed"
        assert ended == ["unclaimed"]
        (record,) = assistant.activity.snapshot()["turns"]
        assert record["status"] == "unclaimed" and record["answer"] == ""
        assert record["transcript"] == "Turn on the kitchen light."
        late = await assistant.answer(spoken.transcript.text, "c-late", "en")
        assert late is not spoken
    finally:
        await assistant.close()


async def test_a_conversation_without_an_id_ends_with_its_turn(sim: RealtimeSimulator) -> None:
    """HA up to 2025.6 sends no conversation_id: nobody can follow up, so nothing is kept."""
    assistant = Assistant(settings_for(sim))
    try:
        typed = await assistant.answer("What time is it?", None, "en")
        await typed.wait()
        spoken = await speak(assistant)
        await spoken.transcript.wait()
        claimed = await assistant.answer(spoken.transcript.text, None, "en")
        assert claimed is spoken and spoken.claim.asked is True
        await claimed.wait()
        await asyncio.sleep(0.1)
        assert typed.outcome is claimed.outcome is Outcome.COMPLETED
        assert assistant.conversations == {}
        assert len(sim.connections) == 2 and all(c.closed for c in sim.connections)
    finally:
        await assistant.close()


async def test_a_spoken_follow_up_appears_once_as_its_own_conversations_turn(
    sim: RealtimeSimulator,
) -> None:
    """HA 2025.7+: the follow-up's started answer is dropped and its words asked again in
    the conversation that has the history; the page shows that turn only."""
    sim.scenario = Scenario(transcript="And tomorrow?")
    assistant = Assistant(settings_for(sim))
    try:
        await (await assistant.answer("Weather today?", "conv-1", "en")).wait()
        spoken = await speak(assistant)
        assistant.activity.track("10.0.0.2:5000", spoken)
        await spoken.transcript.wait()
        follow_up = await assistant.answer("And tomorrow?", "conv-1", "en")
        assistant.activity.track("10.0.0.2:5001", follow_up)
        assert follow_up is not spoken and spoken.claim.asked is False
        await follow_up.wait()
        await asyncio.sleep(0.1)
        turns = assistant.activity.snapshot()["turns"]
        assert [(t["transcript"], t["status"]) for t in turns] == [("And tomorrow?", "done")]
        assert sim.connections[1].closed  # the spoken turn's own session
    finally:
        await assistant.close()


HA_HOST = "10.0.0.2"  # Home Assistant: its STT and agent connections come from one host


async def speak_after(assistant: Assistant, sim: RealtimeSimulator, question: str) -> Turn:
    """A spoken turn from HA_HOST in conversation conv-1 (HA's STT, then its agent request
    claiming the answer), then that host's next STT turn, which hears `sim`'s transcript."""
    follow_up = sim.scenario.transcript
    sim.scenario.transcript = question
    first = await speak(assistant, client=HA_HOST)
    await first.transcript.wait()
    assert await assistant.answer(question, "conv-1", "en", HA_HOST) is first
    await first.wait()
    await asyncio.sleep(0.05)  # remembered
    sim.scenario.transcript = follow_up
    spoken = await speak(assistant, client=HA_HOST)
    await spoken.transcript.wait()
    return spoken


def sent(conn: object, kind: str) -> list[dict]:
    return [e for e in conn.received if e["type"] == kind]  # type: ignore[attr-defined]


async def test_a_spoken_follow_up_is_answered_in_its_conversation_in_one_round_trip(
    sim: RealtimeSimulator,
) -> None:
    """HA keeps a satellite's conversation_id for minutes: the next utterance from its host
    runs in that conversation's session, with the history, and is claimed there."""
    sim.scenario = Scenario(transcript="And tomorrow?")
    assistant = Assistant(settings_for(sim))
    try:
        spoken = await speak_after(assistant, sim, "Weather today?")
        claimed = await assistant.answer("And tomorrow?", "conv-1", "en", HA_HOST)
        assert claimed is spoken and spoken.claim.asked is True
        await claimed.wait()
        await asyncio.sleep(0.05)
        (conn,) = sim.connections  # no session of its own
        assert len(sent(conn, "response.create")) == 2  # the first turn's and this one's
        assert sent(conn, "conversation.item.delete") == []
        history = assistant.conversations["conv-1"].turns
        assert [t.transcript.text for t in history] == ["Weather today?", "And tomorrow?"]
    finally:
        await assistant.close()


async def test_a_wrong_guess_is_retracted_and_asked_where_it_belongs(
    sim: RealtimeSimulator,
) -> None:
    """Another conversation claims the words: the borrowed session forgets them (items
    deleted, history untouched) and the right conversation is asked."""
    sim.scenario = Scenario(transcript="Lights off.", reply="Done.")
    assistant = Assistant(settings_for(sim))
    try:
        spoken = await speak_after(assistant, sim, "Weather today?")
        await spoken.wait()  # its answer complete: its items are known
        answer = await assistant.answer("Lights off.", "conv-2", "en", HA_HOST)
        assert answer is not spoken and await answer.answer.wait() == "Done."
        await asyncio.sleep(0.1)
        borrowed, _conv_2 = sim.connections
        deleted = [e["item_id"] for e in sent(borrowed, "conversation.item.delete")]
        assert deleted == list(spoken.added_items) and len(deleted) == 2
        assert not borrowed.closed
        assert [t.transcript.text for t in assistant.conversations["conv-1"].turns] == [
            "Weather today?"
        ]
        assert [t.transcript.text for t in assistant.conversations["conv-2"].turns] == [
            "Lights off."
        ]
    finally:
        await assistant.close()


async def test_an_unclaimed_borrowed_answer_leaves_its_conversation_as_it_was(
    sim: RealtimeSimulator,
) -> None:
    sim.scenario = Scenario(transcript="What time is it?")
    assistant = Assistant(settings_for(sim, claim_seconds=0.3))
    try:
        spoken = await speak_after(assistant, sim, "Weather today?")
        await asyncio.wait_for(spoken.wait(), 2)
        await asyncio.sleep(0.5)
        (conn,) = sim.connections
        assert spoken.ending == "unclaimed"
        deleted = [e["item_id"] for e in sent(conn, "conversation.item.delete")]
        assert deleted == list(spoken.added_items) and deleted
        assert not conn.closed and "conv-1" in assistant.conversations
        later = await assistant.answer("And now?", "conv-1", "en", HA_HOST)
        assert (await later.answer.wait()).startswith("You said")
    finally:
        await assistant.close()


async def test_conversations_are_capped_least_recently_used_first(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim, max_conversations=2))
    try:
        for cid in ("a", "b", "a", "c"):
            await (await assistant.answer(f"hi from {cid}", cid, "en")).wait()
        await asyncio.sleep(0.1)
        assert list(assistant.conversations) == ["a", "c"]
        assert [c.closed for c in sim.connections] == [False, True, False]
    finally:
        await assistant.close()


async def test_parked_answer_is_claimed_once(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(transcript="Is the door locked?", reply="Yes, it is locked.")
    assistant = Assistant(settings_for(sim))
    try:
        spoken = await speak(assistant)
        assert await spoken.transcript.wait() == "Is the door locked?"
        await asyncio.sleep(0.05)
        claimed = await assistant.answer("  is the DOOR locked? ", "new-conv", "en")
        assert claimed is spoken
        assert await claimed.answer.wait() == "Yes, it is locked."
        again = await assistant.answer("Is the door locked?", "other", "en")
        assert again is not spoken, "a parked answer is handed out once"
        await again.wait()
    finally:
        await assistant.close()


async def test_stt_only_closes_its_session(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim))
    try:
        turn = await assistant.start_audio_turn("en", respond=False)
        turn.feed_audio(AudioConverter().convert(tone(0.5), 16000, 2, 1))
        turn.end_audio()
        await turn.wait()
        await asyncio.sleep(0.1)
        assert turn.transcript.text == "Turn on the kitchen light."
        assert not [e for e in sim.connections[0].received if e["type"] == "response.create"]
        assert sim.connections[0].closed
    finally:
        await assistant.close()


async def test_too_short_utterance_is_not_committed(sim: RealtimeSimulator) -> None:
    assistant = Assistant(settings_for(sim))
    try:
        turn = await speak(assistant, seconds=0.05)
        await turn.wait()
        assert turn.outcome is Outcome.NO_SPEECH
        assert turn.transcript.text == ""
        types = [e["type"] for e in sim.connections[0].received]
        assert "input_audio_buffer.commit" not in types and "response.create" not in types
    finally:
        await assistant.close()


async def test_cancelled_turn_cancels_its_response_upstream(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(silent=True)
    assistant = Assistant(settings_for(sim))
    try:
        turn = await speak(assistant)
        for _ in range(100):
            received = sim.connections[0].received if sim.connections else []
            if any(e["type"] == "response.create" for e in received):
                break
            await asyncio.sleep(0.02)
        await turn.cancel()
        assert turn.outcome is Outcome.CANCELLED
        await asyncio.sleep(0.1)
        assert any(e["type"] == "response.cancel" for e in sim.connections[0].received)
    finally:
        await assistant.close()


async def test_close_leaves_no_tasks_or_connections(sim: RealtimeSimulator) -> None:
    baseline = len(asyncio.all_tasks())
    assistant = Assistant(settings_for(sim))
    await (await assistant.answer("one", "x", "en")).wait()
    await speak(assistant)
    await assistant.close()
    await asyncio.sleep(0.1)
    assert all(c.closed for c in sim.connections)
    assert len(asyncio.all_tasks()) <= baseline


async def test_agent_request_racing_the_parking_still_claims(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(transcript="Quick question", reply="Quick answer.")
    assistant = Assistant(settings_for(sim))
    try:
        spoken = await speak(assistant)
        await spoken.transcript.wait()
        # No yield to the loop between the transcript and the agent request.
        claimed = await assistant.answer("Quick question", None, "en")
        assert claimed is spoken
        assert await claimed.answer.wait() == "Quick answer."
    finally:
        await assistant.close()


async def test_concurrent_requests_in_one_conversation_queue_up(sim: RealtimeSimulator) -> None:
    """Two turns never share a session at once: each answer belongs to its own question."""
    sim.scenario = Scenario(reply=lambda text: f"Answer to {text}", delta_delay=0.01)
    assistant = Assistant(settings_for(sim))
    try:
        questions = [f"Question {n}." for n in range(3)]
        turns = await asyncio.gather(*(assistant.answer(q, "same", "en") for q in questions))
        await asyncio.gather(*(t.wait() for t in turns))
        assert [t.answer.text for t in turns] == [f"Answer to {q}" for q in questions]
        assert all(t.outcome is Outcome.COMPLETED for t in turns)
        assert len(sim.connections) == 1
    finally:
        await assistant.close()


async def test_a_request_queued_behind_an_abandoned_turn_is_still_answered(
    sim: RealtimeSimulator,
) -> None:
    """The turn ahead is cancelled (its client left): the one waiting for it goes on."""
    sim.scenario = Scenario(silent=True)
    assistant = Assistant(settings_for(sim))
    try:
        first = await assistant.answer("First.", "same", "en")
        queued = asyncio.create_task(assistant.answer("Second.", "same", "en"))
        await asyncio.sleep(0.1)
        sim.scenario = Scenario(reply="Second answer.")
        await first.cancel()
        second = await asyncio.wait_for(queued, 5)
        assert await second.answer.wait() == "Second answer."
    finally:
        await assistant.close()


async def test_an_evicted_conversations_answer_ends_with_the_fallback(
    sim: RealtimeSimulator,
) -> None:
    """More conversations than max_conversations: the least recently used one is closed even
    mid-answer; whoever follows that answer hears the fallback, not silence."""
    sim.scenario = Scenario(silent=True)
    assistant = Assistant(settings_for(sim, max_conversations=1))
    try:
        first = await assistant.answer("First.", "a", "en")
        await assistant.answer("Elsewhere.", "b", "en")  # evicts "a"
        await asyncio.wait_for(first.wait(), 5)
        assert first.answer.done and first.answer.text == "Fallback."
        assert (first.outcome, first.reason) == (Outcome.FALLBACK, "conversation_closed")
    finally:
        await assistant.close()


async def test_a_conversation_closed_under_a_queued_request_opens_no_session(
    sim: RealtimeSimulator,
) -> None:
    """Evicted while a request waits in it: no session may open that nobody would close."""
    sim.scenario = Scenario(silent=True)
    assistant = Assistant(settings_for(sim, max_conversations=1))
    try:
        await assistant.answer("First.", "a", "en")
        queued = asyncio.create_task(assistant.answer("Second.", "a", "en"))
        await asyncio.sleep(0.1)
        await assistant.answer("Elsewhere.", "b", "en")  # closes "a", cancelling "First."
        await (await asyncio.wait_for(queued, 5)).wait()
    finally:
        await assistant.close()
    await asyncio.sleep(0.1)
    assert all(c.closed for c in sim.connections)
