"""Home control in Home Assistant's agent flow: black-box, the real server against the simulator.

`HomeAssistant.ask` reads the answer as HA's Wyoming agent does (HA 2026: intent lists and
`error`; HA 2025: the first intent only), with the event headers of the wyoming release each
HA pins, so the server tells the releases apart as it would in a real home. The simulated
model calls tools for a few English command shapes (simulator/tools.py) and only those it
is offered.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import pytest
from harness import (
    AgentReply,
    HomeAssistant,
    ServerProcess,
    running_server,
    server_config,
    tone,
)

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the module's simulator and server

HA_2026, HA_2025 = (2026, 11), (2025, 12)
SATELLITE = "a5f0c0ffee0000000000000000000001"  # a device id, as HA's registry makes them


@pytest.fixture(params=[HA_2026, HA_2025], ids=["ha2026", "ha2025"])
def home(request: pytest.FixtureRequest, server: ServerProcess) -> HomeAssistant:
    return HomeAssistant(server.uri, version=request.param)


def tag() -> str:
    """A word of its own for each request, so each is told apart in the simulator's records."""
    return uuid.uuid4().hex[:6]


def intents(reply: AgentReply) -> list[tuple[str, dict[str, Any]]]:
    return [(i.name, {e.name: e.value for e in i.entities}) for i in reply.intents]


def received(sim: RealtimeSimulator) -> list[dict[str, Any]]:
    return [e for c in sim.connections for e in c.received]


def offered(event: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in event["response"].get("tools", [])}


async def test_a_typed_command_is_an_intent_with_a_spoken_confirmation(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario()  # calls only: the model says nothing beside them
    name = f"kitchen light {tag()}"
    reply = await home.ask(f"Turn off the {name}.")
    assert intents(reply) == [("HassTurnOff", {"name": name})]
    assert reply.handled is None  # a `handled` before the intent would win, and it never runs
    assert reply.intents[0].text == f"Turned off {name}."
    assert not any(e.type == "handled" for e in reply.events)


async def test_the_models_own_words_beside_a_call_are_what_ha_speaks(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(call_text="Okay, {{ the }} kitchen light is on.")
    reply = await home.ask(f"Turn on the kitchen light {tag()}.")
    assert [name for name, _ in intents(reply)] == ["HassTurnOn"]
    # HA 2026 renders an intent's text as a template; a stray {{ would fail the request.
    assert reply.intents[0].text == "Okay,  the  kitchen light is on."


async def test_a_spoken_command_is_one_response_and_an_intent(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    said = f"Turn on the bedroom light {tag()}"
    sim.scenario = Scenario(transcript=said)
    before = len(received(sim))
    transcript, _ = await home.stt(tone(1.0))
    assert transcript.text == said
    reply = await home.ask(transcript.text)
    assert intents(reply) == [("HassTurnOn", {"name": said.removeprefix("Turn on the ")})]
    creates = [e for e in received(sim)[before:] if e["type"] == "response.create"]
    assert len(creates) == 1  # the one started at audio-stop; nothing asks for a second
    assert "HassTurnOn" in offered(creates[0])


async def test_every_call_gets_its_output_and_no_new_response(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario()
    before = len(received(sim))
    await home.ask(f"Turn on the porch light {tag()}.")
    await asyncio.sleep(0.3)  # the outputs follow the reply
    new = received(sim)[before:]
    outputs = [e for e in new if e["type"] == "conversation.item.create"]
    outputs = [e for e in outputs if e["item"]["type"] == "function_call_output"]
    calls = [c for conn in sim.connections for c in conn.calls]
    assert len(outputs) == 1
    assert outputs[0]["item"]["call_id"] in {c["call_id"] for c in calls}
    assert "Sent to Home Assistant" in outputs[0]["item"]["output"]
    assert [e["type"] for e in new].count("response.create") == 1


async def test_several_calls_are_an_intent_list_on_2026_and_the_first_on_2025(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(call_text="Both are on now.")
    t = tag()
    reply = await home.ask(f"Turn on the kitchen light {t} and the bedroom light {t}.")
    names = [slots["name"] for _, slots in intents(reply)]
    if home.runs_intent_lists:
        assert [e.type for e in reply.events if e.type.startswith("intent")] == [
            "intents-start",
            "intent",
            "intent",
            "intents-stop",
        ]
        assert names == [f"kitchen light {t}", f"bedroom light {t}"]
        assert reply.spoken == "Both are on now."
    else:  # HA 2025 runs the first and hangs up: only the first is sent, and it says so
        assert names == [f"kitchen light {t}"]
        assert reply.spoken.startswith(f"Turned on kitchen light {t}.")
        assert "one thing at a time" in reply.spoken


async def test_a_plain_question_is_still_handled(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(reply="The moon is about 384,000 km away.")
    reply = await home.ask(f"How far away is the moon {tag()}?")
    assert reply.handled is not None and not reply.intents
    assert reply.handled.text == "The moon is about 384,000 km away."


@pytest.mark.parametrize(
    "call",
    [
        ("HassTurnOn", '{"name": "kitchen'),  # cut short: not JSON
        ("HassUnlockEverything", '{"name": "front door"}'),  # not offered
        ("HassLightSet", '{"name": "lamp", "brightness": "very bright"}'),  # wrong type
    ],
    ids=["not-json", "unknown-tool", "wrong-type"],
)
async def test_a_broken_call_is_never_sent_and_the_user_hears_why(
    sim: RealtimeSimulator, home: HomeAssistant, call: tuple[str, str]
) -> None:
    sim.scenario = Scenario(calls=[call], call_text="Done!")
    reply = await home.ask(f"Do the thing {tag()}.")
    assert not reply.intents
    assert reply.handled is not None
    assert reply.handled.text == "Sorry, I couldn't work out that command, so I didn't do anything."


async def test_unlocking_is_asked_first_and_sent_only_after_a_yes(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    home = HomeAssistant(server.uri, version=HA_2026)
    unlock = ("HassTurnOff", json.dumps({"name": "front door", "domain": ["lock"]}))

    def model(said: str) -> list[tuple[str, str]]:  # calls again once the user said yes
        return [unlock] if "unlock" in said.lower() or said.lower().startswith("yes") else []

    sim.scenario = Scenario(calls=model, call_text="Unlocking the front door.")
    conversation = f"CONV{tag().upper()}"
    asked = await home.ask(f"Unlock the front door {tag()}.", conversation)
    assert not asked.intents
    assert asked.spoken == "Do you want me to unlock front door? Say yes to confirm."
    confirmed = await home.ask("Yes.", conversation)
    assert intents(confirmed) == [("HassTurnOff", {"name": "front door", "domain": ["lock"]})]
    # A yes in another conversation, or a second yes, confirms nothing.
    elsewhere = await home.ask(f"Unlock the front door {tag()}.")
    assert not elsewhere.intents
    assert not (await home.ask("Yes.")).intents
    assert not (await home.ask("Yes.", conversation)).intents


async def test_a_spoken_request_of_another_conversation_keeps_the_question_open(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """Two satellites of one HA: the second's request, spoken between the first's question
    and its "yes", is started where the first's conversation is (the HA's last spoken one)
    and taken back when it turns out to be another conversation's. It is no turn of the
    first conversation, so the first one's "yes" still confirms."""
    home = HomeAssistant(server.uri, version=HA_2026)
    door = f"front door {tag()}"
    unlock = ("HassTurnOff", json.dumps({"name": door, "domain": ["lock"]}))

    def model(said: str) -> list[tuple[str, str]]:
        return [unlock] if "unlock" in said.lower() or said.lower().startswith("yes") else []

    first, second = f"CONV{tag().upper()}", f"CONV{tag().upper()}"
    sim.scenario = Scenario(transcript=f"Unlock the {door}.", calls=model)
    transcript, _ = await home.stt(tone(1.0))
    asked = await home.ask(transcript.text, first)
    assert not asked.intents and asked.spoken.startswith("Do you want me to unlock")
    sim.scenario = Scenario(transcript=f"Turn on the bedroom light {tag()}.")
    transcript, _ = await home.stt(tone(1.0))
    assert intents(await home.ask(transcript.text, second)) == [
        ("HassTurnOn", {"name": transcript.text.removeprefix("Turn on the ").rstrip(".")})
    ]
    sim.scenario = Scenario(transcript="Yes.", calls=model)  # said to the first satellite
    transcript, _ = await home.stt(tone(1.0))
    confirmed = await home.ask(transcript.text, first)
    unlocked = [("HassTurnOff", {"name": door, "domain": ["lock"]})]
    assert intents(confirmed) == unlocked, confirmed.spoken  # not the question again


async def test_a_follow_up_refers_back_to_the_last_command(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    if not home.sends_context:
        pytest.skip("follow-ups need a conversation_id (HA 2025.7+)")
    sim.scenario = Scenario()
    conversation = f"CONV{tag().upper()}"
    name = f"hall light {tag()}"
    first = await home.ask(f"Turn on the {name}.", conversation)
    assert intents(first) == [("HassTurnOn", {"name": name})]
    again = await home.ask("Turn it off again.", conversation)
    assert intents(again) == [("HassTurnOff", {"name": name})]


async def test_timers_are_offered_where_ha_passes_the_satellite(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario()
    before = len(received(sim))
    satellite = await home.ask("Set a timer for ten minutes.", device_id=SATELLITE)
    typed = await home.ask("Set a timer for ten minutes.")
    creates = [e for e in received(sim)[before:] if e["type"] == "response.create"]
    if home.runs_intent_lists:
        assert intents(satellite) == [("HassStartTimer", {"minutes": 10})]
        assert "HassStartTimer" not in offered(creates[1])  # typed: no device to ring on
    else:  # HA 2025 passes no device: a timer would fail there, so none is offered
        assert not satellite.intents and satellite.handled is not None
        assert not any("Timer" in name for e in creates for name in offered(e))
    assert not typed.intents and typed.handled is not None


async def test_a_state_question_is_a_template_only_where_ha_renders_it(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(reply="I can't check devices from here.")
    reply = await home.ask(f"Is the kitchen light {tag()} on?")
    if home.runs_intent_lists:
        (intent,) = reply.intents
        assert intent.name == "HassGetState"
        assert intent.text is not None and "{{ state.name }} is {{ state.state }}" in intent.text
    else:  # HA 2025 would speak the template literally: no state questions are offered
        assert not reply.intents
        assert reply.spoken == "I can't check devices from here."


async def test_with_home_control_off_no_tools_are_offered(
    sim: RealtimeSimulator, dialect: str, tmp_path: Any
) -> None:
    config = server_config(sim.url, dialect, home_control={"enabled": False})
    async with running_server(tmp_path, config) as server:
        home = HomeAssistant(server.uri, version=HA_2026)
        sim.scenario = Scenario(reply="I can only answer questions.")
        before = len(received(sim))
        reply = await home.ask(f"Turn on the kitchen light {tag()}.")
    assert reply.handled is not None and reply.handled.text == "I can only answer questions."
    creates = [e for e in received(sim)[before:] if e["type"] == "response.create"]
    assert creates and not any(offered(e) for e in creates)


async def test_ask_text_shows_the_commands_for_home_assistant(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """`ask --text`: home control tried from a terminal, with the simulator and no HA."""
    sim.scenario = Scenario()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_realtime_text", "ask", "--uri", server.uri,
        "--text", "Turn on the kitchen light and the bedroom light.",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines() == [
        "home: HassTurnOn name=kitchen light (for Home Assistant to run)",
        "assistant: Turned on kitchen light. Turned on bedroom light.",
        "home: HassTurnOn name=bedroom light (for Home Assistant to run)",
    ]
