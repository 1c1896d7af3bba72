"""Black-box tests against REAL Home Assistant core, for the HA releases users have now.

Each release runs in its own cached environment (`real_ha_env`): HA 2026.11 on Python 3.14
in a Debian chroot, 2025.12.5 and 2025.4.4 on pyenv's Python 3.13.0 (the rig: `ha_rig.py`).
HA core is booted headless on loopback by `ha_driver.py`; our server is added through HA's
real Wyoming config flow (through `WyomingTap`, a recording proxy, so that what HA sends us
can be read), with the simulated Wyoming TTS as a second entry; the preferred Assist
pipeline uses our STT and agent and that TTS. Speech is the repo's espeak-ng WAVs, streamed
as a satellite would; the Realtime simulator's STT "hears" the text each test gives it.

Each HA boots once per module run; the observations several checks share (a first spoken
turn, a spoken follow-up, a local command) are made once, in module fixtures, and each
check asserts one thing about them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from ha_home import (
    at_least,
    env,  # noqa: F401  (a fixture)
    spec,  # noqa: F401  (a fixture)
)
from ha_rig import BEDROOM, KITCHEN, OUR_TITLE, TTS_TITLE, Rig, Turn, answer_to, booted, upstream
from real_ha_env import HaEnv, HaSpec

# Environment builds count toward the first test of each release; every wait inside is
# bounded on its own (build steps, HA's boot, each command).
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(2400)]

LANGUAGES = ["en", "ja"]  # our server's `languages` (harness.server_config)
QUESTION = "What is the weather like today?"
FOLLOW_UP = "And what about tomorrow?"
TYPED = "How far away is the moon?"
LOCAL_TIME = "What time is it?"
LOCAL_LIGHT = "Turn on the kitchen light."
CHUNK_BYTES = 320  # HA's STT audio: 10 ms at 16 kHz, 16-bit mono


# -- the rig -----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    spec: HaSpec,  # noqa: F811 - the fixture from ha_home
    env: HaEnv,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Rig]:
    async with booted(spec, env, tmp_path_factory.mktemp(f"real-ha-{spec.version}")) as rig:
        yield rig


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def first_turn(rig: Rig) -> Turn:
    """A spoken question that starts a conversation, from the device HA knows it by."""
    return await rig.speak(KITCHEN, QUESTION, from_device=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def follow_up(rig: Rig, first_turn: Turn) -> Turn:
    """A spoken follow-up in the first turn's conversation (HA's conversation_id)."""
    return await rig.speak(BEDROOM, FOLLOW_UP, conversation_id=first_turn.conversation_id)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_turns(rig: Rig) -> dict[str, Turn]:
    """Commands HA's own intents answer, spoken with "prefer handling commands locally" on."""
    await rig.ha.call("set_state", entity_id="input_boolean.kitchen_light", on=False)
    turns = {}
    for text in (LOCAL_TIME, LOCAL_LIGHT):
        turns[text] = await rig.speak(KITCHEN, text, prefer_local=True)
    return turns


# -- setup: the config flow and the entities ---------------------------------------------


async def test_config_flow_makes_stt_and_agent_with_our_languages(rig: Rig) -> None:
    entries = rig.ha.ready["entries"]
    assert [e["title"] for e in entries] == [OUR_TITLE, TTS_TITLE], rig.context()
    assert all(e["state"].endswith("LOADED") for e in entries), entries
    entities = await rig.ha.call("entities")
    ours = {e["domain"]: e for e in entities if e["entry_title"] == OUR_TITLE}
    assert set(ours) == {"stt", "conversation"}, entities  # no TTS: we never speak
    assert sorted(ours["stt"]["languages"]) == LANGUAGES
    assert sorted(ours["conversation"]["languages"]) == LANGUAGES
    tts = [e for e in entities if e["entry_title"] == TTS_TITLE]
    assert [e["domain"] for e in tts] == ["tts"], entities
    # The config flow and the entry's setup each asked our server what it offers.
    assert [c.types() for c in rig.tap.connections[:2]] == [["describe"]] * 2


async def test_pipeline_uses_our_stt_and_agent(rig: Rig) -> None:
    pipeline = rig.ha.ready["pipeline"]
    assert pipeline["stt_engine"] == "stt.realtime_text", pipeline
    assert pipeline["conversation_engine"] == "conversation.realtime_text", pipeline
    assert pipeline["tts_engine"] == "tts.simulated_tts", pipeline


# -- a spoken turn: stt → intent → tts ---------------------------------------------------


async def test_spoken_turn_stt_intent_tts(rig: Rig, first_turn: Turn) -> None:
    turn = first_turn
    assert not turn.events("error"), (turn.result["events"], rig.context())
    assert turn.stt_text == QUESTION
    assert turn.event("intent-end")["data"].get("processed_locally") in (False, None)
    assert turn.speech == answer_to(QUESTION), rig.context()
    assert turn.event("tts-start")["data"]["tts_input"] == answer_to(QUESTION)
    # The answer was spoken by the TTS HA was given, and HA serves that very audio.
    assert answer_to(QUESTION) in rig.tts.synthesized
    audio = turn.result["tts_audio"]
    assert audio["status"] == 200, audio
    seconds = rig.tts.seconds_per_char * len(answer_to(QUESTION))
    assert audio["wav"]["frames"] == round(seconds * rig.tts.rate), audio
    # Events in order, the transcript before the answer.
    types = [e["type"] for e in turn.result["events"]]
    assert types.index("stt-end") < types.index("intent-end") < types.index("tts-end"), types


async def test_spoken_turn_reaches_us_once(rig: Rig, first_turn: Turn) -> None:
    """One STT request and one agent request; the words committed once (by the API's turn
    detection: see test_the_api_hears_the_end_first) and one response upstream."""
    window = first_turn.window
    assert len(window.tap_connections("stt")) == 1, rig.context()
    assert len(first_turn.agent_requests()) == 1, rig.context()
    assert len(window.commits()) == 1
    assert window.count("response.create") == 1, [e["type"] for _, e in window.sim_events()]
    # The agent's answer came from the session that heard the audio (one round trip).
    conn = first_turn.commit_connection()
    assert [e["type"] for c, e in window.sim_events() if c is not conn] == []
    agent = first_turn.agent_requests()[0]
    answered = [e.type for e in agent.answered]
    assert answered.count("handled") == 1 and "not-handled" not in answered, answered


async def test_the_api_hears_the_end_first(rig: Rig, first_turn: Turn) -> None:
    """The API's turn detection (ha_turns: api, the default) commits the words before HA's VAD
    has ended the speech: the simulator's semantic_vad waits 0.8 s of silence, HA's VAD about
    1.3 s from the last word, so no commit of ours. HA 2026 reads the transcript as it comes:
    its stt-end is before its VAD's end (if that comes at all); HA 2025 reads it only after
    its audio-stop."""
    assert first_turn.window.count("input_audio_buffer.commit") == 0, upstream(first_turn)
    types = [e["type"] for e in first_turn.result["events"]]
    print(f"{rig.spec.label}: {first_turn.timeline()}")
    if at_least(rig.spec, "2026.1"):
        assert "stt-vad-end" not in types or types.index("stt-end") < types.index("stt-vad-end")
    else:
        assert types.index("stt-vad-end") < types.index("stt-end"), types


# -- what HA sends us, per release -------------------------------------------------------


async def test_stt_request_as_ha_sends_it(rig: Rig, first_turn: Turn) -> None:
    [stt] = first_turn.window.tap_connections("stt")
    assert stt.sent[0].type == "transcribe" and stt.sent[0].data.get("language") == "en"
    start = stt.first("audio-start")
    assert start is not None
    assert (start.data["rate"], start.data["width"], start.data["channels"]) == (16000, 2, 1)
    sizes = [e.payload_length for e in stt.sent if e.type == "audio-chunk"]
    assert sizes and set(sizes[:-1]) == {CHUNK_BYTES} and 0 < sizes[-1] <= CHUNK_BYTES, sizes
    # HA 2025 streams until its VAD ends the speech, then sends audio-stop; HA 2026 stops
    # streaming at our transcript (the API heard the end first: no audio-stop at all).
    last = "audio-chunk" if at_least(rig.spec, "2026.1") else "audio-stop"
    assert stt.types()[-1] == last, stt.types()[-3:]
    # HA streamed the speech and cut it at the end: all the words, not the seconds of
    # silence after them that the "microphone" had.
    streamed = len(sizes) * CHUNK_BYTES / 32000
    result = first_turn.result
    assert result["speech_end"] < streamed < result["audio_seconds"] - 2, (streamed, result)


async def test_agent_request_context_by_release(rig: Rig, first_turn: Turn) -> None:
    """≤ 2025.6: no context; 2025.7+: conversation_id; 2026: device_id, language too."""
    [agent] = first_turn.agent_requests()
    request = agent.first("transcript")
    assert request is not None and request.data["text"] == QUESTION
    version = request.header.get("version")
    print(f"{rig.spec.label}: agent request {request.data} (wyoming {version})")
    context = request.data.get("context") or {}
    pipeline_conversation = first_turn.event("run-start")["data"].get("conversation_id")
    if not at_least(rig.spec, "2025.7"):
        assert "conversation_id" not in context, request.data  # wyoming 1.5.4 drops it
        return
    assert context.get("conversation_id") == pipeline_conversation, request.data
    assert context["conversation_id"] == first_turn.conversation_id
    if at_least(rig.spec, "2026.1"):
        assert context.get("device_id") == rig.ha.ready["device_id"], request.data
        assert request.data.get("language") == "en", request.data


# -- a typed turn ------------------------------------------------------------------------


async def test_typed_turn_answers(rig: Rig) -> None:
    async with rig.window() as window:
        result = await rig.type(TYPED)
    assert result["speech"] == answer_to(TYPED), (result, rig.context())
    [agent] = window.tap_connections("agent")
    assert agent.first("transcript").data["text"] == TYPED
    assert window.tap_connections("stt") == []
    assert window.texts() == [TYPED]
    assert window.count("response.create") == 1


# -- a follow-up in the same conversation ------------------------------------------------


async def test_follow_up_keeps_the_conversation(
    rig: Rig, first_turn: Turn, follow_up: Turn
) -> None:
    assert not follow_up.events("error"), (follow_up.result["events"], rig.context())
    assert follow_up.stt_text == FOLLOW_UP
    assert follow_up.speech == answer_to(FOLLOW_UP), rig.context()
    assert follow_up.conversation_id == first_turn.conversation_id
    [agent] = follow_up.agent_requests()
    context = agent.first("transcript").data.get("context") or {}
    if not at_least(rig.spec, "2025.7"):
        # HA ≤ 2025.6 sends no conversation_id: our server cannot know it is a follow-up.
        assert "conversation_id" not in context
        pytest.skip(f"{rig.spec.label} sends no conversation_id: no follow-ups to keep")
    assert context.get("conversation_id") == first_turn.conversation_id
    # The follow-up reached the first turn's Realtime session, where its history is.
    first_session = first_turn.commit_connection()
    understood = list(first_session.item_texts.values())
    assert QUESTION in understood and FOLLOW_UP in understood, (understood, rig.context())
    answered = [e.type for e in agent.answered]
    assert answered.count("handled") == 1, answered


async def test_one_response_per_spoken_request(
    rig: Rig, first_turn: Turn, local_turns: dict[str, Turn]
) -> None:
    """Each spoken request costs the Realtime API exactly one response."""
    turns = {"first turn": first_turn, **local_turns}
    counts = {name: turn.window.count("response.create") for name, turn in turns.items()}
    sent = {name: upstream(turn) for name, turn in turns.items()}
    assert counts == dict.fromkeys(counts, 1), (counts, sent)


async def test_one_response_per_spoken_follow_up(rig: Rig, follow_up: Turn) -> None:
    """A spoken follow-up too: one response, not one at audio-stop and another for the text."""
    count = follow_up.window.count("response.create")
    assert count == 1, (count, upstream(follow_up))


# -- prefer handling commands locally ----------------------------------------------------


async def test_prefer_local_time_never_reaches_our_agent(
    rig: Rig, local_turns: dict[str, Turn]
) -> None:
    turn = local_turns[LOCAL_TIME]
    assert not turn.events("error"), turn.result["events"]
    assert turn.stt_text == LOCAL_TIME
    assert turn.event("intent-end")["data"].get("processed_locally") is True, turn.result
    assert re.search(r"\d{1,2}:\d{2}", turn.speech), turn.speech  # HA's own clock
    assert turn.agent_requests() == [], rig.context()


async def test_prefer_local_device_command_never_reaches_our_agent(
    rig: Rig, local_turns: dict[str, Turn]
) -> None:
    turn = local_turns[LOCAL_LIGHT]
    assert not turn.events("error"), turn.result["events"]
    assert turn.event("intent-end")["data"].get("processed_locally") is True, turn.result
    assert turn.agent_requests() == [], rig.context()
    assert await rig.ha.call("state", entity_id="input_boolean.kitchen_light") == "on"


async def test_prefer_local_passes_other_questions_to_us(rig: Rig, first_turn: Turn) -> None:
    """What HA's intents do not know still reaches our agent, answered once: the next
    question of a satellite, in its conversation (HA keeps its conversation_id)."""
    question = "Tell me a story about a robot."
    turn = await rig.speak(
        BEDROOM, question, prefer_local=True, conversation_id=first_turn.conversation_id
    )
    assert turn.speech == answer_to(question), (turn.result, rig.context())
    assert turn.event("intent-end")["data"].get("processed_locally") is False
    assert len(turn.agent_requests()) == 1
    assert turn.window.count("response.create") == 1


async def test_a_new_conversation_right_after_another_is_answered_in_it(
    rig: Rig, first_turn: Turn, follow_up: Turn
) -> None:
    """Another satellite, or a new conversation, within HA's five minutes: the answer started
    where the last spoken request went is not this one's (on HA 2025.7+, which says which
    conversation a request is in). It is undone there and the words asked in the new
    conversation: the right answer, one round trip slower."""
    question = "How tall is the tallest mountain?"
    turn = await rig.speak(KITCHEN, question)
    assert turn.speech == answer_to(question), (turn.result, rig.context())
    assert len(turn.agent_requests()) == 1
    creates = turn.window.count("response.create")
    if at_least(rig.spec, "2025.7"):  # conversation ids: the guess was made, and undone
        assert turn.conversation_id != first_turn.conversation_id
        assert creates == 2, upstream(turn)
        assert turn.window.count("conversation.item.delete") == 2, upstream(turn)
        assert turn.window.texts() == [question]
    else:  # HA up to 2025.6: no conversation to guess, nothing undone
        assert creates == 1, upstream(turn)


# -- our side stayed clean ---------------------------------------------------------------


async def test_our_server_log_is_clean(rig: Rig, first_turn: Turn, follow_up: Turn) -> None:
    """Real HA's requests, as they come, give no traceback, error or warning in our log."""
    log = rig.server.log()
    bad = [line for line in log.splitlines() if line.startswith(("ERROR", "WARNING", "CRITICAL"))]
    assert "Traceback" not in log and bad == [], log
