"""Home control's parts, each alone: the intents table, call checks, safety, plans, replies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sdk_oracle import check_event
from wyoming.intent import Intent

from wyoming_realtime_text.config import ConfigError, Settings, dump_settings, parse_settings
from wyoming_realtime_text.home.calls import Command, Refused, check
from wyoming_realtime_text.home.home import Home, HomeEntity
from wyoming_realtime_text.home.intents import BY_NAME, INTENTS, SLOTS, Offer, tool
from wyoming_realtime_text.home.peer import Peer, parse_version
from wyoming_realtime_text.home.plan import HELD, SENT, Memory, plan
from wyoming_realtime_text.home.reply import intent_events
from wyoming_realtime_text.home.safety import affirmative, risky
from wyoming_realtime_text.info import build_info
from wyoming_realtime_text.realtime.dialect import BETA, GA, function_output_item
from wyoming_realtime_text.realtime.events import FunctionCall

HA_2026 = Peer((1, 10, 2), device=True, conversation=True)
HA_2026_TYPED = Peer((1, 10, 2), device=False, conversation=True)
HA_2025 = Peer((1, 7, 1), device=False, conversation=True)
HA_2025_4 = Peer((1, 5, 4))
EVERYTHING = {spec.name for spec in INTENTS}


def call(name: str, arguments: Any = None, n: int = 1) -> FunctionCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return FunctionCall(f"item_{n}", f"call_{n}", name, raw)


def command(name: str, **slots: Any) -> Command:
    checked = check(call(name, slots), EVERYTHING)
    assert isinstance(checked, Command), checked
    return checked


# -- the table -----------------------------------------------------------------------------


def test_every_tool_is_a_function_tool_of_its_intents_slots() -> None:
    assert len(BY_NAME) == len(INTENTS)
    for spec in INTENTS:
        made = tool(spec)
        assert made["type"] == "function" and made["name"] == spec.name
        assert made["description"]
        properties = made["parameters"]["properties"]
        assert list(properties) == list(spec.slots)
        assert made["parameters"]["additionalProperties"] is False
        for slot, schema in properties.items():
            assert schema["type"] == SLOTS[slot][0]["type"] and schema["description"]


@pytest.mark.parametrize("dialect", [GA, BETA])
def test_the_sdk_takes_a_response_create_with_every_tool(dialect: Any) -> None:
    event = dialect.response_create(300, Offer(device=True, questions=True).tools())
    assert event["response"]["tool_choice"] == "auto"
    assert len(event["response"]["tools"]) == len(INTENTS)
    assert check_event(dialect.name, "client", event) == []
    output = function_output_item(call("HassTurnOn", {"name": "x"}), SENT, "out_1")
    assert output["previous_item_id"] == "item_1"
    assert check_event(dialect.name, "client", output) == []


def test_what_is_offered_is_what_can_work() -> None:
    older = {spec.name for spec in Offer().specs()}
    assert "HassTurnOn" in older and "HassLightSet" in older
    assert "HassGetState" not in older  # HA 2025 would speak the template literally
    assert not any(name.endswith("Timer") for name in older)  # no device id: timers fail
    newer = {spec.name for spec in Offer(device=True, questions=True).specs()}
    assert {"HassGetState", "HassStartTimer", "HassCancelTimer"} <= newer
    no_media = Offer(domains=frozenset({"light", "switch"})).specs()
    names = {spec.name for spec in no_media}
    assert "HassLightSet" in names and "HassTurnOff" in names
    assert "HassMediaPause" not in names and "HassClimateSetTemperature" not in names
    off = Offer(disabled=frozenset({"HassBroadcast"})).specs()
    assert "HassBroadcast" not in {spec.name for spec in off}


def test_config_turns_intents_off_by_name_and_says_which_name_is_wrong() -> None:
    raw = {"realtime": {"api_key": "k"}, "home_control": {"disabled_intents": ["HassBroadcast"]}}
    assert parse_settings(raw).home_control.disabled_intents == ["HassBroadcast"]
    raw["home_control"]["disabled_intents"] = ["HassTurnOf"]
    with pytest.raises(ConfigError, match=r"HassTurnOf.*did you mean HassTurnOff"):
        parse_settings(raw)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_handle_program_announces_home_control_when_on(enabled: bool) -> None:
    settings = Settings()
    settings.home_control.__dict__["enabled"] = enabled  # frozen dataclass: as loaded
    assert build_info(settings).handle[0].supports_home_control is enabled


# -- checking calls ------------------------------------------------------------------------


def test_a_good_call_becomes_its_intent_with_empty_arguments_dropped() -> None:
    checked = check(
        call("HassTurnOn", {"name": "kitchen light", "area": "", "domain": []}), EVERYTHING
    )
    assert isinstance(checked, Command)
    assert checked.slots == {"name": "kitchen light"}
    assert checked.describe() == "HassTurnOn name=kitchen light"


@pytest.mark.parametrize(
    ("name", "arguments", "why"),
    [
        ("HassUnlockEverything", {"name": "x"}, "not one of the tools offered"),
        ("HassTurnOn", '{"name": "kitchen', "not valid JSON"),
        ("HassTurnOn", "[1, 2]", "must be a JSON object"),
        ("HassLightSet", {"name": "lamp", "brightness": "fifty"}, "brightness"),
        ("HassLightSet", {"name": "lamp", "brightness": 150}, "150"),
        ("HassTurnOn", {"name": "lamp", "entity_id": "light.lamp"}, "entity_id"),
        ("HassTurnOn", {"name": 7}, "name"),
        ("HassTurnOff", {}, "names nothing"),
        ("HassStartTimer", {"minutes": -5}, "minutes"),
    ],
)
def test_a_bad_call_is_refused_with_the_reason(name: str, arguments: Any, why: str) -> None:
    checked = check(call(name, arguments), EVERYTHING)
    assert isinstance(checked, Refused)
    assert why in checked.why


def test_a_tool_that_was_not_offered_is_refused() -> None:
    checked = check(call("HassStartTimer", {"minutes": 5}), {"HassTurnOn"})
    assert isinstance(checked, Refused) and "not one of the tools offered" in checked.why


# -- safety --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "slots", "asks"),
    [
        ("HassTurnOff", {"name": "front door"}, True),  # a lock: unlocking
        ("HassTurnOff", {"name": "Haustür"}, True),
        ("HassTurnOff", {"name": "alarm"}, True),  # disarming
        ("HassTurnOff", {"area": "hall", "domain": ["lock"]}, True),
        ("HassTurnOn", {"name": "garage door"}, True),  # opening
        ("HassTurnOn", {"name": "Garagentor"}, True),
        ("HassTurnOn", {"name": "front door", "domain": ["lock"]}, False),  # locking
        ("HassSetPosition", {"name": "garage door", "position": 50}, True),
        ("HassSetPosition", {"name": "garage door", "position": 0}, False),
        ("HassTurnOn", {"name": "kitchen light"}, False),
        ("HassTurnOff", {"area": "kitchen", "domain": ["light"]}, False),
        ("HassLightSet", {"name": "door light", "brightness": 20}, False),
    ],
)
def test_what_asks_first(intent: str, slots: dict[str, Any], asks: bool) -> None:
    assert risky(intent, slots) is asks


@pytest.mark.parametrize(
    ("said", "yes"),
    [
        ("Yes.", True),
        ("Yeah, do it", True),
        ("ja bitte", True),
        ("Oui", True),
        ("はい", True),
        ("okay go ahead", True),
        ("No.", False),
        ("yes, no, wait", False),
        ("Don't.", False),
        ("", False),
        ("Turn on the kitchen light", False),
        ("yes I think it would be good to maybe do that later today", False),
    ],
)
def test_what_counts_as_a_yes(said: str, yes: bool) -> None:
    assert affirmative(said) is yes


# -- plans ---------------------------------------------------------------------------------


def decide(calls: list[FunctionCall], peer: Peer = HA_2026, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"language": "en", "said": "", "model_text": ""}
    return plan(calls, EVERYTHING, peer, **{**args, **kwargs})


def test_the_models_words_are_spoken_when_everything_was_sent() -> None:
    result = decide([call("HassTurnOn", {"name": "kitchen light"})], model_text="Light on!")
    assert [c.spec.name for c in result.send] == ["HassTurnOn"]
    assert result.text == "Light on!"
    assert result.outputs == [(result.send[0].call, SENT)]


def test_a_calls_only_response_gets_a_confirmation_in_the_users_language() -> None:
    calls = [call("HassTurnOff", {"name": "kitchen light"})]
    assert decide(calls).text == "Turned off kitchen light."
    assert decide(calls, language="de-DE").text == "Erledigt."
    light = [call("HassLightSet", {"area": "bedroom", "brightness": 30})]
    assert decide(light).text == "Set the lights in bedroom to 30 percent."


def test_a_risky_command_is_asked_and_sent_only_after_a_yes_in_the_next_turn() -> None:
    memory = Memory()
    unlock = call("HassTurnOff", {"name": "front door"})
    first = decide([unlock], model_text="Unlocking the front door.")
    assert not first.send and len(first.held) == 1
    assert first.text == "Do you want me to unlock or close front door? Say yes to confirm."
    assert first.outputs[0][1] == HELD.format(name="HassTurnOff")
    memory.hold(first.held)
    confirmable = memory.take()
    assert memory.take() == frozenset()  # only the very next turn may confirm
    again = call("HassTurnOff", {"name": "Front  Door"}, n=2)
    yes = decide([again], said="Yes.", confirmable=confirmable)
    assert [c.call.call_id for c in yes.send] == ["call_2"]
    no = decide([again], said="No, leave it.", confirmable=confirmable)
    assert not no.send and no.held  # asked again, not sent
    other = decide(
        [call("HassTurnOn", {"name": "garage door"})], said="yes", confirmable=confirmable
    )
    assert not other.send  # a yes confirms only what was asked
    fresh = decide([again], said="Yes.")
    assert not fresh.send  # nothing was asked in this conversation


def test_a_satellites_area_is_for_commands_that_name_no_place_nor_entity() -> None:
    """As HA's agent takes a satellite's area: "the lights" there are its lights, and a
    named entity is that entity wherever it is (real HA: tests/test_real_ha_api.py)."""
    bedroom = HomeEntity(("Bedroom light",), "light", ("Bedroom",), None, "light.bed", "off")
    kitchen = HomeEntity(("Kitchen light",), "light", ("Kitchen",), None, "light.kit", "off")

    def sent(arguments: dict[str, Any], home: Home | None) -> list[dict[str, Any]]:
        result = decide([call("HassTurnOn", arguments)], area="Kitchen", home=home)
        return [c.slots for c in result.send]

    for home in (Home([bedroom, kitchen]), None):
        assert sent({"domain": ["light"]}, home) == [{"domain": ["light"], "area": "Kitchen"}]
        named = sent({"name": "bedroom light"}, home)
        assert named == [{"name": "Bedroom light" if home else "bedroom light"}]
        assert sent({"area": "Bedroom"}, home) == [{"area": "Bedroom"}]


def test_without_conversations_a_risky_command_is_refused_not_asked() -> None:
    result = decide([call("HassTurnOff", {"name": "front door"})], peer=HA_2025_4)
    assert not result.send and not result.held and result.refused
    assert "For safety" in result.text


def test_a_timer_without_a_satellite_is_refused_with_a_sentence() -> None:
    result = decide([call("HassStartTimer", {"minutes": 10})], peer=HA_2026_TYPED)
    assert not result.send
    assert result.text == "I can only set timers from a voice satellite."
    assert decide([call("HassStartTimer", {"minutes": 10})]).send  # from a satellite


def test_an_ha_that_runs_one_intent_gets_only_the_first() -> None:
    calls = [
        call("HassTurnOn", {"name": "kitchen light"}, 1),
        call("HassTurnOn", {"name": "bedroom light"}, 2),
    ]
    older = decide(calls, peer=HA_2025, model_text="Both on.")
    assert [c.slots["name"] for c in older.send] == ["kitchen light"]
    assert older.text.startswith("Turned on kitchen light.")
    assert "one thing at a time" in older.text
    assert [o[1] == SENT for o in older.outputs] == [True, False]
    newer = decide(calls, model_text="Both on.")
    assert len(newer.send) == 2 and newer.text == "Both on."


def test_a_broken_call_beside_a_good_one_is_explained_and_the_good_one_sent() -> None:
    calls = [call("HassTurnOn", {"name": "kitchen light"}, 1), call("HassTurnOn", "{oops", 2)]
    result = decide(calls, model_text="Done, both!")
    assert len(result.send) == 1 and len(result.refused) == 1
    assert result.text == (
        "Turned on kitchen light. Sorry, I couldn't work out that command, so I didn't do anything."
    )
    assert [o[0].call_id for o in result.outputs] == ["call_1", "call_2"]


# -- replies -------------------------------------------------------------------------------


def test_one_command_is_one_intent_event_with_template_safe_text() -> None:
    result = decide([call("HassTurnOn", {"name": "kitchen light"})], model_text="On {{ now }}!")
    (event,) = intent_events(result, "en")
    intent = Intent.from_event(event)
    assert intent.name == "HassTurnOn"
    assert [(e.name, e.value) for e in intent.entities] == [("name", "kitchen light")]
    assert intent.text == "On  now !"


def test_several_commands_are_a_list_with_the_text_on_the_first_action() -> None:
    calls = [
        call("HassGetState", {"name": "porch light", "state": "on"}, 1),
        call("HassTurnOn", {"area": "kitchen", "domain": ["light"]}, 2),
    ]
    events = intent_events(decide(calls, model_text="Sure."), "en")
    assert [e.type for e in events] == ["intents-start", "intent", "intent", "intents-stop"]
    question, action = (Intent.from_event(e) for e in events[1:3])
    assert question.text is not None and "{{ state.name }} is {{ state.state }}" in question.text
    assert question.text.startswith("{% if state %}{% if query.matched %}Yes")
    assert action.text == "Sure."
    assert [(e.name, e.value) for e in action.entities] == [
        ("area", "kitchen"),
        ("domain", ["light"]),
    ]


# -- peers ---------------------------------------------------------------------------------


def test_which_home_assistant_is_asking() -> None:
    assert parse_version("1.10.2") == (1, 10, 2) and parse_version(None) is None
    assert parse_version("x") is None
    ctx = {"conversation_id": "c", "device_id": "d", "language": "en"}
    assert Peer.from_request("1.10.2", ctx) == HA_2026
    assert Peer.from_request("1.10.2", {"conversation_id": "c"}) == HA_2026_TYPED
    assert Peer.from_request("1.7.1", {"conversation_id": "c"}) == HA_2025
    assert not Peer.from_request(None, None).multi
    assert Peer.speaking("1.10.2") == HA_2026  # HA 2026's voice requests carry a device
    assert Peer.speaking("1.7.1") == HA_2025


def test_home_assistant_api_config_is_checked_and_its_token_never_shown() -> None:
    raw: dict[str, Any] = {"realtime": {"api_key": "k"}, "homeassistant": {"url": "ha:8123"}}
    with pytest.raises(ConfigError, match=r"homeassistant.url: .*http:// or https://"):
        parse_settings(raw)
    raw["homeassistant"] = {"url": "http://homeassistant.local:8123"}
    with pytest.raises(ConfigError, match=r"homeassistant.token is not set"):
        parse_settings(raw)
    raw["homeassistant"]["token"] = "eyJ-secret-token"
    settings = parse_settings(raw)
    assert "eyJ-secret-token" not in dump_settings(settings)
    assert "eyJ-secret-token" not in repr(settings)
