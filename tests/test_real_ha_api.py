"""Our server knows the home through REAL Home Assistant's APIs, with a real token.

`homeassistant: {url, token}` makes our server read the entities exposed to Assist over HA's
WebSocket API and run a satellite's commands through `POST /api/intent/handle`; the
stand-in of HA's APIs (tests/ha_standin.py, tests/test_home_known.py) was written from HA's
source, and this is the same client against the real thing. Real HA core
(`ha_home.home_assistant`: the Kitchen, Bedroom and (not exposed) Garage lights, the front
door's lock, the garage door, the Kitchen satellite device) boots once per release with its
REST and WebSocket APIs on and makes an administrator's long-lived access token
(`ha_driver.Driver.make_token`).

HA adds its Wyoming entries at boot, before there is a token: a first server of ours,
without one, answers the config flow (through a `WyomingTap`); then the tap is pointed at
the server under test, configured with HA's url and token, a Kitchen satellite it serves
itself (hub mode, area Kitchen) and a direct client allowed to act (`home_control.clients`).
Two more have a token HA refuses and the token of a user who is not an administrator. The
Realtime simulator is the model behind all of them.

Checked on every release (what a release cannot do is skipped, with the reason):
- the server reads what HA exposes: the home's overview in the model's instructions has
  the names and areas HA has, never the unexposed garage light, and a command on that light
  is never acted on (HA 2025 would switch it); a state question is answered from live state;
- hub mode: the Kitchen satellite's and the allowed client's commands switch the real
  lights through HA's REST API; "the lights" at the satellite are the Kitchen's;
- "the lights" said at HA's own Kitchen satellite are the Kitchen's (HA 2026 passes the
  device; its area is read from HA's device registry);
- unlocking the front door from the satellite is asked first; only "yes" sends it;
- a refused token is one warning line, no traceback, and that server keeps answering,
  without the home; so is a user's who is not an administrator (HA lists what is exposed
  only to them), saying so; no token ever appears in our servers' logs;
- the stand-in answers `POST /api/intent/handle` as real HA does (the raw answers to the
  same probes, compared), and exposing an entity in HA is followed at once.

Measured here (2026.11.0 | 2025.12.5 | 2025.4.4), beside what the stand-in already had:
- HA 2025 runs {domain: light} ("turn on the lights") on the unexposed garage light too,
  through its Wyoming agent and its REST view alike: our server now sends such a command
  light by light, each exposed light by its name and area (2025's own request: run here,
  through the API);
- a failed match through the REST view is HTTP 500 on 2025.4 (HA fixed that in 2025.10),
  and 2025.12's MatchFailedError repr names the missing area and lists the areas asked
  for: the stand-in does both now; 2026.11 answered exactly as the stand-in did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
import pytest_asyncio
from ha_home import (
    BEDROOM_LIGHT,
    FRONT_DOOR,
    GARAGE_LIGHT,
    INITIAL,
    KITCHEN_LIGHT,
    at_least,
    called,
    changed,
    env,  # noqa: F401  (a fixture)
    home_assistant,
    spec,  # noqa: F401  (a fixture)
)
from ha_requests import WAV, Rig, Seen, unlocks
from ha_rig import OUR_TITLE, TTS_TITLE
from ha_standin import HaStandIn
from ha_window import Window
from harness import (
    HomeAssistant,
    ServerProcess,
    pipeline_from,
    running_server,
    server_config,
    speech,
)
from real_ha_env import HaEnv, HaSpec
from wyoming_tap import WyomingTap

from wyoming_realtime_text.simulator import (
    RealtimeSimulator,
    Scenario,
    SimulatedSatellite,
    SimulatedTts,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(2400)]

ALLOWED, OTHER = "127.0.0.201", "127.0.0.202"  # direct clients: listed, and not
FOLLOW_SECONDS = 30.0  # our server's first read of HA's lists, at most
PLAYED_SECONDS = 20.0  # one satellite turn, at most
# The home as HA exposes it to Assist, as our server puts it in the model's instructions.
OVERVIEW = """\
- names: Bedroom light
  domain: light
  areas: Bedroom
- names: Front door
  domain: lock
  areas: Hallway
- names: Garage door
  domain: cover
  areas: Garage
- names: Kitchen light
  domain: light
  areas: Kitchen
"""
ASKED = "Do you want me to unlock Front door? Say yes to confirm."


@dataclass
class Heard:
    """One turn at the Kitchen satellite our server serves: what it said, and the home."""

    said: list[str]
    home: dict[str, Any]
    window: Window

    def changed(self) -> dict[str, str | None]:
        return changed(self.home)

    def called(self) -> list[tuple[str, str]]:
        return called(self.home)

    def __str__(self) -> str:
        return f"said {self.said}; changed {self.changed()}; calls {self.called()}"


@dataclass
class ApiRig(Rig):
    """`Rig` (HA's pipeline and Assist dialog to our server) and the server's own clients."""

    kitchen: SimulatedSatellite
    # A state switched just before a request reaches our server as a state_changed event.
    state_seconds: ClassVar[float] = 0.3

    async def satellite(self, heard: str, scenario: Scenario) -> Heard:
        """Said to the Kitchen satellite our server serves (hub mode), in its conversation;
        the simulator's STT hears ``heard``."""

        async def say() -> list[str]:
            before = len(said_by(self.kitchen))
            await self.kitchen.trigger()
            await self.kitchen.wait_played(PLAYED_SECONDS)
            return said_by(self.kitchen)[before:]

        scenario.transcript = heard
        return await self._turn(scenario, say)

    async def client(self, host: str, heard: str) -> Heard:
        """Said by a direct client at ``host`` (run-pipeline asr → handle)."""

        async def say() -> list[str]:
            events = await pipeline_from(host, self.server.uri, speech("kitchen"))
            return [str(e.data.get("text")) for e in events if e.type == "handled"]

        return await self._turn(Scenario(transcript=heard), say)

    async def _turn(self, scenario: Scenario, say: Callable[[], Awaitable[list[str]]]) -> Heard:
        """One turn of our server's own clients on a fresh home, and what it did."""
        await self.fresh_home()
        self.sim.scenario = scenario
        window = Window.open(self.sim, self.tap)
        said = await say()
        await window.close()
        return Heard(said, await self.home.home(), window)


def said_by(satellite: SimulatedSatellite) -> list[str]:
    """What the satellite was given to speak, in order."""
    return [str(e.data["text"]) for e in satellite.received if e.type == "synthesize"]


def intents_answered(seen: Seen) -> list[dict[str, Any]]:
    """The `intent` events our server answered HA's agent request with: {name, slots}."""
    [agent] = seen.window.tap_connections("agent")
    return [
        {
            "name": e.data.get("name"),
            "slots": {s["name"]: s["value"] for s in e.data.get("entities") or []},
        }
        for e in agent.answered
        if e.type == "intent"
    ]


async def following(server: ServerProcess) -> str:
    """The log line saying our server follows HA (it has read HA's lists), once it is there."""
    deadline = time.monotonic() + FOLLOW_SECONDS
    while not (found := re.search(r".*following Home Assistant.*", server.log())):
        assert time.monotonic() < deadline, f"our server never followed HA:\n{server.log()}"
        await asyncio.sleep(0.1)
    return found.group(0)


@contextlib.asynccontextmanager
async def boot_server(
    tmp: Path, sim: RealtimeSimulator
) -> AsyncIterator[tuple[ServerProcess, WyomingTap]]:
    """A server without a token behind a tap: what HA's Wyoming config flow talks to."""
    (tmp / "boot").mkdir()
    async with (
        running_server(tmp / "boot", server_config(sim.url, "ga")) as boot,
        WyomingTap(boot.port) as tap,
    ):
        yield boot, tap


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    spec: HaSpec,  # noqa: F811
    env: HaEnv,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ApiRig]:
    tmp = tmp_path_factory.mktemp(f"real-ha-api-{spec.version}")
    (tmp / "known").mkdir()
    async with (
        RealtimeSimulator(host="127.0.0.1", port=0) as sim,
        SimulatedTts() as tts,
        SimulatedSatellite(name="kitchen", audio=speech("kitchen")) as kitchen,
        boot_server(tmp, sim) as (_, tap),
    ):
        agents = [("127.0.0.1", tap.port), ("127.0.0.1", tts.port)]
        async with home_assistant(
            spec, env, tmp / "ha", agents, OUR_TITLE, tts_title=TTS_TITLE, files=[WAV]
        ) as home:
            config = server_config(
                sim.url,
                "ga",
                homeassistant={"url": home.api_url, "token": home.token},
                home_control={"clients": [ALLOWED]},
                tts={"uri": tts.uri},
            )
            config["satellites"] = [{"uri": kitchen.uri, "name": "kitchen", "area": "Kitchen"}]
            async with running_server(tmp / "known", config) as server:
                tap.target_port = server.port  # HA's requests go to the server under test
                await kitchen.wait_connected(10)
                await following(server)
                yield ApiRig(spec, sim, tts, server, tap, home, kitchen)


@contextlib.asynccontextmanager
async def token_server(
    rig: ApiRig, tmp_path_factory: pytest.TempPathFactory, token: str
) -> AsyncIterator[ServerProcess]:
    """A server of ours given HA's url and ``token`` (and nothing else to serve)."""
    tmp = tmp_path_factory.mktemp(f"real-ha-api-token-{rig.spec.version}")
    hass = {"url": rig.home.api_url, "token": token}
    async with running_server(tmp, server_config(rig.sim.url, "ga", homeassistant=hass)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refused(
    rig: ApiRig, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server whose token HA refuses: the real one, altered."""
    token = rig.home.token
    wrong = token[:-6] + ("B" * 6 if token.endswith("A" * 6) else "A" * 6)
    async with token_server(rig, tmp_path_factory, wrong) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def not_admin(
    rig: ApiRig, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server with the token of a user who is not an administrator (HA takes it, but
    lists what is exposed to Assist only to administrators)."""
    async with token_server(rig, tmp_path_factory, rig.home.user_token) as server:
        yield server


def token_lines(server: ServerProcess) -> list[str]:
    """The lines of the server's log about its token."""
    return [line for line in server.log().splitlines() if "token" in line.lower()]


# -- what the server reads ---------------------------------------------------------------


async def test_the_server_follows_has_exposed_entities(rig: ApiRig) -> None:
    line = await following(rig.server)
    assert f"following Home Assistant {rig.spec.version} at {rig.home.api_url}" in line, line
    assert ": 4 entities exposed to Assist" in line, line  # the garage light is not


async def test_the_models_instructions_have_the_home_as_ha_exposes_it(rig: ApiRig) -> None:
    """Names and areas as HA has them, no entity ids, nothing unexposed; and the typed
    command goes to HA with the entity's own name."""
    seen = await rig.type("Turn on the kitchen light.", Scenario())
    [instructions] = seen.window.instructions()
    assert OVERVIEW in instructions, (instructions, rig.context())
    assert "Garage light" not in instructions and "light.kitchen_light" not in instructions
    assert intents_answered(seen) == [{"name": "HassTurnOn", "slots": {"name": "Kitchen light"}}]
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (str(seen), rig.context())


async def test_the_unexposed_garage_light_is_never_acted_on(rig: ApiRig) -> None:
    """HA 2025 would switch it if asked (test_real_ha_home.py): nothing is sent."""
    seen = await rig.type("Turn on the garage light.", Scenario())
    assert intents_answered(seen) == [], seen
    assert seen.called() == [] and seen.state(GARAGE_LIGHT) == "off", (str(seen), rig.context())
    assert (seen.speech or "").startswith("I couldn't find garage light in your home."), seen


async def test_a_state_question_is_answered_from_live_state(rig: ApiRig) -> None:
    """On every release (HA 2025 would speak a template literally): from the states our
    server follows, nothing sent to HA."""
    on = await rig.type("Is the kitchen light on?", Scenario(), (KITCHEN_LIGHT,))
    off = await rig.type("Is the kitchen light on?", Scenario())
    assert on.speech == "Yes, Kitchen light is on.", (str(on), rig.context())
    assert off.speech == "No, Kitchen light is off.", (str(off), rig.context())
    assert intents_answered(on) == intents_answered(off) == []
    assert "HassGetState" in on.window.offered()


async def test_the_lights_at_has_kitchen_satellite_are_the_kitchens(rig: ApiRig) -> None:
    """HA would switch every light (test_real_ha_home.py); the device's area is in HA's
    device registry, which our server reads."""
    if not at_least(rig.spec, "2026.1"):
        pytest.skip(f"{rig.spec.label} passes no device with the agent request")
    seen = await rig.speak("Turn on the lights.", Scenario(), None)
    assert intents_answered(seen) == [
        {"name": "HassTurnOn", "slots": {"domain": ["light"], "area": "Kitchen"}}
    ], (str(seen), rig.context())
    assert seen.changed() == {KITCHEN_LIGHT: "on"}, (str(seen), rig.context())


async def test_a_named_light_elsewhere_said_at_has_kitchen_satellite(rig: ApiRig) -> None:
    """The satellite's area is for a command that names nothing: "the bedroom light" said
    in the Kitchen is the bedroom light."""
    if not at_least(rig.spec, "2026.1"):
        pytest.skip(f"{rig.spec.label} passes no device with the agent request")
    seen = await rig.speak("Turn on the bedroom light.", Scenario(), None)
    assert seen.changed() == {BEDROOM_LIGHT: "on"}, (str(seen), rig.context())


# -- hub mode: the server runs the commands through HA's REST API ------------------------


async def test_the_kitchen_satellite_switches_the_real_light(rig: ApiRig) -> None:
    heard = await rig.satellite("Turn on the kitchen light.", Scenario())
    assert heard.changed() == {KITCHEN_LIGHT: "on"}, (str(heard), rig.context())
    assert heard.called() == [(KITCHEN_LIGHT, "turn_on")]
    assert heard.said == ["Turned on Kitchen light."], heard


async def test_the_lights_at_the_kitchen_satellite_are_the_kitchens(rig: ApiRig) -> None:
    heard = await rig.satellite("Turn on the lights.", Scenario())
    assert heard.changed() == {KITCHEN_LIGHT: "on"}, (str(heard), rig.context())
    assert heard.said == ["Turned on the lights in Kitchen."], heard


async def test_a_named_light_elsewhere_from_the_kitchen_satellite(rig: ApiRig) -> None:
    heard = await rig.satellite("Turn on the bedroom light.", Scenario())
    assert heard.changed() == {BEDROOM_LIGHT: "on"}, (str(heard), rig.context())


async def test_the_lights_everywhere_are_only_the_exposed_ones(rig: ApiRig) -> None:
    """From a client that is in no area: every exposed light, never the garage's (HA's view
    before 2026.4 does not count exposure)."""
    heard = await rig.client(ALLOWED, "Turn on the lights.")
    lit = {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}
    assert heard.changed() == lit, (str(heard), rig.context())


async def test_the_lights_typed_are_only_the_exposed_ones(rig: ApiRig) -> None:
    """Typed into HA's Assist dialog (no satellite, no area): HA runs what our server
    answers, and HA 2025 does not count exposure (test_real_ha_home.py)."""
    seen = await rig.type("Turn on the lights.", Scenario())
    lit = {KITCHEN_LIGHT: "on", BEDROOM_LIGHT: "on"}
    assert seen.changed() == lit, (str(seen), rig.context())


async def test_an_allowed_direct_client_switches_the_real_light(rig: ApiRig) -> None:
    heard = await rig.client(ALLOWED, "Turn on the bedroom light.")
    assert heard.changed() == {BEDROOM_LIGHT: "on"}, (str(heard), rig.context())
    other = await rig.client(OTHER, "Turn on the bedroom light.")
    assert other.changed() == {} and other.called() == [], (str(other), rig.context())


async def test_unlocking_from_the_satellite_waits_for_a_yes(rig: ApiRig) -> None:
    asked = await rig.satellite("Unlock the front door.", Scenario(calls=unlocks))
    assert asked.said == [ASKED], (str(asked), rig.context())
    assert asked.called() == [] and asked.changed() == {}, asked
    yes = await rig.satellite("Yes.", Scenario(calls=unlocks))
    assert yes.changed() == {FRONT_DOOR: "unlocked"}, (str(yes), rig.context())
    assert yes.called() == [(FRONT_DOOR, "unlock")]


# -- the stand-in of HA's APIs, against the real thing -----------------------------------

# Requests our client makes to `POST /api/intent/handle` (its slots as it sends them), and
# the cases where HA's answer differs: success, failed matches, exposure, an unknown intent.
PROBES: list[tuple[str, dict[str, Any]]] = [
    ("HassTurnOn", {"name": "Kitchen light"}),
    ("HassTurnOn", {"name": "kitchen LIGHT"}),
    ("HassTurnOn", {"name": "spaceship"}),
    ("HassTurnOn", {"name": "Garage light"}),  # not exposed: acted on where HA ignores that
    ("HassTurnOff", {"area": "Kitchen", "domain": ["light"]}),
    ("HassTurnOn", {"name": "Kitchen light", "area": "Bedroom"}),
    ("HassTurnOn", {"area": "Attic"}),
    ("HassLightSet", {"name": "Kitchen light", "brightness": 50}),
    ("HassTurnOff", {"name": "Front door", "domain": ["lock"]}),
    ("HassTurnOn", {"name": "Garage door"}),
    ("HassNoSuchIntent", {}),
]


async def furnished_standin(rig: ApiRig) -> HaStandIn:
    """A stand-in of the same release with the real home's entities, areas and exposure."""
    standin = HaStandIn(version=rig.spec.version, token=rig.home.token)
    await standin.start()
    home = rig.home.ready["home"]
    for area in sorted({e["area"] for e in home["entities"].values() if e["area"]}):
        await standin.add_area(area.lower(), area)
    for entity_id, entity in home["entities"].items():
        attributes = entity["attributes"] or {}
        await standin.add_entity(
            entity_id,
            entity["name"],
            INITIAL[entity_id],
            area_id=entity["area"].lower() if entity["area"] else None,
            exposed=entity["exposed"],
            original_device_class=attributes.get("device_class"),
        )
    return standin


# What differs between two HAs' repr of the same MatchFailedError, whoever made it: when
# an area entry was made, where a cached object lives, whether its JSON was cached yet.
UNCOMPARABLE = [
    (re.compile(r"datetime\.datetime\([^)]*\)"), "datetime(...)"),
    (re.compile(r"_cache=\{[^}]*\}"), "_cache=..."),
]


async def post_intent(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """One raw `POST /api/intent/handle`: the status, and the answer's JSON (or text), its
    uncomparable parts blanked."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/intent/handle", json=body, headers=headers) as response,
    ):
        text = await response.text()
    for pattern, blank in UNCOMPARABLE:
        text = pattern.sub(blank, text)
    with contextlib.suppress(ValueError):
        return response.status, json.loads(text)
    return response.status, text


async def test_the_standin_answers_intents_as_real_ha_does(rig: ApiRig) -> None:
    """Each probe's answer, raw, from real HA and from tests/ha_standin.py of the same
    release (the body our client sends that release: 2026.4+ also names the language and
    the assistant), each on a fresh home: the stand-in the other home tests trust."""
    rich = at_least(rig.spec, "2026.4")
    standin = await furnished_standin(rig)
    differ: list[Any] = []
    try:
        for name, data in PROBES:
            body: dict[str, Any] = {"name": name, "data": data}
            if rich:
                body.update(language="en", assistant="conversation")
            await rig.fresh_home()
            for entity_id, state in INITIAL.items():
                await standin.set_state(entity_id, state)
            real = await post_intent(rig.home.api_url, rig.home.token, body)
            stood = await post_intent(standin.url, rig.home.token, body)
            if real != stood:
                differ.append({"body": body, "real": real, "standin": stood})
    finally:
        await standin.stop()
    print(f"{rig.spec.label}: {json.dumps(differ)}")  # shown with -s, or on failure
    assert differ == [], json.dumps(differ, indent=1)


# -- a refused token; the token kept out of the logs -------------------------------------


async def test_a_refused_token_is_one_warning_and_the_server_still_answers(
    rig: ApiRig, refused: ServerProcess
) -> None:
    rig.sim.scenario = Scenario()
    reply = await HomeAssistant(refused.uri, version=(2025, 12)).ask("Turn on the kitchen light.")
    # Without the home: the user's words go to HA as they are, for HA to match.
    assert [(i.name, {e.name: e.value for e in i.entities}) for i in reply.intents] == [
        ("HassTurnOn", {"name": "kitchen light"})
    ], reply.events
    log, about = refused.log(), token_lines(refused)
    assert len(about) == 1 and about[0].startswith("WARNING"), log
    assert "refused the access token" in about[0] and "homeassistant.token" in about[0], about
    assert "Traceback" not in log and "following Home Assistant" not in log, log


async def test_a_token_of_a_user_who_is_not_an_administrator_is_one_warning(
    rig: ApiRig, not_admin: ServerProcess
) -> None:
    """HA takes the token but refuses the exposure list (require_admin): said as such."""
    log, about = not_admin.log(), token_lines(not_admin)
    assert len(about) == 1 and about[0].startswith("WARNING"), log
    assert "not an administrator" in about[0], about
    assert "refused the access token" not in about[0], about
    assert "Traceback" not in log and "following Home Assistant" not in log, log


async def test_the_tokens_are_never_in_our_logs(
    rig: ApiRig, refused: ServerProcess, not_admin: ServerProcess
) -> None:
    for server in (rig.server, refused, not_admin):
        log = server.log()
        for token in (rig.home.token, rig.home.user_token):
            assert token[:-6] not in log  # nor the refused one, nor most of either


# -- HA's changes, followed (last: it exposes the garage light for a while) --------------


async def test_exposing_an_entity_in_ha_is_followed_at_once(rig: ApiRig) -> None:
    """HA fires entity_registry_updated when an entity's exposure changes (its options):
    our server reads the lists again, and the garage light is the user's to switch; once
    unexposed again, it is not."""

    async def garage_light(sent: bool) -> Seen:
        """Asked until our server sends (or no longer sends) the command, for a few
        seconds: HA's change reaches it as an event, then a reload of the lists."""
        deadline = time.monotonic() + FOLLOW_SECONDS / 6
        while True:
            seen = await rig.type("Turn on the garage light.", Scenario())
            if bool(intents_answered(seen)) is sent or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(0.2)

    await rig.home.ha.call("expose", entity_id=GARAGE_LIGHT, exposed=True)
    try:
        exposed = await garage_light(sent=True)
    finally:
        await rig.home.ha.call("expose", entity_id=GARAGE_LIGHT, exposed=False)
    assert exposed.changed() == {GARAGE_LIGHT: "on"}, (str(exposed), rig.context())
    assert intents_answered(exposed) == [{"name": "HassTurnOn", "slots": {"name": "Garage light"}}]
    hidden = await garage_light(sent=False)
    assert hidden.changed() == {} and intents_answered(hidden) == [], str(hidden)
