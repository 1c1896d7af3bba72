"""Home control end to end: OUR server is real Home Assistant's STT and agent, in a home.

Issue 14's real-HA part. Real HA core (`ha_home.home_assistant`: the Kitchen and Bedroom
lights, the front door's lock, the garage door, the Kitchen satellite device with timers)
has our server (through a `WyomingTap`) as its Wyoming STT and conversation agent, the
simulated Wyoming TTS as its TTS, and the Realtime simulator behind our server; the
simulated model calls HA's intents as tools for the English command shapes of
simulator/tools.py, only those our server offers. What HA then does to the home (the
entities' states, the service calls they got, the timers it started) is read from HA.

Each release boots once per module run; every request is made once, in the module fixture
`observed` (each on a home reset to `ha_home.INITIAL`; the spoken ones from the satellite,
in one conversation as a satellite keeps it, the typed ones each in a new one), and each
check asserts one thing about them, per release:

- 2026.11 runs several intents per answer, renders a state question's template with the
  entity it matched, and passes the satellite's device (timers ring on it);
- 2025.12 runs the first intent only (we send one and say so), would speak a template
  literally and passes no device (no state questions, no timers offered);
- 2025.4 also sends no conversation id, so a risky command cannot be confirmed: refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from ha_home import (
    BEDROOM_LIGHT,
    FRONT_DOOR,
    KITCHEN_LIGHT,
    at_least,
    env,  # noqa: F401  (a fixture)
    home_assistant,
    spec,  # noqa: F401  (a fixture)
)
from ha_requests import WAV, Rig, Seen, unlocks
from ha_rig import OUR_TITLE, TTS_TITLE
from harness import running_server, server_config
from real_ha_env import HaEnv, HaSpec
from wyoming_tap import WyomingTap

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimulatedTts

# Environment builds count toward the first test of each release; every wait inside is
# bounded on its own (build steps, HA's boot, each command).
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(2400)]

SPOKEN_ON = "Turn on the kitchen light."
TYPED_OFF = "Turn off the kitchen light."
QUESTION = "Is the kitchen light on?"
TIMER = "Set a timer for five minutes."
UNLOCK = "Unlock the front door."
YES = "Yes."
SEVERAL = "Turn on the kitchen light and the bedroom light."

MODEL_OFF = "Okay, the kitchen light is off now."  # the model's own words beside its call
MODEL_UNLOCKING = "Unlocking the front door."
NO_CHECKING = "I can't check devices from here."  # the model without HassGetState
NO_TIMERS = "I can't set timers from here."  # ... without HassStartTimer
ASKED = "Do you want me to unlock front door? Say yes to confirm."
UNSAFE = "For safety, I can't do that from here; please use the Home Assistant app."
ONE_AT_A_TIME = "I can do one thing at a time here; please ask for the rest again."
# -- the rig -----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    spec: HaSpec,  # noqa: F811
    env: HaEnv,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"real-ha-home-control-{spec.version}")
    async with (
        RealtimeSimulator(host="127.0.0.1", port=0) as sim,
        SimulatedTts() as tts,
        running_server(tmp, server_config(sim.url, "ga")) as server,
        WyomingTap(server.port) as tap,
    ):
        agents = [("127.0.0.1", tap.port), ("127.0.0.1", tts.port)]
        async with home_assistant(
            spec, env, tmp / "ha", agents, OUR_TITLE, tts_title=TTS_TITLE, files=[WAV]
        ) as home:
            yield Rig(spec, sim, tts, server, tap, home)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def observed(rig: Rig) -> dict[str, Seen]:
    """Every request, once, in this order."""
    seen: dict[str, Seen] = {}

    def note(name: str, found: Seen) -> None:
        seen[name] = found
        print(f"{rig.spec.label}: {name}: {found}")  # shown with -s, or on failure

    note("spoken on", await rig.speak(SPOKEN_ON, Scenario(), None))
    # HA keeps a satellite's conversation (2025.7+; None before): the rest is said in it.
    conversation = seen["spoken on"].conversation_id
    note("typed off", await rig.type(TYPED_OFF, Scenario(call_text=MODEL_OFF), (KITCHEN_LIGHT,)))
    note("question, off", await rig.type(QUESTION, Scenario(reply=NO_CHECKING)))
    note("question, on", await rig.type(QUESTION, Scenario(reply=NO_CHECKING), (KITCHEN_LIGHT,)))
    note("timer", await rig.speak(TIMER, Scenario(reply=NO_TIMERS), conversation))
    unlocking = Scenario(calls=unlocks, call_text=MODEL_UNLOCKING)
    note("unlock", await rig.speak(UNLOCK, unlocking, conversation))
    note("yes", await rig.speak(YES, unlocking, conversation))
    note("several", await rig.speak(SEVERAL, Scenario(), conversation))
    return seen


def spoken(observed: dict[str, Seen]) -> dict[str, Seen]:
    return {name: seen for name, seen in observed.items() if seen.spoken}


# -- the setup ---------------------------------------------------------------------------


async def test_our_server_is_the_pipelines_stt_and_a_home_control_agent(rig: Rig) -> None:
    """HA 2026 gives our agent the CONTROL feature (supports_home_control); 2025 has none."""
    pipeline = rig.home.ready["pipeline"]
    assert pipeline["stt_engine"] == "stt.realtime_text", pipeline
    assert pipeline["conversation_engine"] == "conversation.realtime_text", pipeline
    assert pipeline["tts_engine"] == "tts.simulated_tts", pipeline
    entities = await rig.home.ha.call("entities")
    [agent] = [e for e in entities if e["domain"] == "conversation"]
    assert agent["entry_title"] == OUR_TITLE, entities
    assert agent["supported_features"] == (1 if at_least(rig.spec, "2026.1") else 0), agent


# -- a spoken command, a typed one -------------------------------------------------------


async def test_a_spoken_command_switches_the_light_and_is_confirmed_aloud(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    seen = observed["spoken on"]
    assert not seen.events("error"), (seen.result["events"], rig.context())
    assert seen.heard == SPOKEN_ON
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (str(seen), rig.context())
    assert seen.called() == [(KITCHEN_LIGHT, "turn_on")]
    assert seen.result["response_type"] == "action_done", seen
    # The model called the tool and said nothing: our confirmation is what HA speaks.
    assert seen.speech == "Turned on kitchen light.", seen
    assert seen.tts_input == seen.speech
    assert seen.speech in rig.tts.synthesized
    assert seen.answered() == ["intent"], seen.answered()
    assert "HassTurnOn" in seen.window.offered()


async def test_a_typed_command_switches_the_light_off_in_the_models_words(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    seen = observed["typed off"]
    assert seen.changed() == {}, (str(seen), rig.context())  # off again, as it started
    assert seen.called() == [(KITCHEN_LIGHT, "turn_on"), (KITCHEN_LIGHT, "turn_off")]
    assert seen.speech == MODEL_OFF, seen
    assert seen.answered() == ["intent"], seen.answered()
    assert seen.window.tap_connections("stt") == []


# -- a state question --------------------------------------------------------------------


async def test_a_state_question_is_answered_with_the_real_state_on_2026(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    """HA 2026 renders the answer's template with the light it matched: "No" while it is
    off, "Yes" while it is on. HA 2025 would speak the template: the model is not offered
    HassGetState there and answers in its own words, no template braces spoken."""
    off, on = observed["question, off"], observed["question, on"]
    for seen in (off, on):
        assert seen.called() in ([], [(KITCHEN_LIGHT, "turn_on")]), seen  # only the switch
    assert off.changed() == {} and on.changed() == {KITCHEN_LIGHT: "on"}
    if at_least(rig.spec, "2026.1"):
        assert "HassGetState" in off.window.offered()
        assert off.speech == "No, Kitchen light is off.", (str(off), rig.context())
        assert on.speech == "Yes, Kitchen light is on.", (str(on), rig.context())
        assert off.result["response_type"] == on.result["response_type"] == "query_answer"
        assert off.answered() == on.answered() == ["intent"]
    else:
        for seen in (off, on):
            assert "HassGetState" not in seen.window.offered(), seen.window.offered()
            assert seen.speech == NO_CHECKING, seen
            assert "{" not in (seen.speech or "") and "}" not in (seen.speech or "")
            assert "intent" not in seen.answered(), seen.answered()


# -- a timer -----------------------------------------------------------------------------


async def test_a_timer_starts_on_the_satellite_on_2026(rig: Rig, observed: dict[str, Seen]) -> None:
    """HA 2026 passes the satellite's device: the timer starts (and would ring) on it. HA
    2025 does not, so our server offers no timers there and the model says so."""
    seen = observed["timer"]
    assert not seen.events("error"), seen.result["events"]
    assert seen.heard == TIMER
    if at_least(rig.spec, "2026.1"):
        assert seen.timers() == [("started", 300, rig.home.satellite)], (str(seen), rig.context())
        assert seen.speech == "Timer started.", seen
        assert seen.answered() == ["intent"], seen.answered()
        assert "HassStartTimer" in seen.window.offered()
    else:
        assert seen.timers() == [], seen
        assert "HassStartTimer" not in seen.window.offered()
        assert seen.speech == NO_TIMERS, seen
        assert seen.result["response_type"] != "error", seen
    assert seen.tts_input == seen.speech


# -- a risky command ---------------------------------------------------------------------


async def test_unlocking_is_asked_first_and_the_door_stays_locked(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    seen = observed["unlock"]
    assert seen.heard == UNLOCK
    assert seen.state(FRONT_DOOR) == "locked", (str(seen), rig.context())
    assert seen.called() == [] and seen.changed() == {}, seen
    assert "intent" not in seen.answered(), seen.answered()
    # HA up to 2025.6 sends no conversation id: a "yes" could not reach this conversation.
    expected = ASKED if at_least(rig.spec, "2025.7") else UNSAFE
    assert seen.speech == expected, seen
    assert seen.tts_input == expected


async def test_a_yes_in_the_same_conversation_unlocks_the_door(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    asked, seen = observed["unlock"], observed["yes"]
    assert seen.heard == YES
    if not at_least(rig.spec, "2025.7"):  # no conversation: nothing to confirm, refused again
        assert seen.state(FRONT_DOOR) == "locked" and seen.called() == [], seen
        assert seen.speech == UNSAFE, seen
        return
    assert seen.conversation_id == asked.conversation_id is not None
    assert seen.changed() == {FRONT_DOOR: "unlocked"}, (str(seen), rig.context())
    assert seen.called() == [(FRONT_DOOR, "unlock")]
    assert seen.speech == MODEL_UNLOCKING, seen
    assert seen.answered() == ["intent"], seen.answered()


# -- several commands in one utterance ---------------------------------------------------


async def test_several_commands_run_all_on_2026_and_the_first_on_2025(
    rig: Rig, observed: dict[str, Seen]
) -> None:
    seen = observed["several"]
    assert seen.heard == SEVERAL
    first = "Turned on kitchen light."
    if at_least(rig.spec, "2026.1"):
        lit = {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}
        assert seen.changed() == lit, (str(seen), rig.context())
        assert seen.speech == f"{first} Turned on bedroom light.", seen
        assert seen.answered() == ["intents-start", "intent", "intent", "intents-stop"]
    else:  # HA 2025 runs the first intent it reads: only that one is sent, and it says so
        assert seen.changed() == {KITCHEN_LIGHT: "on"}, (str(seen), rig.context())
        assert seen.called() == [(KITCHEN_LIGHT, "turn_on")]
        assert seen.speech == f"{first} {ONE_AT_A_TIME}", seen
        assert seen.answered() == ["intent"], seen.answered()
    assert seen.tts_input == seen.speech


# -- one round trip; a clean log ---------------------------------------------------------


async def test_each_request_is_one_response_upstream(rig: Rig, observed: dict[str, Seen]) -> None:
    """A spoken command: one STT and one agent request from HA, the words committed once and
    exactly one response.create upstream (started when they were, nothing asks for a
    second); a typed one, one response too."""
    creates = {name: len(seen.window.creates()) for name, seen in observed.items()}
    upstream = {name: seen.window.upstream() for name, seen in observed.items()}
    assert creates == dict.fromkeys(observed, 1), (creates, upstream)
    for name, seen in spoken(observed).items():
        requests = [len(seen.window.tap_connections(kind)) for kind in ("stt", "agent")]
        assert requests == [1, 1], (name, requests)
        assert len(seen.window.commits()) == 1, (name, upstream[name])


async def test_our_server_log_has_no_error(rig: Rig, observed: dict[str, Seen]) -> None:
    """Through all of it (HA's own log may have errors: a template it could not render)."""
    log = rig.server.log()
    bad = [line for line in log.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    assert "Traceback" not in log and bad == [], log
