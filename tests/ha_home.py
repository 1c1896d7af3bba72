"""Real Home Assistant with a home in it, for any Wyoming agent: the rig of home-control tests.

`ha_driver.py` sets the home up when driver.json has "home" (see HOME there): lights in the
Kitchen, Bedroom and Garage (the garage light not exposed to Assist), the front door's lock,
the garage door (a cover of device_class garage), and the driver's device as a satellite in
the Kitchen whose timers HA rings. `home_assistant` boots one such HA with the given Wyoming
services added through the real config flow, the first one's agent (`agent_title`) in the
preferred pipeline; `HomeHa` reads and resets the home and speaks or types to HA, and
`changed` / `called` say what a request did to the home (against INITIAL). A home's HA has
its REST and WebSocket APIs on: `HomeHa.api_url`, and `HomeHa.token` (an administrator's
long-lived access token, made at boot; never to be logged; `user_token`: a user's who is
not an administrator).

For a test module: `spec` (one HA release per module run, RELEASES) and `env` (its cached
environment, built side by side with the others from the session's start) are fixtures to
import with the one they use
(`from ha_home import env, spec  # noqa: F401`); the module's own fixture boots
`home_assistant(env, tmp, [(host, port)], agent_title=...)` once, with whatever agent it
tests (a stand-in in test_real_ha_home.py; our server, behind a `WyomingTap`, in
test_real_ha_home_control.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import prebuild
import pytest
from harness import free_port
from real_ha import HaError, HaProcess
from real_ha_env import EnvError, EnvMissing, HaEnv, HaSpec, ha_env

RELEASES = [
    HaSpec("2026.11.0", "3.14", chroot=True),
    HaSpec("2025.12.5", "3.13.0"),
    HaSpec("2025.4.4", "3.13.0"),
]

# The home's entities (ha_driver.HOME), by entity id.
KITCHEN_LIGHT, BEDROOM_LIGHT = "light.kitchen_light", "light.bedroom_light"
GARAGE_LIGHT = "light.garage_light"  # not exposed to Assist
FRONT_DOOR, GARAGE_DOOR = "lock.front_door", "cover.garage_door"
HOME_ENTITIES = [KITCHEN_LIGHT, BEDROOM_LIGHT, GARAGE_LIGHT, FRONT_DOOR, GARAGE_DOOR]
SATELLITE_ID = "assist_satellite.kitchen_speaker"  # told to HA with the satellite's runs
INITIAL = {  # each entity's state at the start and after every `HomeHa.reset`
    KITCHEN_LIGHT: "off",
    BEDROOM_LIGHT: "off",
    GARAGE_LIGHT: "off",
    FRONT_DOOR: "locked",
    GARAGE_DOOR: "closed",
}


def changed(home: dict[str, Any]) -> dict[str, str | None]:
    """The entities of a `HomeHa.home()` snapshot whose state is not the initial one."""
    states = {eid: entity["state"] for eid, entity in home["entities"].items()}
    return {eid: state for eid, state in states.items() if state != INITIAL.get(eid)}


def called(home: dict[str, Any]) -> list[tuple[str, str]]:
    """The service calls the home's entities got since the last reset: (entity, service)."""
    return [(call["entity_id"], call["service"]) for call in home["calls"]]


def at_least(spec: HaSpec, release: str) -> bool:
    """``spec`` is HA ``release`` ("2025.7") or newer."""

    def parts(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in version.split(".")[:2])

    return parts(spec.version) >= parts(release)


class HomeAfter:
    """What a request did, read from the `HomeHa.home()` snapshot taken after it (`home`)."""

    home: dict[str, Any]

    def state(self, entity_id: str) -> str | None:
        return self.home["entities"][entity_id]["state"]

    def changed(self) -> dict[str, str | None]:
        return changed(self.home)

    def called(self) -> list[tuple[str, str]]:
        return called(self.home)

    def timers(self) -> list[tuple[str, int | None, str | None]]:
        return [(t["event"], t["seconds"], t["device_id"]) for t in self.home["timers"]]


# -- fixtures: the release and its environment -------------------------------------------


@pytest.fixture(scope="module", params=RELEASES, ids=lambda spec: f"ha{spec.version}")
def spec(request: pytest.FixtureRequest) -> HaSpec:
    return request.param


@pytest.fixture(scope="module")
def env(spec: HaSpec) -> HaEnv:
    """The release's environment (prebuild.py builds it from the session's start); a build
    that fails is a test failure, with pip's words."""
    try:
        return prebuild.result(spec.key, partial(ha_env, spec))
    except EnvMissing as missing:
        pytest.skip(f"{spec.label}: this machine lacks a prerequisite: {missing}")
    except EnvError as err:
        pytest.fail(f"cannot build {spec.label}: {err}", pytrace=False)


# -- HA with a home ----------------------------------------------------------------------


@dataclass
class HomeHa:
    """One HA with the home, and what a test does with it."""

    spec: HaSpec
    ha: HaProcess
    agent_title: str
    stopped_with: list[int | None] = field(default_factory=list)

    @property
    def ready(self) -> dict[str, Any]:
        return self.ha.ready

    @property
    def satellite(self) -> str:
        """The device id of the satellite in the Kitchen (its timers ring in HA)."""
        return self.ha.ready["device_id"]

    @property
    def api_url(self) -> str:
        """Where HA's REST and WebSocket APIs are (a home's HA has them on)."""
        return f"http://127.0.0.1:{self.ha.ready['api']['http_port']}"

    @property
    def token(self) -> str:
        """An administrator's long-lived access token for HA's APIs: never to be logged."""
        return self.ha.ready["api"]["token"]

    @property
    def user_token(self) -> str:
        """The long-lived access token of a user who is not an administrator."""
        return self.ha.ready["api"]["user_token"]

    async def home(self) -> dict[str, Any]:
        """{"entities": {entity_id: {name, state, attributes, area, exposed}}, "calls":
        [{entity_id, service, data, t}], "timers": [{event, id, name, seconds, device_id,
        t}], "satellite": {device_id, area}}"""
        return await self.ha.call("home")

    async def reset(self) -> dict[str, Any]:
        """Lights off, the door locked, the garage closed, no calls or timer events."""
        return await self.ha.call("home_reset")

    async def states(self) -> dict[str, str | None]:
        home = await self.home()
        return {eid: entity["state"] for eid, entity in home["entities"].items()}

    async def switch(self, entity_id: str, on: bool) -> None:
        """As a person at HA's UI (a service call: it is in the calls until the next reset)."""
        await self.ha.call("set_state", entity_id=entity_id, on=on)

    async def type(self, text: str, **options: Any) -> dict[str, Any]:
        """A typed turn straight to the agent (`conversation.async_converse`)."""
        return await self.ha.call("converse", text=text, agent_title=self.agent_title, **options)

    async def run_text(self, text: str, **options: Any) -> dict[str, Any]:
        """Text through the pipeline from its intent stage; ``from_device=True`` (or
        ``device_id``) and ``satellite_id`` say where it comes from."""
        return await self.ha.call("pipeline_text", text=text, **options)

    async def speak(self, wav: str, **options: Any) -> dict[str, Any]:
        """A WAV (a name among the files given to `home_assistant`) through the pipeline."""
        return await self.ha.call("pipeline", wav=wav, **options)


@contextlib.asynccontextmanager
async def home_assistant(
    spec: HaSpec,
    env: HaEnv,
    workdir: Path,
    agents: Sequence[tuple[str, int]],
    agent_title: str,
    *,
    tts_title: str | None = None,
    stt_title: str | None = None,
    files: Sequence[Path] = (),
) -> AsyncIterator[HomeHa]:
    """HA booted with the home, the Wyoming services at ``agents`` (host, port) added in that
    order through the config flow, the preferred pipeline's agent the one whose entry (its
    first program's name) is ``agent_title``; its STT that entry's (or ``stt_title``'s), if
    it has one; its TTS ``tts_title``'s, if given. HA is stopped at the end, and must have
    exited cleanly (after the body: a failing body is reported as itself)."""
    settings = {
        "http_port": free_port(),
        "wyoming": [[host, port] for host, port in agents],
        "agent_title": agent_title,
        "tts_title": tts_title,
        "stt_title": stt_title,
        "home": True,
    }
    ha = await HaProcess.start(env, workdir, settings, list(files))
    home = HomeHa(spec, ha, agent_title)
    try:
        yield home
    finally:
        home.stopped_with.append(await ha.stop())
    if home.stopped_with != [0]:
        raise HaError(f"{spec.label} exited {home.stopped_with[0]}\n{ha.log()}")
