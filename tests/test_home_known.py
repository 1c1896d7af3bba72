"""Home control with the home known: the real server, HA's API played by `ha_standin`.

With `homeassistant: {url, token}` the server reads the entities exposed to Assist over
HA's WebSocket API: they go into each response's instructions, every command is matched
against them before it is sent (HA 2025 itself would switch an unexposed entity), state
questions are answered from live state, and satellites served here run their commands
through HA's REST API (`POST /api/intent/handle`), with the satellite's area.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from ha_standin import TOKEN, HaStandIn
from harness import (
    HomeAssistant,
    ServerProcess,
    pipeline_from,
    running_server,
    server_config,
    speech,
)

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimulatedSatellite
from wyoming_realtime_text.simulator.tts import SimulatedTts

pytestmark = pytest.mark.asyncio(loop_scope="module")

HA_2025 = (2025, 12)
ALLOWED = "127.0.0.201"  # a direct client the config lets act on the home


@pytest.fixture(scope="module")
def dialect() -> str:
    return "ga"  # what differs here is the home, not the dialect (both: test_home_control)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def standin() -> AsyncIterator[HaStandIn]:
    async with HaStandIn(version="2025.12.5") as ha:
        await ha.add_area("kitchen", "Kitchen")
        await ha.add_area("bedroom", "Bedroom")
        await ha.add_area("hall", "Hallway")
        await ha.add_device("satellite", "Kitchen Voice", area_id="kitchen")
        await ha.add_entity("light.kitchen", "Kitchen Light", area_id="kitchen")
        await ha.add_entity("light.bedroom", "Bedroom Light", area_id="bedroom")
        await ha.add_entity("light.door", "Door Light", area_id="hall")
        await ha.add_entity("light.secret", "Secret Light", area_id="bedroom", exposed=False)
        await ha.add_entity("lock.front_door", "Front Door", "locked", area_id="hall")
        yield ha


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kitchen() -> AsyncIterator[SimulatedSatellite]:
    async with SimulatedSatellite(name="kitchen", audio=speech("kitchen")) as sat:
        yield sat


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tts() -> AsyncIterator[SimulatedTts]:
    async with SimulatedTts() as simulated:
        yield simulated


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sim: RealtimeSimulator,
    standin: HaStandIn,
    kitchen: SimulatedSatellite,
    tts: SimulatedTts,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    config = server_config(
        sim.url,
        "ga",
        homeassistant={"url": standin.url, "token": TOKEN},
        home_control={"clients": [ALLOWED]},
        tts={"uri": tts.uri},
    )
    config["satellites"] = [{"uri": kitchen.uri, "name": "kitchen", "area": "Kitchen"}]
    async with running_server(tmp_path_factory.mktemp("home"), config) as process:
        await kitchen.wait_connected(10)
        yield process


@pytest_asyncio.fixture(loop_scope="module")
async def home(standin: HaStandIn, server: ServerProcess) -> HomeAssistant:
    for entity_id in ("light.kitchen", "light.bedroom", "light.door", "light.secret"):
        await standin.set_state(entity_id, "off")
    await standin.set_state("lock.front_door", "locked")
    await asyncio.sleep(0.1)  # the server's snapshot follows the state_changed events
    return HomeAssistant(server.uri, version=HA_2025)


def tag() -> str:
    return uuid.uuid4().hex[:6]


def creates(sim: RealtimeSimulator, before: int) -> list[dict[str, Any]]:
    received = [e for c in sim.connections for e in c.received]
    return [e for e in received[before:] if e["type"] == "response.create"]


def received_count(sim: RealtimeSimulator) -> int:
    return sum(len(c.received) for c in sim.connections)


async def test_a_command_is_checked_and_sent_with_has_own_name(
    sim: RealtimeSimulator, home: HomeAssistant, server: ServerProcess
) -> None:
    sim.scenario = Scenario()
    before = received_count(sim)
    reply = await home.ask("Turn on the kitchen LIGHT.")
    assert [(i.name, {e.name: e.value for e in i.entities}) for i in reply.intents] == [
        ("HassTurnOn", {"name": "Kitchen Light"})
    ]
    (create,) = creates(sim, before)
    instructions = create["response"]["instructions"]
    assert "Kitchen Light" in instructions and "Front Door" in instructions
    assert "Secret Light" not in instructions  # not exposed to Assist
    assert "light.kitchen" not in instructions  # no entity ids for the model
    offered = {tool["name"] for tool in create["response"]["tools"]}
    assert "HassGetState" in offered  # answered from live state, on any HA
    assert "HassMediaPause" not in offered  # the home has no media player


async def test_an_unexposed_entity_is_never_acted_on(
    sim: RealtimeSimulator, home: HomeAssistant, standin: HaStandIn
) -> None:
    sim.scenario = Scenario()
    reply = await home.ask("Turn on the secret light.")
    assert not reply.intents
    assert reply.spoken.startswith("I couldn't find secret light in your home.")
    assert standin.entities["light.secret"].state == "off"


async def test_a_near_miss_is_asked_back_not_sent(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario()
    reply = await home.ask("Turn on the kitchen lamp.")
    assert not reply.intents
    assert reply.spoken == "I couldn't find kitchen lamp in your home. Did you mean Kitchen Light?"


async def test_a_state_question_is_answered_from_live_state_on_ha_2025(
    sim: RealtimeSimulator, home: HomeAssistant, standin: HaStandIn
) -> None:
    sim.scenario = Scenario()
    await standin.set_state("light.bedroom", "on")
    await asyncio.sleep(0.1)
    reply = await home.ask("Is the bedroom light on?")
    assert not reply.intents
    assert reply.spoken == "Yes, Bedroom Light is on."
    reply = await home.ask("Is the front door on?")
    assert reply.spoken == "No, Front Door is locked."


async def test_what_asks_first_is_decided_by_the_entity(
    sim: RealtimeSimulator, home: HomeAssistant
) -> None:
    sim.scenario = Scenario()
    conversation = f"CONV{tag().upper()}"
    asked = await home.ask("Turn off the front door.", conversation)  # a lock: unlocking
    assert not asked.intents and "Say yes to confirm" in asked.spoken
    light = await home.ask("Turn off the door light.")  # a light, whatever its name says
    assert [i.name for i in light.intents] == ["HassTurnOff"]


async def test_a_satellite_here_runs_its_command_through_has_api_in_its_area(
    sim: RealtimeSimulator, kitchen: SimulatedSatellite, standin: HaStandIn, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(transcript="Turn on the lights.")
    requests = len(standin.intent_requests)
    synthesized = len([e for e in kitchen.received if e.type == "synthesize"])
    await kitchen.trigger()
    await kitchen.wait_played(15)
    (request,) = standin.intent_requests[requests:]
    # Light by light, by name: this HA (2025.12) would switch unexposed ones too.
    assert request.body == {
        "name": "HassTurnOn",
        "data": {"name": "Kitchen Light", "area": "Kitchen"},
    }
    assert standin.entities["light.kitchen"].state == "on"
    assert standin.entities["light.bedroom"].state == "off"  # the satellite's room only
    said = [e.data["text"] for e in kitchen.received if e.type == "synthesize"][synthesized:]
    assert said == ["Turned on the lights in Kitchen."]


async def test_the_lights_from_a_satellite_are_its_rooms_lights(
    sim: RealtimeSimulator, server: ServerProcess, home: HomeAssistant
) -> None:
    """HA passes the satellite's device but does not narrow "the lights" to its area
    (measured: tests/test_real_ha_home.py); with the home known, the server does."""
    sim.scenario = Scenario()
    ha_2026 = HomeAssistant(server.uri, version=(2026, 11))
    reply = await ha_2026.ask("Turn on the lights.", device_id="satellite")
    assert [(i.name, {e.name: e.value for e in i.entities}) for i in reply.intents] == [
        ("HassTurnOn", {"domain": ["light"], "area": "Kitchen"})
    ]
    everywhere = await ha_2026.ask("Turn on the lights.")  # typed: no satellite, no area
    assert [{e.name: e.value for e in i.entities} for i in everywhere.intents] == [
        {"domain": ["light"]}
    ]


async def pipeline_tools(uri: str, host: str, sim: RealtimeSimulator) -> set[str]:
    """A run-pipeline client from `host` says a command; the tools its response offered."""
    before = received_count(sim)
    await pipeline_from(host, uri, speech("kitchen"))
    (create,) = creates(sim, before)
    return {tool["name"] for tool in create["response"].get("tools", [])}


async def test_direct_clients_act_on_the_home_only_when_named(
    sim: RealtimeSimulator, server: ServerProcess, standin: HaStandIn, home: HomeAssistant
) -> None:
    sim.scenario = Scenario(transcript="Turn on the bedroom light.")
    assert await pipeline_tools(server.uri, "127.0.0.202", sim) == set()
    assert standin.entities["light.bedroom"].state == "off"
    assert "HassTurnOn" in await pipeline_tools(server.uri, ALLOWED, sim)
    assert standin.entities["light.bedroom"].state == "on"
    assert json.dumps(standin.intent_requests[-1].body) == json.dumps(
        {"name": "HassTurnOn", "data": {"name": "Bedroom Light"}}
    )


async def test_has_own_request_for_the_lights_runs_here_light_by_light_on_ha_2025(
    sim: RealtimeSimulator, standin: HaStandIn, home: HomeAssistant
) -> None:
    """HA 2025 runs one intent, on unexposed entities too: "the lights" are run here, each
    exposed light by its name, and HA is told how it went (real HA: test_real_ha_api.py)."""
    sim.scenario = Scenario()
    requests = len(standin.intent_requests)
    reply = await home.ask("Turn on the lights.")
    assert not reply.intents and reply.spoken == "Turned on the lights."
    assert [r.body["data"]["name"] for r in standin.intent_requests[requests:]] == [
        "Bedroom Light",
        "Door Light",
        "Kitchen Light",
    ]
    assert standin.entities["light.secret"].state == "off"


async def test_the_lights_are_sent_light_by_light_where_ha_ignores_exposure(
    sim: RealtimeSimulator, server: ServerProcess, standin: HaStandIn, home: HomeAssistant
) -> None:
    """HA 2025's intent view would switch every light, the unexposed one too: each exposed
    light goes by its name (real HA: tests/test_real_ha_api.py)."""
    sim.scenario = Scenario(transcript="Turn on the lights.")
    requests = len(standin.intent_requests)
    events = await pipeline_from(ALLOWED, server.uri, speech("kitchen"))
    assert [r.body for r in standin.intent_requests[requests:]] == [
        {"name": "HassTurnOn", "data": {"name": name, "area": area}}
        for name, area in [
            ("Bedroom Light", "Bedroom"),
            ("Door Light", "Hallway"),
            ("Kitchen Light", "Kitchen"),
        ]
    ]
    assert standin.entities["light.secret"].state == "off"
    assert standin.entities["light.kitchen"].state == "on"
    [handled] = [e for e in events if e.type == "handled"]
    assert handled.data["text"] == "Turned on the lights."
