"""Real Home Assistant core, booted headless and driven by JSON lines: run by HA's own Python.

This file runs inside a Home Assistant environment (a venv, or a Debian chroot for
Python 3.14), never in the test process: it imports only the standard library and
`homeassistant`, and nothing of this project. It is the stand-in for a person at HA's UI:

    python ha_driver.py requirements             # what the integrations below need (JSON)
    python ha_driver.py serve WORKDIR            # boot HA; commands on stdin, answers on stdout

`serve` reads WORKDIR/driver.json ({"http_port": N, "wyoming": [[host, port], ...],
"agent_title", and optional "stt_title", "tts_title" and "home"}), makes
WORKDIR/config a fresh configuration, boots HA core in-process (loopback only, no frontend,
no default integrations: nothing that reaches out), adds each Wyoming service through the
integration's real config flow, points the preferred Assist pipeline at them, then prints
one JSON line {"ready": ...}. Each later stdin line is a command, {"id", "cmd", ...}; each
answer is one line {"id", "ok", "result" | "error"}. Commands: `entities`, `pipeline` (a WAV
through stt → intent → tts), `pipeline_text` (typed text from the intent stage on, as the
Assist dialog runs it), `converse` (a typed turn straight to an agent), `state` and
`set_state` (of an entity), `stop`; and with a home (below) `home` (its entities' states
and attributes, the service calls they got, the timers HA started), `home_reset` and
`expose`. `pipeline`, `pipeline_text` and `converse` take `device_id` (or `from_device`:
the driver's device) and `satellite_id`, where the release takes them.

With "home" in driver.json the driver also sets up a HOME: real light, lock and cover
entities (`HomeLight`, `HomeLock`, `HomeCover`: a small custom integration, `ha_driver_home`,
written into the config's custom_components, whose entities are defined in this file) in
areas, exposed to Assist or not (`HOME`), and the driver's device becomes a satellite-like
device in the Kitchen that HA's timers ring on (`intent.async_register_timer_handler`).
HA's REST and WebSocket APIs are then on, and long-lived access tokens for them are in the
ready line ("api": {"http_port", "token" (an administrator's), "user_token" (a user's who
is not one)}: for the test, never logged).

HA's APIs differ between releases: only those present in 2025.4, 2025.12 and 2026.11 are
used (`assist_pipeline.async_pipeline_from_audio_stream`, `PipelineInput`/`PipelineRun`,
`async_update_pipeline`, `conversation.async_converse`, the config-entry flow manager,
`discovery.async_load_platform`); an argument a release lacks (2025.4's pipeline has no
`satellite_id`) is left out, and the run's result lists it under "ignored".
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import io
import json
import os
import sys
import threading
import time
import traceback
import wave
from pathlib import Path
from typing import Any

# Set up from configuration.yaml; their dependencies come along (http, stt, tts, ...).
CONFIGURED = ["assist_pipeline", "conversation", "intent", "input_boolean", "wyoming"]
API_DOMAINS = ["api", "config", "websocket_api"]  # with a home: what an API client reads
LANGUAGE = "en"
CHUNK_SECONDS = 0.02  # what the "microphone" hands HA at a time (HA cuts it to 10 ms)
RUN_TIMEOUT = 60.0  # one pipeline run or typed turn, at most

# The home: each entity's platform, name (its entity id follows from it), area, whether it
# is exposed to Assist, and what else its platform needs.
HOME_DOMAIN = "ha_driver_home"
HOME: list[dict[str, Any]] = [
    {"domain": "light", "name": "Kitchen light", "area": "Kitchen", "exposed": True},
    {"domain": "light", "name": "Bedroom light", "area": "Bedroom", "exposed": True},
    {"domain": "light", "name": "Garage light", "area": "Garage", "exposed": False},
    {"domain": "lock", "name": "Front door", "area": "Hallway", "exposed": True},
    {
        "domain": "cover",
        "name": "Garage door",
        "area": "Garage",
        "exposed": True,
        "device_class": "garage",
    },
]
SATELLITE_AREA = "Kitchen"  # where the driver's device stands, in a home
# A home's API users (an administrator, and a user who is not one) and their tokens' client.
TOKEN_USERS = {True: "wyoming tests", False: "wyoming tests (not admin)"}
TOKEN_CLIENT = "wyoming-realtime-text tests"


def component_dir(domain: str) -> Path:
    import homeassistant.components

    return Path(homeassistant.components.__file__).parent / domain


def requirements() -> dict[str, Any]:
    """The pip requirements of CONFIGURED and everything they depend on, from the manifests.

    HA itself would pip-install these at first start; here they are installed once, when
    the environment is built, and HA is booted with skip_pip.
    """
    import homeassistant

    seen: set[str] = set()
    todo = ["homeassistant", "http", *CONFIGURED, *API_DOMAINS]
    found: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen or not (component_dir(domain) / "manifest.json").exists():
            continue
        seen.add(domain)
        manifest = json.loads((component_dir(domain) / "manifest.json").read_text())
        found.update(manifest.get("requirements", []))
        todo.extend(manifest.get("dependencies", []))
        todo.extend(manifest.get("after_dependencies", []))
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    return {
        "requirements": sorted(found),
        "constraints": str(constraints) if constraints.exists() else None,
        "integrations": sorted(seen),
    }


def configuration_yaml(http_port: int, home: bool = False) -> str:
    """Loopback only; one entity HA's own intents can switch ("turn on the kitchen light").

    With a home, its lights take that entity's place (HA would not know which "Kitchen
    light" is meant), and HA's own APIs are on for a client with a token (`API_DOMAINS`:
    the REST API with `/api/intent/handle`, the WebSocket API, and `config`, whose
    registry lists `config/*_registry/list` are; a default install has all three).
    """
    switch = "" if home else "input_boolean:\n  kitchen_light:\n    name: Kitchen light\n"
    apis = "".join(f"{domain}:\n" for domain in API_DOMAINS) if home else ""
    return f"""\
homeassistant:
  name: Wyoming test home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: US
  language: {LANGUAGE}
  internal_url: http://127.0.0.1:{http_port}
http:
  server_host: 127.0.0.1
  server_port: {http_port}
assist_pipeline:
conversation:
intent:
{apis}{switch}logger:
  default: warning
  logs:
    homeassistant.components.wyoming: debug
    homeassistant.components.assist_pipeline: debug
    homeassistant.components.conversation: debug
    homeassistant.components.intent: debug
"""


# -- the home: a custom integration whose entities live here -----------------------------

HOME_MANIFEST = {
    "domain": HOME_DOMAIN,
    "name": "The driver's home",
    "version": "1.0.0",
    "requirements": [],
    "dependencies": [],
    "codeowners": [],
    "iot_class": "local_push",
}
HOME_INIT = '''"""The driver's home (written by ha_driver.py, where its entities are defined)."""


async def async_setup(hass, config):
    return True
'''
HOME_PLATFORM = '''"""Written by ha_driver.py, where the home's {domain} entities are defined."""

from ha_driver import home_platform

async_setup_platform = home_platform("{domain}")
'''


def write_home_integration(config_dir: Path) -> None:
    """custom_components/ha_driver_home: a manifest, and platforms that defer to this file.

    Written before HA boots: HA lists the custom integrations once, at the first lookup.
    """
    folder = config_dir / "custom_components" / HOME_DOMAIN
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(HOME_MANIFEST, indent=2))
    (folder / "__init__.py").write_text(HOME_INIT)
    for domain in sorted({item["domain"] for item in HOME}):
        (folder / f"{domain}.py").write_text(HOME_PLATFORM.format(domain=domain))


@dataclasses.dataclass
class Home:
    """The home's entities (by entity id), the service calls they got, the timer events."""

    items: list[dict[str, Any]]
    entities: dict[str, Any] = dataclasses.field(default_factory=dict)
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    timers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def since(self) -> float:
        return round(time.monotonic() - self.started, 3)


def home_platform(domain: str) -> Any:
    """The `async_setup_platform` of the home's ``domain`` (loaded by async_load_platform)."""

    async def async_setup_platform(
        hass: Any, config: Any, async_add_entities: Any, discovery_info: Any = None
    ) -> None:
        home: Home = hass.data[HOME_DOMAIN]
        kind = home_entity_classes()[domain]
        items = (discovery_info or {}).get("entities", [])
        async_add_entities([kind(home, item) for item in items])

    return async_setup_platform


@functools.cache
def home_entity_classes() -> dict[str, type]:
    """Real entities of HA's light, lock and cover platforms, keeping what is done to them.

    Each service call is recorded (`Home.calls`) before it changes the state; `home_reset`
    puts every entity back as it started (lights off, the door locked, the garage closed).
    """
    from homeassistant.components.cover import CoverDeviceClass, CoverEntity, CoverEntityFeature
    from homeassistant.components.light import ATTR_BRIGHTNESS, ColorMode, LightEntity
    from homeassistant.components.lock import LockEntity

    class HomeEntity:
        _attr_should_poll = False

        def __init__(self, home: Home, item: dict[str, Any]) -> None:
            super().__init__()
            self.home = home
            self.home_item = item
            self._attr_name = item["name"]
            self._attr_unique_id = f"{HOME_DOMAIN}_{item['name'].lower().replace(' ', '_')}"
            self.home_initial()

        def home_initial(self) -> None:
            raise NotImplementedError

        async def async_added_to_hass(self) -> None:
            await super().async_added_to_hass()  # type: ignore[misc]
            self.home.entities[self.entity_id] = self  # type: ignore[attr-defined]

        def home_record(self, service: str, data: dict[str, Any]) -> None:
            entity_id = getattr(self, "entity_id", None)
            call = {"entity_id": entity_id, "service": service, "data": _jsonable(data)}
            self.home.calls.append({**call, "t": self.home.since()})

        def home_changed(self) -> None:
            self.async_write_ha_state()  # type: ignore[attr-defined]

        def home_reset(self) -> None:
            self.home_initial()
            self.home_changed()

    class HomeLight(HomeEntity, LightEntity):
        _attr_color_mode = ColorMode.BRIGHTNESS

        def home_initial(self) -> None:
            self._attr_supported_color_modes = {ColorMode.BRIGHTNESS}
            self._attr_is_on = False
            self._attr_brightness = None

        async def async_turn_on(self, **kwargs: Any) -> None:
            self.home_record("turn_on", kwargs)
            self._attr_is_on = True
            self._attr_brightness = kwargs.get(ATTR_BRIGHTNESS) or self._attr_brightness or 255
            self.home_changed()

        async def async_turn_off(self, **kwargs: Any) -> None:
            self.home_record("turn_off", kwargs)
            self._attr_is_on = False
            self.home_changed()

    class HomeLock(HomeEntity, LockEntity):
        def home_initial(self) -> None:
            self._attr_is_locked = True

        async def async_lock(self, **kwargs: Any) -> None:
            self.home_record("lock", kwargs)
            self._attr_is_locked = True
            self.home_changed()

        async def async_unlock(self, **kwargs: Any) -> None:
            self.home_record("unlock", kwargs)
            self._attr_is_locked = False
            self.home_changed()

    class HomeCover(HomeEntity, CoverEntity):
        _attr_supported_features = CoverEntityFeature.OPEN | CoverEntityFeature.CLOSE

        def home_initial(self) -> None:
            if device_class := self.home_item.get("device_class"):
                self._attr_device_class = CoverDeviceClass(device_class)
            self._attr_is_closed = True

        async def async_open_cover(self, **kwargs: Any) -> None:
            self.home_record("open_cover", kwargs)
            self._attr_is_closed = False
            self.home_changed()

        async def async_close_cover(self, **kwargs: Any) -> None:
            self.home_record("close_cover", kwargs)
            self._attr_is_closed = True
            self.home_changed()

    return {"light": HomeLight, "lock": HomeLock, "cover": HomeCover}


class Driver:
    """Home Assistant as a person sets it up and uses it, one command at a time."""

    def __init__(self, hass: Any, workdir: Path, http_port: int) -> None:
        self.hass = hass
        self.workdir = workdir
        self.http_port = http_port
        self.entries: list[dict[str, Any]] = []
        self.pipeline_id: str | None = None
        self.device_id: str | None = None
        self.home: Home | None = None

    # -- setup -------------------------------------------------------------------------

    async def add_wyoming(self, host: str, port: int) -> dict[str, Any]:
        """Settings → Add integration → Wyoming Protocol, host and port typed in."""
        flow = self.hass.config_entries.flow
        result = await flow.async_init("wyoming", context={"source": "user"})
        if result.get("type") != "form":
            raise RuntimeError(f"wyoming flow did not show its form: {result}")
        result = await flow.async_configure(result["flow_id"], {"host": host, "port": port})
        if result.get("type") != "create_entry":
            raise RuntimeError(f"wyoming flow for {host}:{port} ended with {result}")
        entry = result["result"]
        await self.hass.async_block_till_done()
        return {"entry_id": entry.entry_id, "title": entry.title, "state": str(entry.state)}

    def wyoming_entities(self) -> list[dict[str, Any]]:
        """The entities the Wyoming entries made, with the languages HA offers for them."""
        from homeassistant.components import conversation, stt, tts
        from homeassistant.helpers import entity_registry as er

        registry = er.async_get(self.hass)
        found: list[dict[str, Any]] = []
        for entry in self.entries:
            for item in er.async_entries_for_config_entry(registry, entry["entry_id"]):
                domain, eid = item.domain, item.entity_id
                languages: Any = None
                if domain == "stt":
                    entity = stt.async_get_speech_to_text_entity(self.hass, eid)
                    languages = entity.supported_languages if entity else None
                elif domain == "conversation":
                    languages = conversation.async_get_conversation_languages(self.hass, eid)
                elif domain == "tts":
                    engine = tts.get_engine_instance(self.hass, eid)
                    languages = engine.supported_languages if engine else None
                if isinstance(languages, set | frozenset | tuple):
                    languages = sorted(languages)
                state = self.hass.states.get(eid)
                found.append(
                    {
                        "entry_id": entry["entry_id"],
                        "entry_title": entry["title"],
                        "entity_id": eid,
                        "domain": domain,
                        "languages": languages,
                        "state": state.state if state else None,
                        # A conversation agent's CONTROL feature is 1 (Wyoming: home control).
                        "supported_features": (
                            state.attributes.get("supported_features") if state else None
                        ),
                    }
                )
        return found

    def engine_or_none(self, domain: str, title_part: str | None) -> str | None:
        if title_part is None:
            return None
        try:
            return self.engine(domain, title_part)
        except RuntimeError:
            return None

    def engine(self, domain: str, title_part: str) -> str:
        for entity in self.wyoming_entities():
            if entity["domain"] == domain and title_part in entity["entry_title"]:
                return entity["entity_id"]
        raise RuntimeError(f"no {domain} entity from a Wyoming entry titled *{title_part}*")

    async def make_pipeline(
        self, agent_title: str, tts_title: str | None, stt_title: str | None = None
    ) -> None:
        """Settings → Voice assistants: our STT and agent, the other entry's TTS.

        The STT is the agent's entry's unless ``stt_title`` names another; an entry without
        one (or no TTS title) leaves that stage empty: such a pipeline starts at the intent
        stage (`pipeline_text`) or ends there (``end_stage``).
        """
        from homeassistant.components import assist_pipeline

        pipeline = assist_pipeline.async_get_pipeline(self.hass)
        self.pipeline_id = pipeline.id
        await self.update_pipeline(
            conversation_engine=self.engine("conversation", agent_title),
            conversation_language=LANGUAGE,
            language=LANGUAGE,
            stt_engine=self.engine_or_none("stt", stt_title or agent_title),
            stt_language=LANGUAGE,
            tts_engine=self.engine_or_none("tts", tts_title),
            tts_language=LANGUAGE,
            tts_voice=None,
            prefer_local_intents=False,
        )

    async def update_pipeline(self, **changes: Any) -> dict[str, Any]:
        from homeassistant.components import assist_pipeline

        pipeline = assist_pipeline.async_get_pipeline(self.hass, self.pipeline_id)
        await assist_pipeline.async_update_pipeline(self.hass, pipeline, **changes)
        return assist_pipeline.async_get_pipeline(self.hass, self.pipeline_id).to_json()

    def add_device(self, entry_id: str, name: str) -> str:
        """A device for spoken requests to come from, as a satellite's would (its id is sent)."""
        from homeassistant.helpers import device_registry as dr

        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=entry_id, identifiers={("ha_driver", name)}, name=name
        )
        self.device_id = device.id
        return device.id

    def expose(self, entity_id: str, exposed: bool = True) -> None:
        """Expose to Assist (HA 2026 matches only exposed entities; 2025 ignores it)."""
        from homeassistant.components.homeassistant import exposed_entities

        exposed_entities.async_expose_entity(self.hass, "conversation", entity_id, exposed)

    def exposed(self, entity_id: str) -> bool:
        from homeassistant.components.homeassistant import exposed_entities

        return exposed_entities.async_should_expose(self.hass, "conversation", entity_id)

    # -- the home ----------------------------------------------------------------------

    async def setup_home(self, items: list[dict[str, Any]]) -> None:
        """The home's entities, each in its area and exposed or not, as a person sets it up."""
        from homeassistant.helpers import area_registry as ar
        from homeassistant.helpers import entity_registry as er
        from homeassistant.helpers.discovery import async_load_platform

        self.home = Home(items)
        self.hass.data[HOME_DOMAIN] = self.home
        for domain in sorted({item["domain"] for item in items}):
            mine = [item for item in items if item["domain"] == domain]
            await async_load_platform(self.hass, domain, HOME_DOMAIN, {"entities": mine}, {})
        await self.hass.async_block_till_done()
        made = {entity.home_item["name"] for entity in self.home.entities.values()}
        if missing := {item["name"] for item in items} - made:
            raise RuntimeError(f"the home's platforms did not make {sorted(missing)}")
        areas, registry = ar.async_get(self.hass), er.async_get(self.hass)
        for entity_id, entity in self.home.entities.items():
            area = areas.async_get_or_create(entity.home_item["area"])
            registry.async_update_entity(entity_id, area_id=area.id)
            self.expose(entity_id, entity.home_item["exposed"])

    def make_satellite(self, device_id: str) -> None:
        """The device as a satellite in SATELLITE_AREA whose timers ring here (and are told)."""
        from homeassistant.components import intent as intent_component
        from homeassistant.helpers import area_registry as ar
        from homeassistant.helpers import device_registry as dr

        assert self.home is not None
        area = ar.async_get(self.hass).async_get_or_create(SATELLITE_AREA)
        dr.async_get(self.hass).async_update_device(device_id, area_id=area.id)
        home = self.home

        def on_timer(event_type: Any, timer: Any) -> None:
            home.timers.append(
                {
                    "event": str(event_type),
                    "id": getattr(timer, "id", None),
                    "name": getattr(timer, "name", None),
                    "seconds": getattr(timer, "seconds", None),
                    "device_id": getattr(timer, "device_id", None),
                    "t": home.since(),
                }
            )

        intent_component.async_register_timer_handler(self.hass, device_id, on_timer)

    async def make_token(self, admin: bool = True) -> str:
        """A user's long-lived access token, as a person makes one (profile → Security):
        what a client of HA's APIs is configured with. An administrator's by default: HA
        lists the entities exposed to Assist only to one. For the test only, never logged."""
        from datetime import timedelta

        from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN

        auth = self.hass.auth
        group = "system-admin" if admin else "system-users"
        user = await auth.async_create_user(TOKEN_USERS[admin], group_ids=[group])
        refresh = await auth.async_create_refresh_token(
            user,
            client_name=TOKEN_CLIENT,
            token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
            access_token_expiration=timedelta(days=1),
        )
        return auth.async_create_access_token(refresh)

    def home_snapshot(self) -> dict[str, Any]:
        """Each entity's state, attributes, area and exposure; the calls; the timer events."""
        from homeassistant.helpers import area_registry as ar
        from homeassistant.helpers import device_registry as dr
        from homeassistant.helpers import entity_registry as er

        if self.home is None:
            raise RuntimeError('no home: start the driver with "home" in driver.json')
        areas, registry = ar.async_get(self.hass), er.async_get(self.hass)

        def area_name(area_id: str | None) -> str | None:
            area = areas.async_get_area(area_id) if area_id else None
            return area.name if area else None

        entities = {}
        for entity_id in self.home.entities:
            state = self.hass.states.get(entity_id)
            entry = registry.async_get(entity_id)
            entities[entity_id] = {
                "name": state.name if state else None,
                "state": state.state if state else None,
                "attributes": _jsonable(dict(state.attributes)) if state else None,
                "area": area_name(entry.area_id if entry else None),
                "exposed": self.exposed(entity_id),
            }
        device = dr.async_get(self.hass).async_get(self.device_id) if self.device_id else None
        return {
            "entities": entities,
            "calls": list(self.home.calls),
            "timers": list(self.home.timers),
            "satellite": {
                "device_id": self.device_id,
                "area": area_name(device.area_id if device else None),
            },
        }

    async def home_reset(self) -> dict[str, Any]:
        """Every entity as it started, the call and timer logs emptied: the next probe's home."""
        assert self.home is not None
        for entity in self.home.entities.values():
            entity.home_reset()
        await self.hass.async_block_till_done()
        self.home.calls.clear()
        self.home.timers.clear()
        return self.home_snapshot()

    def device_for(self, command: dict[str, Any]) -> str | None:
        """The device a request comes from: ``device_id``, or the driver's (``from_device``)."""
        if command.get("device_id"):
            return command["device_id"]
        return self.device_id if command.get("from_device") else None

    # -- commands ----------------------------------------------------------------------

    async def run(self, command: dict[str, Any]) -> Any:
        name = command["cmd"]
        if name == "entities":
            return self.wyoming_entities()
        if name == "pipeline":
            return await asyncio.wait_for(self.pipeline(command), RUN_TIMEOUT)
        if name == "pipeline_text":
            return await asyncio.wait_for(self.pipeline_text(command), RUN_TIMEOUT)
        if name == "converse":
            return await asyncio.wait_for(self.converse(command), RUN_TIMEOUT)
        if name == "home":
            return self.home_snapshot()
        if name == "home_reset":
            return await self.home_reset()
        if name == "expose":
            self.expose(command["entity_id"], bool(command.get("exposed", True)))
            return self.exposed(command["entity_id"])
        if name == "state":
            state = self.hass.states.get(command["entity_id"])
            return state.state if state else None
        if name == "set_state":
            domain = command["entity_id"].split(".")[0]
            service = {
                "lock": ("lock", "unlock"),
                "cover": ("open_cover", "close_cover"),
            }.get(domain, ("turn_on", "turn_off"))[0 if command["on"] else 1]
            await self.hass.services.async_call(
                domain, service, {"entity_id": command["entity_id"]}, blocking=True
            )
            return None
        raise ValueError(f"unknown command {name!r}")

    async def pipeline(self, command: dict[str, Any]) -> dict[str, Any]:
        """A WAV spoken to the Assist pipeline (stt → intent → tts), as a satellite streams it.

        The audio goes at the pace it was "recorded", then silence until HA's VAD ends the
        speech and HA stops reading; the events come back with their times since the start.
        """
        from homeassistant.components import assist_pipeline, stt
        from homeassistant.core import Context

        await self.update_pipeline(prefer_local_intents=bool(command.get("prefer_local")))
        speech = await self.hass.async_add_executor_job(read_wav, self.workdir / command["wav"])
        rate, width = 16000, 2
        step = int(rate * CHUNK_SECONDS) * width
        lead = bytes(int(rate * command.get("lead_seconds", 0.3)) * width)
        tail = bytes(int(rate * command.get("tail_seconds", 4.0)) * width)
        audio = lead + speech + tail
        started = time.monotonic()
        events: list[dict[str, Any]] = []
        sent = {"bytes": 0}

        async def microphone() -> Any:
            for offset in range(0, len(audio), step):
                due = started + offset / (rate * width)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                chunk = audio[offset : offset + step]
                sent["bytes"] += len(chunk)
                yield chunk

        def on_event(event: Any) -> None:
            events.append(
                {
                    "type": str(event.type),
                    "data": _jsonable(event.data),
                    "t": round(time.monotonic() - started, 3),
                }
            )

        metadata = stt.SpeechMetadata(
            language=LANGUAGE,
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
            channel=stt.AudioChannels.CHANNEL_MONO,
        )
        optional, ignored = supported(
            assist_pipeline.async_pipeline_from_audio_stream,
            satellite_id=command.get("satellite_id"),
        )
        await assist_pipeline.async_pipeline_from_audio_stream(
            self.hass,
            context=Context(),
            event_callback=on_event,
            stt_metadata=metadata,
            stt_stream=microphone(),
            pipeline_id=self.pipeline_id,
            conversation_id=command.get("conversation_id"),
            device_id=self.device_for(command),
            end_stage=assist_pipeline.PipelineStage(command.get("end_stage", "tts")),
            # WAV as the TTS makes it: no conversion, so no ffmpeg (not installed here).
            tts_audio_output={"preferred_format": "wav"},
            **optional,
        )
        result: dict[str, Any] = {
            "events": events,
            "ignored": ignored,
            **intent_summary(events),
            "speech_end": round((len(lead) + len(speech)) / (rate * width), 3),
            "audio_seconds": round(len(audio) / (rate * width), 3),
            "audio_sent_seconds": round(sent["bytes"] / (rate * width), 3),
            "elapsed": round(time.monotonic() - started, 3),
        }
        tts_end = next((e for e in events if e["type"] == "tts-end"), None)
        if tts_end is not None:
            result["tts_audio"] = await self.fetch_tts(tts_end["data"]["tts_output"])
        return result

    async def fetch_tts(self, output: dict[str, Any]) -> dict[str, Any]:
        """The spoken answer, fetched from HA's URL as a satellite or browser would."""
        import aiohttp

        url = output["url"]
        if url.startswith("/"):
            url = f"http://127.0.0.1:{self.http_port}{url}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.read()
            fetched: dict[str, Any] = {
                "status": response.status,
                "content_type": response.headers.get("Content-Type"),
                "bytes": len(body),
            }
        if body[:4] == b"RIFF" and b"data" in body[:200]:
            with wave.open(io.BytesIO(body), "rb") as wav:
                frame = wav.getsampwidth() * wav.getnchannels()
                fetched["wav"] = {
                    "rate": wav.getframerate(),
                    "width": wav.getsampwidth(),
                    "channels": wav.getnchannels(),
                    # A streamed WAV's header says 0 frames: count what came after it.
                    "frames": (len(body) - body.index(b"data") - 8) // frame,
                }
        return fetched

    async def pipeline_text(self, command: dict[str, Any]) -> dict[str, Any]:
        """Typed text through the pipeline from its intent stage, as the Assist dialog (HA's
        `assist_pipeline/run` with start_stage "intent") or a satellite's follow-up runs it:
        with the device and satellite it comes from, to ``end_stage`` ("intent" or "tts").
        """
        from homeassistant.components import assist_pipeline
        from homeassistant.core import Context
        from homeassistant.helpers import chat_session

        await self.update_pipeline(prefer_local_intents=bool(command.get("prefer_local")))
        started = time.monotonic()
        events: list[dict[str, Any]] = []

        def on_event(event: Any) -> None:
            events.append(
                {
                    "type": str(event.type),
                    "data": _jsonable(event.data),
                    "t": round(time.monotonic() - started, 3),
                }
            )

        stage = assist_pipeline.PipelineStage
        run = assist_pipeline.PipelineRun(
            self.hass,
            context=Context(),
            pipeline=assist_pipeline.async_get_pipeline(self.hass, self.pipeline_id),
            start_stage=stage.INTENT,
            end_stage=stage(command.get("end_stage", "intent")),
            event_callback=on_event,
            tts_audio_output={"preferred_format": "wav"},
        )
        # 2026: "the intent stage checks the owner with the input of the user".
        session_parameters = inspect.signature(chat_session.async_get_chat_session).parameters
        session_args = {"context": None} if "context" in session_parameters else {}
        fields = {f.name for f in dataclasses.fields(assist_pipeline.PipelineInput)}
        extra = {"satellite_id": command.get("satellite_id")}
        ignored = [k for k, v in extra.items() if v is not None and k not in fields]
        with chat_session.async_get_chat_session(
            self.hass, command.get("conversation_id"), **session_args
        ) as session:
            pipeline_input = assist_pipeline.PipelineInput(
                run=run,
                session=session,
                intent_input=command["text"],
                device_id=self.device_for(command),
                **{k: v for k, v in extra.items() if k in fields},
            )
            await pipeline_input.validate()
            await pipeline_input.execute()
        return {
            "events": events,
            "ignored": ignored,
            "elapsed": round(time.monotonic() - started, 3),
            **intent_summary(events),
        }

    async def converse(self, command: dict[str, Any]) -> dict[str, Any]:
        """A typed turn, as the Assist dialog's text box hands it to the agent."""
        from homeassistant.components import conversation
        from homeassistant.core import Context

        agent = command.get("agent") or self.engine("conversation", command["agent_title"])
        optional, ignored = supported(
            conversation.async_converse,
            device_id=self.device_for(command),
            satellite_id=command.get("satellite_id"),
        )
        started = time.monotonic()
        result = await conversation.async_converse(
            self.hass,
            command["text"],
            command.get("conversation_id"),
            Context(),
            language=LANGUAGE,
            agent_id=agent,
            **optional,
        )
        response = result.response
        error = response.error_code if hasattr(response, "error_code") else None
        return {
            "speech": (response.speech.get("plain") or {}).get("speech"),
            "response_type": getattr(response.response_type, "value", response.response_type),
            "error_code": getattr(error, "value", error),
            "conversation_id": result.conversation_id,
            "agent": agent,
            "ignored": ignored,
            "elapsed": round(time.monotonic() - started, 3),
        }


def intent_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer in a run's intent-end: speech, response_type, error_code, conversation_id."""
    end = next((e for e in events if e["type"] == "intent-end"), None)
    if end is None:
        return {}
    output = end["data"]["intent_output"]
    response = output.get("response") or {}
    return {
        "speech": ((response.get("speech") or {}).get("plain") or {}).get("speech"),
        "response_type": response.get("response_type"),
        "error_code": (response.get("data") or {}).get("code"),
        "conversation_id": output.get("conversation_id"),
    }


def supported(function: Any, **arguments: Any) -> tuple[dict[str, Any], list[str]]:
    """The ``arguments`` that ``function`` takes in this release (None ones left out), and
    the names of those it does not take."""
    parameters = inspect.signature(function).parameters
    given = {name: value for name, value in arguments.items() if value is not None}
    taken = {name: value for name, value in given.items() if name in parameters}
    return taken, sorted(set(given) - set(taken))


def read_wav(path: Path) -> bytes:
    """The PCM of a 16 kHz 16-bit mono WAV: the format HA's pipeline takes from a satellite."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
        if shape != (16000, 2, 1):
            raise ValueError(f"{path.name}: {shape}, not 16000 Hz, 2 bytes, 1 channel")
        return wav.readframes(wav.getnframes())


def _jsonable(value: Any) -> Any:
    """Pipeline event data as JSON (HA puts enums, dataclasses and datetimes in it)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "to_json"):
        return value.to_json()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


class Commands:
    """stdin lines → an asyncio queue (a thread: stdin is a pipe; HA owns the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.loop = loop
        threading.Thread(target=self._read, daemon=True, name="driver-stdin").start()

    def _read(self) -> None:
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


async def serve(workdir: Path, out: Any) -> int:
    """Boot, set up, answer commands until `stop` (or stdin closes), shut HA down."""
    from homeassistant import bootstrap
    from homeassistant.const import __version__
    from homeassistant.runner import RuntimeConfig

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    settings = json.loads((workdir / "driver.json").read_text())
    config_dir = workdir / "config"
    home = settings.get("home")
    yaml = configuration_yaml(settings["http_port"], home=bool(home))
    (config_dir / "configuration.yaml").write_text(yaml)
    if home:
        write_home_integration(config_dir)
    # Headless: none of the integrations a default install sets up (frontend, cloud,
    # backup, analytics, ...) and so no reason for recovery mode when they are absent.
    bootstrap.DEFAULT_INTEGRATIONS = set()
    bootstrap.CRITICAL_INTEGRATIONS = set()
    started = time.monotonic()
    runtime = RuntimeConfig(
        config_dir=str(config_dir),
        skip_pip=True,
        log_file=str(workdir / "home-assistant.log"),
        log_no_color=True,
    )
    hass = await bootstrap.async_setup_hass(runtime)
    if hass is None:
        say({"ready": False, "error": "bootstrap.async_setup_hass returned None"})
        return 1
    commands = Commands(asyncio.get_running_loop())
    driver = Driver(hass, workdir, settings["http_port"])
    try:
        await hass.async_start()
        booted = time.monotonic() - started
        for host, port in settings["wyoming"]:
            driver.entries.append(await driver.add_wyoming(host, port))
        await driver.make_pipeline(
            settings["agent_title"], settings.get("tts_title"), settings.get("stt_title")
        )
        device_id = driver.add_device(driver.entries[-1]["entry_id"], "Kitchen speaker")
        api = None
        if home:
            await driver.setup_home(HOME if home is True else home)
            driver.make_satellite(device_id)
            api = {
                "http_port": driver.http_port,
                "token": await driver.make_token(),
                "user_token": await driver.make_token(admin=False),
            }
        else:
            driver.expose("input_boolean.kitchen_light")
        say(
            {
                "ready": True,
                "version": __version__,
                "python": sys.version.split()[0],
                "boot_seconds": round(booted, 3),
                "setup_seconds": round(time.monotonic() - started, 3),
                "entries": driver.entries,
                "device_id": device_id,
                "pipeline": await driver.update_pipeline(),
                "components": sorted(hass.config.components),
                "home": driver.home_snapshot() if home else None,
                # HA's APIs, with a home: where, and a token for them (to the test only).
                "api": api,
            }
        )
    except Exception:
        say({"ready": False, "error": traceback.format_exc()})
        await hass.async_stop()
        return 1
    while (line := await commands.queue.get()) is not None:
        command = json.loads(line)
        if command.get("cmd") == "stop":
            say({"id": command.get("id"), "ok": True, "result": None})
            break
        try:
            say({"id": command.get("id"), "ok": True, "result": await driver.run(command)})
        except Exception:
            say({"id": command.get("id"), "ok": False, "error": traceback.format_exc()})
    await hass.async_stop()
    return 0


def main() -> int:
    if sys.argv[1:2] == ["requirements"]:
        print(json.dumps(requirements()))
        return 0
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print(__doc__, file=sys.stderr)
        return 2
    # The command channel is a private copy of stdout; whatever HA prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    # The home's platforms (custom_components/ha_driver_home) import this file by name.
    sys.modules.setdefault("ha_driver", sys.modules[__name__])
    from homeassistant import runner

    workdir = Path(sys.argv[2])
    (workdir / "config").mkdir(exist_ok=True)

    async def setup_and_run(_: Any) -> int:
        return await serve(workdir, out)

    # HA's own runner makes the event loop and executor as `hass` does; only what runs in
    # it is ours.
    runner.setup_and_run_hass = setup_and_run
    return runner.run(runner.RuntimeConfig(config_dir=str(workdir / "config")))


if __name__ == "__main__":
    sys.exit(main())
