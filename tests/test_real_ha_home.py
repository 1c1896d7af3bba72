"""What REAL Home Assistant does with a home-control agent's Wyoming `intent` answers.

Probes for issue 14: our server will answer HA's agent request with `intent` events (one, or
several in intents-start … intents-stop) that HA's Wyoming conversation agent runs itself.
Here a stand-in agent (`scripted_agent.ScriptedAgent`: a `handle` program with
`supports_home_control: true`) answers each request with scripted events, and HA has a home
(`ha_driver.HOME`, through `ha_home.home_assistant`): lights in the Kitchen and Bedroom, a
garage light NOT exposed to Assist, the front door's lock, a garage door, and a satellite
device in the Kitchen whose timers ring in HA. Each HA release boots once per module run;
every probe is made once (module fixture `observed`: the home reset, the request typed or run
through the pipeline from its intent stage, then the home read), and each check asserts one
fact about the probes, per release.

Measured (HA 2026.11.0 on Python 3.14; 2025.12.5 and 2025.4.4 on 3.13.0), probe → 2026.11 |
2025.12 and 2025.4 ("same": all three alike):

- the agent entity's CONTROL feature (supports_home_control) → yes | no: HA 2025.x ignores it
- one `intent` HassTurnOn {name: "kitchen light"}, text "Kitchen light on." → the light on,
  the text spoken, response action_done: same (2025.4 too: HA ≤ 2025.6 runs intents)
- HassTurnOff {area: Kitchen, domain: light} → the kitchen light off, the bedroom's stays on:
  same
- HassLightSet {brightness: 50} → brightness 128: same
- intents-start, intent ×2, intents-stop → both run, the speeches joined by "\n" | only the
  first runs (HA reads up to it and closes)
- text "{{ state.name }} is {{ state.state }}." (HassGetState, the front door) → rendered,
  "Front door is locked." | spoken literally
- text with a stray "{{" → the light is switched, then the answer is an error (unknown,
  "TemplateSyntaxError: …") | spoken literally
- a name matching nothing → error failed_to_handle, "Error handling intent: No entities
  matched the name (given name 'spaceship')" | the same code, the MatchFailedError's repr
- the garage light, not exposed → not switched, an error naming exposure | switched
- HassTurnOn {domain: light} from the Kitchen satellite → every exposed light (kitchen and
  bedroom: the satellite's area does not narrow it) | every light, the garage's too
- HassTurnOff {name: "front door"} → UNLOCKED, no questions asked: same; HassTurnOn
  {name: "garage door"} → opened: same
- HassStartTimer {minutes: 5} from the satellite's pipeline run → a timer of 300 s started on
  the satellite (its timer handler told) | error "Error handling intent: Device does not
  support timers: device_id=None" (HA 2025.x's Wyoming agent never hands the device on)
- HassStartTimer without a device → that error: same
- HassStartTimer {seconds: 1} from the satellite → started, and about a second later
  finished, on the satellite | that error
- handled-start, handled-chunk ×2, then `intent` → the chunks are ignored: the intent runs and
  its text is spoken: same; before intents-start … intents-stop → ignored too (2026: both
  intents run; 2025.x: the first)
- the agent request, typed → transcript {text, language: "en", context: {conversation_id}} |
  2025.12: {text, context: {conversation_id}}; 2025.4: {text} alone
- … from the satellite's pipeline run → the context adds device_id and satellite_id | 2025.12:
  conversation_id alone; 2025.4: no context (its pipeline takes no satellite id at all)
- every probe reached the agent once, on a connection of its own: same

So our server must: name the area itself (HA does not narrow "the lights" to the satellite's
room), ask before unlocking or opening (HA will do it), expect HA 2025.x to run only the first
of several intents and to speak templates literally, and not count on timers before 2026.
Streaming text chunks before the intents is safe on every release.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from ha_home import (
    BEDROOM_LIGHT,
    FRONT_DOOR,
    GARAGE_DOOR,
    GARAGE_LIGHT,
    HOME_ENTITIES,
    INITIAL,
    KITCHEN_LIGHT,
    SATELLITE_ID,
    HomeAfter,
    HomeHa,
    at_least,
    env,  # noqa: F401  (a fixture)
    home_assistant,
    spec,  # noqa: F401  (a fixture)
)
from real_ha_env import HaEnv, HaSpec
from scripted_agent import AGENT_TITLE, AgentRequest, ScriptedAgent, intent, intents, streamed
from wyoming.event import Eventable

# Environment builds count toward the first test of each release; every wait inside is
# bounded on its own (build steps, HA's boot, each command).
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(2400)]

KITCHEN_ON = intent("HassTurnOn", "Kitchen light on.", name="kitchen light")
BEDROOM_ON = intent("HassTurnOn", "Bedroom light on.", name="bedroom light")
TIMER_SET = "Timer set."
NO_TIMERS = "Error handling intent: Device does not support timers: device_id=None"
SPEECH = Path(__file__).parent / "fixtures" / "speech-kitchen.wav"  # what the satellite says
RING_WAIT = 2.5  # seconds for a 1 s timer to ring (HA's timers tick once a second)


@dataclass(frozen=True)
class Probe:
    """One request: its text (the key of its script), the agent's answer, how it reaches
    HA's agent (`type`: conversation.async_converse; `run`: the pipeline from its intent
    stage; `speak`: a WAV through the whole pipeline, the agent's STT hearing the text),
    where it comes from, the entities switched on before, and the seconds waited after the
    answer before the home is read."""

    script: tuple[Eventable, ...]
    how: Literal["type", "run", "speak"] = "type"
    satellite: bool = False  # from the Kitchen satellite (its device id and satellite id)
    before: tuple[str, ...] = ()
    wait: float = 0.0


PROBES: dict[str, Probe] = {
    "Turn on the kitchen light.": Probe((KITCHEN_ON,)),
    "Turn off the lights in the kitchen.": Probe(
        (intent("HassTurnOff", "Kitchen lights off.", area="Kitchen", domain="light"),),
        before=(KITCHEN_LIGHT, BEDROOM_LIGHT),
    ),
    "Turn on the kitchen and bedroom lights.": Probe(tuple(intents(KITCHEN_ON, BEDROOM_ON))),
    "Is the front door locked?": Probe(
        (intent("HassGetState", "{{ state.name }} is {{ state.state }}.", name="front door"),)
    ),
    "Turn on the kitchen light, badly templated.": Probe(
        (intent("HassTurnOn", "Done {{ oops", name="kitchen light"),)
    ),
    "Turn on the spaceship.": Probe((intent("HassTurnOn", "Spaceship on.", name="spaceship"),)),
    "Turn on the garage light.": Probe(
        (intent("HassTurnOn", "Garage light on.", name="garage light"),)
    ),
    "Set a timer for five minutes.": Probe(
        (intent("HassStartTimer", TIMER_SET, minutes=5),), how="run", satellite=True
    ),
    "Set a timer for five minutes, from nowhere.": Probe(
        (intent("HassStartTimer", TIMER_SET, minutes=5),), how="run"
    ),
    "Set a timer for one second.": Probe(
        (intent("HassStartTimer", TIMER_SET, seconds=1),), how="run", satellite=True, wait=RING_WAIT
    ),
    "Turn on the kitchen light, streamed.": Probe(
        (*streamed("Turning on ", "the kitchen light."), KITCHEN_ON)
    ),
    "Turn on both lights, streamed.": Probe(
        (*streamed("Turning on ", "both lights."), *intents(KITCHEN_ON, BEDROOM_ON))
    ),
    "Unlock the front door.": Probe(
        (intent("HassTurnOff", "Front door unlocked.", name="front door"),)
    ),
    "Open the garage door.": Probe(
        (intent("HassTurnOn", "Garage door opening.", name="garage door"),)
    ),
    "Turn on the lights.": Probe(
        (intent("HassTurnOn", "Lights on.", domain="light"),), how="run", satellite=True
    ),
    "Kitchen light, please.": Probe((KITCHEN_ON,), how="speak", satellite=True),
    "Set the kitchen light to half.": Probe(
        (intent("HassLightSet", "Kitchen light at half.", name="kitchen light", brightness=50),)
    ),
}
TURN_ON = "Turn on the kitchen light."
AREA_OFF = "Turn off the lights in the kitchen."
SEVERAL = "Turn on the kitchen and bedroom lights."
TEMPLATE = "Is the front door locked?"
BAD_TEMPLATE = "Turn on the kitchen light, badly templated."
NO_MATCH = "Turn on the spaceship."
UNEXPOSED = "Turn on the garage light."
TIMER = "Set a timer for five minutes."
TIMER_NOWHERE = "Set a timer for five minutes, from nowhere."
TIMER_RINGS = "Set a timer for one second."
STREAMED = "Turn on the kitchen light, streamed."
STREAMED_SEVERAL = "Turn on both lights, streamed."
UNLOCK = "Unlock the front door."
GARAGE_OPEN = "Open the garage door."
LIGHTS_HERE = "Turn on the lights."
HALF = "Set the kitchen light to half."
SPOKEN = "Kitchen light, please."


@dataclass
class Observation(HomeAfter):
    """A probe's answer from HA, the home after it, and what reached the agent."""

    result: dict[str, Any]
    home: dict[str, Any]
    requests: list[AgentRequest] = field(default_factory=list)

    @property
    def speech(self) -> str | None:
        return self.result.get("speech")

    @property
    def failed(self) -> bool:
        return self.result.get("response_type") == "error"

    @property
    def request(self) -> AgentRequest:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]

    def __str__(self) -> str:
        answer = {k: self.result.get(k) for k in ("speech", "response_type", "error_code")}
        return f"{answer}; changed {self.changed()}; calls {self.called()}; {self.timers()}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(spec: HaSpec) -> AsyncIterator[ScriptedAgent]:  # noqa: F811
    """One stand-in per release (its requests are that HA's alone)."""
    async with ScriptedAgent() as stand_in:
        for text, probe in PROBES.items():
            stand_in.scripts[text] = probe.script
        yield stand_in


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def home(
    spec: HaSpec,  # noqa: F811
    env: HaEnv,  # noqa: F811
    agent: ScriptedAgent,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[HomeHa]:
    workdir = tmp_path_factory.mktemp(f"ha-home-{spec.version}") / "ha"
    agents = [("127.0.0.1", agent.port)]
    async with home_assistant(spec, env, workdir, agents, AGENT_TITLE, files=[SPEECH]) as ha:
        yield ha


async def observe(home: HomeHa, agent: ScriptedAgent, text: str, probe: Probe) -> Observation:
    await home.reset()
    for entity_id in probe.before:
        await home.switch(entity_id, True)
    options: dict[str, Any] = {}
    if probe.satellite:
        options = {"device_id": home.satellite, "satellite_id": SATELLITE_ID}
    if probe.how == "type":
        result = await home.type(text, **options)
    elif probe.how == "run":
        result = await home.run_text(text, **options)
    else:  # as the satellite streams it; no TTS here: the run ends with the agent's answer
        agent.hearing = text
        result = await home.speak(SPEECH.name, end_stage="intent", **options)
    await asyncio.sleep(probe.wait)
    return Observation(result, await home.home(), agent.requests_for(text))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def observed(home: HomeHa, agent: ScriptedAgent) -> dict[str, Observation]:
    """Every probe, once, each on a home as it started."""
    found = {}
    for text, probe in PROBES.items():
        found[text] = await observe(home, agent, text, probe)
        print(f"{home.spec.label}: {text!r}: {found[text]}")  # shown with -s, or on failure
    return found


def context_of(home: HomeHa) -> str:
    return f"\n--- HA's log ---\n{home.ha.log()}"


# -- the setup ---------------------------------------------------------------------------


async def test_the_stand_in_is_a_home_control_agent_from_2026(home: HomeHa) -> None:
    """HA 2026 gives a `handle` program with supports_home_control the CONTROL feature;
    2025.x ignores the flag (no feature: "prefer handling commands locally" keeps state
    questions for HA's own agent there)."""
    entities = await home.ha.call("entities")
    [agent] = [e for e in entities if e["domain"] == "conversation"]
    print(f"{home.spec.label}: {entities}")
    assert agent["entry_title"] == AGENT_TITLE and agent["languages"] == ["en"], entities
    assert home.ready["pipeline"]["conversation_engine"] == agent["entity_id"]
    assert {e["domain"] for e in entities} == {"stt", "conversation"}, entities
    assert home.ready["pipeline"]["stt_engine"] == agent["entity_id"].replace("conversation", "stt")
    assert home.ready["pipeline"]["tts_engine"] is None
    control = 1  # conversation.ConversationEntityFeature.CONTROL
    assert agent["supported_features"] == (control if at_least(home.spec, "2026.1") else 0)


async def test_the_home_is_set_up(home: HomeHa) -> None:
    ready = home.ready["home"]
    entities = ready["entities"]
    assert {eid: e["state"] for eid, e in entities.items()} == INITIAL, entities
    areas = {eid: e["area"] for eid, e in entities.items()}
    assert areas == {
        KITCHEN_LIGHT: "Kitchen",
        BEDROOM_LIGHT: "Bedroom",
        GARAGE_LIGHT: "Garage",
        FRONT_DOOR: "Hallway",
        GARAGE_DOOR: "Garage",
    }
    exposed = {eid for eid, e in entities.items() if e["exposed"]}
    assert exposed == set(HOME_ENTITIES) - {GARAGE_LIGHT}
    assert entities[KITCHEN_LIGHT]["attributes"]["supported_color_modes"] == ["brightness"]
    assert entities[GARAGE_DOOR]["attributes"]["device_class"] == "garage"
    assert entities[FRONT_DOOR]["name"] == "Front door"
    assert ready["satellite"] == {"device_id": home.satellite, "area": "Kitchen"}
    assert ready["calls"] == [] and ready["timers"] == []


async def test_exposure_can_be_changed(home: HomeHa, observed: dict[str, Observation]) -> None:
    """`expose` (Settings → Voice assistants → Expose), and back: the garage light stays
    unexposed for whatever runs after."""
    assert await home.ha.call("expose", entity_id=GARAGE_LIGHT, exposed=True) is True
    assert (await home.home())["entities"][GARAGE_LIGHT]["exposed"] is True
    assert await home.ha.call("expose", entity_id=GARAGE_LIGHT, exposed=False) is False
    assert (await home.home())["entities"][GARAGE_LIGHT]["exposed"] is False


async def test_every_probe_asked_the_agent_once(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    counts = {text: len(seen.requests) for text, seen in observed.items()}
    assert counts == dict.fromkeys(PROBES, 1), counts


# -- one intent --------------------------------------------------------------------------


async def test_one_intent_switches_the_light_and_speaks_its_text(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    """On every release, 2025.4 too (HA ≤ 2025.6 runs an agent's `intent` as well)."""
    seen = observed[TURN_ON]
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (seen, context_of(home))
    assert seen.called() == [(KITCHEN_LIGHT, "turn_on")]
    assert seen.speech == "Kitchen light on."
    assert seen.result["response_type"] == "action_done"
    assert seen.request.answered_types() == ["intent"]


async def test_area_and_domain_switch_that_area_only(observed: dict[str, Observation]) -> None:
    seen = observed[AREA_OFF]
    assert seen.changed() == {BEDROOM_LIGHT: "on"}, seen  # the kitchen light is off again
    assert seen.called()[-1] == (KITCHEN_LIGHT, "turn_off")
    assert (BEDROOM_LIGHT, "turn_off") not in seen.called()
    assert seen.speech == "Kitchen lights off."


async def test_brightness_in_percent(observed: dict[str, Observation]) -> None:
    seen = observed[HALF]
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, seen
    assert seen.home["entities"][KITCHEN_LIGHT]["attributes"]["brightness"] == 128
    assert seen.home["calls"][0]["data"] == {"brightness": 128}


async def test_several_intents_run_all_from_2026_first_only_before(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[SEVERAL]
    if at_least(home.spec, "2026.1"):
        assert seen.changed() == {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}, seen
        assert seen.speech == "Kitchen light on.\nBedroom light on."
        assert seen.request.answered_types() == [
            "intents-start",
            "intent",
            "intent",
            "intents-stop",
        ]
    else:  # HA reads up to the first `intent`, runs it and closes
        assert seen.changed() == {KITCHEN_LIGHT: "on"}, seen
        assert seen.speech == "Kitchen light on."


# -- the intent's text -------------------------------------------------------------------


async def test_template_text_rendered_from_2026_literal_before(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[TEMPLATE]
    assert seen.result["response_type"] == "query_answer", seen
    assert seen.changed() == {} and seen.called() == []
    if at_least(home.spec, "2026.1"):
        assert seen.speech == "Front door is locked."
    else:
        assert seen.speech == "{{ state.name }} is {{ state.state }}."


async def test_a_broken_template_fails_after_the_action_on_2026(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[BAD_TEMPLATE]
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, seen  # the intent ran first, everywhere
    if at_least(home.spec, "2026.1"):
        assert seen.failed and seen.result["error_code"] == "unknown", seen
        assert "TemplateSyntaxError" in (seen.speech or "")
    else:
        assert not seen.failed and seen.speech == "Done {{ oops", seen


# -- what does not match -----------------------------------------------------------------


async def test_a_name_matching_nothing_is_an_error(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[NO_MATCH]
    assert seen.failed and seen.result["error_code"] == "failed_to_handle", seen
    assert seen.changed() == {} and seen.called() == []
    speech = seen.speech or ""
    assert speech.startswith("Error handling intent: "), speech
    if at_least(home.spec, "2026.1"):
        assert speech.endswith("No entities matched the name (given name 'spaceship')"), speech
    else:  # the exception's repr
        assert "MatchFailedError" in speech and "name='spaceship'" in speech, speech


async def test_an_unexposed_light_is_switched_only_before_2026(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[UNEXPOSED]
    if at_least(home.spec, "2026.1"):
        assert seen.changed() == {} and seen.called() == [], seen
        assert seen.failed and "exposed" in (seen.speech or ""), seen
    else:
        assert seen.changed() == {GARAGE_LIGHT: "on"}, seen
        assert seen.speech == "Garage light on."


async def test_the_lights_from_a_satellite_are_all_exposed_lights(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    """HassTurnOn {domain: light} from the Kitchen satellite: HA does not narrow it to the
    satellite's area (its own agent fills the area in from the sentence's context); a
    Wyoming agent must send the area itself."""
    seen = observed[LIGHTS_HERE]
    lit = {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}
    if at_least(home.spec, "2026.1"):
        assert seen.changed() == lit, seen
    else:
        assert seen.changed() == {**lit, GARAGE_LIGHT: "on"}, seen


# -- what HA does without asking ---------------------------------------------------------


async def test_ha_unlocks_the_door_on_an_intent(observed: dict[str, Observation]) -> None:
    """HA runs HassTurnOff on a lock as `lock.unlock`, no questions: asking first is up to
    the agent (and a test that the door stays locked can fail)."""
    seen = observed[UNLOCK]
    assert seen.changed() == {FRONT_DOOR: "unlocked"}, seen
    assert seen.called() == [(FRONT_DOOR, "unlock")]
    assert seen.speech == "Front door unlocked."


async def test_ha_opens_the_garage_door_on_an_intent(observed: dict[str, Observation]) -> None:
    seen = observed[GARAGE_OPEN]
    assert seen.changed() == {GARAGE_DOOR: "open"}, seen
    assert seen.called() == [(GARAGE_DOOR, "open_cover")]


# -- timers ------------------------------------------------------------------------------


async def test_a_timer_from_the_satellite_starts_from_2026(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[TIMER]
    if at_least(home.spec, "2026.1"):
        assert seen.timers() == [("started", 300, home.satellite)], seen
        assert seen.speech == TIMER_SET and not seen.failed
    else:  # the pipeline had the device; HA's Wyoming agent does not hand it to the intent
        assert seen.timers() == [], seen
        assert seen.failed and seen.speech == NO_TIMERS, seen


async def test_a_timer_without_a_device_is_an_error(observed: dict[str, Observation]) -> None:
    seen = observed[TIMER_NOWHERE]
    assert seen.timers() == [], seen
    assert seen.failed and seen.result["error_code"] == "failed_to_handle", seen
    assert seen.speech == NO_TIMERS


async def test_a_short_timer_rings_on_the_satellite(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[TIMER_RINGS]
    if at_least(home.spec, "2026.1"):
        assert seen.timers() == [("started", 1, home.satellite), ("finished", 0, home.satellite)]
        started, finished = seen.home["timers"]
        assert started["id"] == finished["id"]
    else:
        assert seen.timers() == [] and seen.failed, seen


# -- streamed text before the intents ----------------------------------------------------


async def test_streamed_text_before_an_intent_is_ignored(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    """Our server streams text chunks before it knows the tool calls: HA must skip
    handled-start / handled-chunk and run the `intent` after them, speaking its text."""
    seen = observed[STREAMED]
    assert seen.request.answered_types() == [
        "handled-start",
        "handled-chunk",
        "handled-chunk",
        "intent",
    ]
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (seen, context_of(home))
    assert seen.speech == "Kitchen light on.", seen
    assert not seen.failed


async def test_streamed_text_before_several_intents_is_ignored(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[STREAMED_SEVERAL]
    assert not seen.failed, seen
    if at_least(home.spec, "2026.1"):
        assert seen.changed() == {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}, seen
        assert seen.speech == "Kitchen light on.\nBedroom light on."
    else:
        assert seen.changed() == {KITCHEN_LIGHT: "on"}, seen
        assert seen.speech == "Kitchen light on."


# -- a spoken request from the satellite ---------------------------------------------------


async def test_a_spoken_request_from_the_satellite_runs_the_intent(
    home: HomeHa, agent: ScriptedAgent, observed: dict[str, Observation]
) -> None:
    """The whole way a satellite goes: its audio to the agent's STT, the transcript to the
    agent, the agent's `intent` run by HA (the run ends at the intent stage: no TTS here)."""
    seen = observed[SPOKEN]
    types = [e["type"] for e in seen.result["events"]]
    assert "error" not in types and "tts-start" not in types, seen.result["events"]
    [stt_end] = [e for e in seen.result["events"] if e["type"] == "stt-end"]
    assert stt_end["data"]["stt_output"]["text"] == SPOKEN
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (seen, context_of(home))
    assert seen.speech == "Kitchen light on."
    [stt] = [t for t in agent.transcribed if t["heard"] == SPOKEN]
    assert stt["language"] == "en" and stt["audio_bytes"] > 32000, stt  # > 1 s of speech
    context = seen.request.context
    if at_least(home.spec, "2026.1"):
        assert context["device_id"] == home.satellite, seen.request.data
        assert context["satellite_id"] == SATELLITE_ID
    else:
        assert "device_id" not in context, seen.request.data


# -- what HA tells the agent -------------------------------------------------------------


async def test_agent_request_of_a_typed_turn_by_release(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[TURN_ON]
    data = seen.request.data
    print(f"{home.spec.label}: typed: {data}")
    context = {"conversation_id": seen.result["conversation_id"]}
    if at_least(home.spec, "2026.1"):
        assert data == {"text": TURN_ON, "language": "en", "context": context}
    elif at_least(home.spec, "2025.7"):
        assert data == {"text": TURN_ON, "context": context}
    else:  # wyoming 1.5.4's Transcript.event() drops the context
        assert data == {"text": TURN_ON}


async def test_agent_request_from_the_satellite_by_release(
    home: HomeHa, observed: dict[str, Observation]
) -> None:
    seen = observed[TIMER]
    data = seen.request.data
    print(f"{home.spec.label}: from the satellite: {data}")
    if at_least(home.spec, "2026.1"):
        assert data["context"] == {
            "conversation_id": seen.result["conversation_id"],
            "device_id": home.satellite,
            "satellite_id": SATELLITE_ID,
        }
        assert data["language"] == "en"
    elif at_least(home.spec, "2025.7"):
        assert data["context"] == {"conversation_id": seen.result["conversation_id"]}
        assert seen.result["ignored"] == []  # the pipeline took the satellite id, HA dropped it
    else:
        assert "context" not in data
        assert seen.result["ignored"] == ["satellite_id"]  # no such pipeline input yet
