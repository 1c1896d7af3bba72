"""A stand-in for Home Assistant's WebSocket and REST APIs, on loopback, for the home tests.

It follows HA's own code (read in HA 2025.12.5 and 2026.11.0), not the client's wishes:

- WebSocket `/api/websocket`: `auth_required {ha_version}` → `auth {access_token}` →
  `auth_ok {ha_version}` or `auth_invalid {message}` and close
  (components/websocket_api/auth.py). Commands need increasing ids; answers are
  `{id, type: "result", success, result}` or `success: false, error: {code, message}`
  (messages.py); events `{id, type: "event", event: {event_type, data, origin,
  time_fired, context}}`; unknown commands `unknown_command`; `ping` → `pong`.
- Lists with HA's field names: `get_states` (State.as_dict), `config/entity_registry/list`
  (RegistryEntry.as_partial_dict: no aliases) and `get_entries` (extended_dict: aliases,
  device_class), `config/device_registry/list` (DeviceEntry.dict_repr; 2026 adds
  `parent_device_id` and child devices), `config/area_registry/list`,
  `config/floor_registry/list`, `homeassistant/expose_entity/list` (admin only:
  `{exposed_entities: {entity_id: {assistant: true}}}`). In 2026 an entity's `aliases` is
  ordered and `null` stands for its computed name (COMPUTED_NAME), first by default.
- Registry changes fire `entity_registry_updated {action, entity_id, changes?}`,
  `area_registry_updated {action, area_id}`, `device_registry_updated`,
  `floor_registry_updated`; state changes `state_changed {entity_id, old_state, new_state}`.
- REST `POST /api/intent/handle` (components/intent/__init__.py IntentHandleView): a bad
  token is HTTP 401 `401: Unauthorized`; the body is validated (400
  `{"message": "Message format incorrect: ..."}`): up to 2026.3 only `name` and `data`, from
  2026.4 also `language`, `assistant`, `device_id`, `satellite_id`. An unknown intent or
  slots the handler rejects escape the view: HTTP 500 (so does a failed match before
  2025.10). HassTurnOn, HassTurnOff and HassLightSet match by name/area/floor/domain/
  device_class in the order of HA's `async_match_targets` and change the stand-in's states;
  HassGetState answers `query_answer`. As in HA, these handlers set NO speech (HA's default
  agent speaks from its response templates; the REST view has none): a success is
  `speech: {}` with the targets in `data.success`. A failure is, in 2025.10-2025.12, plain
  speech of `str(err)` (for a failed match the `<MatchFailedError ...>` repr, as
  `async_match_targets` fills it) with response_type `action_done`; in 2026.x
  response_type `error`, `data.code: failed_to_handle` and HA 2026's sentence. Exposure
  counts only where the request names an assistant (2026.4+), as in HA.

Tests change the home through the async methods below; each fires the event HA would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "standin-long-lived-token-3f9a1c"
COMPUTED_NAME = None  # how HA 2026 serializes its COMPUTED_NAME alias
RICH_INTENT_API = (2026, 4)
# HA PR #151726 (merged September 2025, so in 2025.10): the view answers a failed match;
# before, MatchFailedError escaped it as HTTP 500 (measured on 2025.4.4; issue #146194).
MATCH_FAILURES_HANDLED = (2025, 10)
ON_OFF = {"light", "switch", "fan", "input_boolean", "media_player", "climate"}
OPEN_CLOSE = {"cover": ("open", "closed"), "valve": ("open", "closed")}
INTENT_KEYS_2025 = {"name", "data"}
INTENT_KEYS_2026 = {"name", "data", "language", "assistant", "device_id", "satellite_id"}
MATCH_FAILURES_2026 = {
    "NAME": "No entities matched the name",
    "AREA": "No entities were in the area",
    "FLOOR": "No entities were on the floor",
    "DOMAIN": "No entities matched the domain",
    "DEVICE_CLASS": "No entities matched the device class",
    "ASSISTANT": "No matching entities are exposed to the assistant",
    "INVALID_AREA": "The area does not exist",
    "INVALID_FLOOR": "The floor does not exist",
    "DUPLICATE_NAME": "Multiple entities share the name",
}
REASON_NUMBERS = {  # MatchFailedReason's auto() values, for 2025's repr
    "NAME": 1,
    "AREA": 2,
    "FLOOR": 3,
    "DOMAIN": 4,
    "DEVICE_CLASS": 5,
    "FEATURE": 6,
    "STATE": 7,
    "ASSISTANT": 8,
    "INVALID_AREA": 9,
    "INVALID_FLOOR": 10,
    "DUPLICATE_NAME": 11,
    "MULTIPLE_TARGETS": 12,
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _stamp() -> float:
    return time.time()


def _context() -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:26].upper(), "parent_id": None, "user_id": None}


def _fold(text: str) -> str:
    """HA's `_normalize_name`: strip and casefold, nothing more."""
    return text.strip().casefold()


@dataclass
class Floor:
    floor_id: str
    name: str
    aliases: list[str] = field(default_factory=list)
    level: int | None = None


@dataclass
class Area:
    area_id: str
    name: str
    aliases: list[str] = field(default_factory=list)
    floor_id: str | None = None


@dataclass
class Device:
    id: str
    name: str
    area_id: str | None = None
    name_by_user: str | None = None
    parent_device_id: str | None = None  # a 2026 child device


@dataclass
class Entity:
    """An entity: its registry entry (when `registered`), exposure and state."""

    entity_id: str
    name: str  # the friendly name (its state's friendly_name)
    state: str
    attributes: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    area_id: str | None = None
    device_id: str | None = None
    exposed: bool = True  # to Assist ("conversation")
    exposed_elsewhere: list[str] = field(default_factory=list)  # e.g. ["cloud.alexa"]
    registered: bool = True
    device_class: str | None = None  # the registry's user override
    original_device_class: str | None = None
    computed_name_alias: bool = True  # 2026: COMPUTED_NAME kept among the aliases
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_changed: str = field(default_factory=_now)
    last_updated: str = field(default_factory=_now)

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]


@dataclass
class IntentRequest:
    """One POST to /api/intent/handle as the stand-in received it."""

    body: Any
    authorized: bool
    status: int


class HaStandIn:
    """HA's APIs for one small in-memory home; `async with HaStandIn() as ha: ha.url`."""

    def __init__(
        self,
        *,
        version: str = "2026.11.0",
        token: str = TOKEN,
        admin: bool = True,
        language: str = "en",
    ) -> None:
        self.version = version
        # What the handshake says, when a test wants it to differ from what the intent view
        # does (an HA dev build whose version is ahead of its code).
        self.advertised_version: str | None = None
        self.token = token
        self.admin = admin
        self.language = language
        self.floors: dict[str, Floor] = {}
        self.areas: dict[str, Area] = {}
        self.devices: dict[str, Device] = {}
        self.entities: dict[str, Entity] = {}
        self.intent_requests: list[IntentRequest] = []
        self.commands: list[dict[str, Any]] = []  # every WebSocket command received
        self.auth_attempts = 0
        self.stalled_commands: set[str] = set()  # never answered (a stuck HA)
        # Run right after answering a command: what HA does next, e.g. a state change that
        # is sent just behind a get_states answer.
        self.after_answer: dict[str, Callable[[], Awaitable[None]]] = {}
        self.intent_delay = 0.0
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._subscriptions: dict[web.WebSocketResponse, dict[int, str]] = {}

    # --- running -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """WebSockets open now (authenticated or not)."""
        return len(self._sockets)

    @property
    def year_month(self) -> tuple[int, int]:
        year, month = self.version.split(".")[:2]
        return int(year), int(month)

    @property
    def is_2026(self) -> bool:
        return self.year_month >= (2026, 1)

    async def __aenter__(self) -> HaStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/websocket", self._websocket)
        app.router.add_post("/api/intent/handle", self._intent_handle)
        app.router.add_get("/api/", self._api_root)
        app.on_shutdown.append(self._close_sockets)
        # requests still running at stop (a delayed intent) get half a second, as a restart
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def restart(self, down_seconds: float = 0.3) -> None:
        """HA restarting: every WebSocket closes, nothing listens for a while, same port."""
        await self.stop()
        await asyncio.sleep(down_seconds)
        await self.start()

    async def drop_connections(self) -> None:
        """Close every WebSocket while the server stays up (a proxy dropping them)."""
        await self._close_sockets(None)

    async def _close_sockets(self, _app: web.Application | None) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"Home Assistant is stopping")

    # --- the home (each change fires HA's event) -----------------------------------------

    async def add_floor(self, floor_id: str, name: str, aliases: Iterable[str] = ()) -> None:
        self.floors[floor_id] = Floor(floor_id, name, list(aliases))
        await self._fire("floor_registry_updated", {"action": "create", "floor_id": floor_id})

    async def add_area(
        self, area_id: str, name: str, aliases: Iterable[str] = (), floor_id: str | None = None
    ) -> None:
        self.areas[area_id] = Area(area_id, name, list(aliases), floor_id)
        await self._fire("area_registry_updated", {"action": "create", "area_id": area_id})

    async def update_area(self, area_id: str, **changes: Any) -> None:
        area = self.areas[area_id]
        for key, value in changes.items():
            setattr(area, key, list(value) if key == "aliases" else value)
        await self._fire("area_registry_updated", {"action": "update", "area_id": area_id})

    async def add_device(
        self,
        device_id: str,
        name: str,
        area_id: str | None = None,
        parent_device_id: str | None = None,
    ) -> None:
        self.devices[device_id] = Device(device_id, name, area_id, None, parent_device_id)
        await self._fire("device_registry_updated", {"action": "create", "device_id": device_id})

    async def update_device(self, device_id: str, **changes: Any) -> None:
        device = self.devices[device_id]
        old = {key: getattr(device, key) for key in changes}
        for key, value in changes.items():
            setattr(device, key, value)
        await self._fire(
            "device_registry_updated",
            {"action": "update", "device_id": device_id, "changes": old},
        )

    async def add_entity(
        self, entity_id: str, name: str, state: str = "off", **fields: Any
    ) -> None:
        """A new entity: its registry entry (unless registered=False), then its state."""
        entity = Entity(entity_id, name, state, **fields)
        self.entities[entity_id] = entity
        if entity.registered:
            await self._fire(
                "entity_registry_updated", {"action": "create", "entity_id": entity_id}
            )
        await self._fire(
            "state_changed",
            {"entity_id": entity_id, "old_state": None, "new_state": self._state(entity)},
        )

    async def update_entity(self, entity_id: str, **changes: Any) -> None:
        """A registry change (aliases, area_id, device_id, device_class, exposed...)."""
        entity = self.entities[entity_id]
        old: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "exposed":
                old["options"] = self._options(entity)
            else:
                old[key] = getattr(entity, key)
            setattr(entity, key, list(value) if key == "aliases" else value)
        if entity.registered:
            await self._fire(
                "entity_registry_updated",
                {"action": "update", "entity_id": entity_id, "changes": old},
            )

    async def set_state(self, entity_id: str, state: str, **attributes: Any) -> None:
        entity = self.entities[entity_id]
        old = self._state(entity)
        if state != entity.state:
            entity.last_changed = _now()
        entity.state = state
        entity.attributes.update(attributes)
        entity.last_updated = _now()
        await self._fire(
            "state_changed",
            {"entity_id": entity_id, "old_state": old, "new_state": self._state(entity)},
        )

    async def remove_entity(self, entity_id: str) -> None:
        entity = self.entities.pop(entity_id)
        if entity.registered:
            await self._fire(
                "entity_registry_updated", {"action": "remove", "entity_id": entity_id}
            )
        await self._fire(
            "state_changed",
            {"entity_id": entity_id, "old_state": self._state(entity), "new_state": None},
        )

    async def _fire(self, event_type: str, data: dict[str, Any]) -> None:
        event = {
            "event_type": event_type,
            "data": data,
            "origin": "LOCAL",
            "time_fired": _now(),
            "context": _context(),
        }
        for ws, subscriptions in list(self._subscriptions.items()):
            for ident, wanted in subscriptions.items():
                if wanted in ("*", event_type) and not ws.closed:
                    with contextlib.suppress(ConnectionError):
                        await ws.send_json({"id": ident, "type": "event", "event": event})

    # --- HA's serializations ---------------------------------------------------------------

    def _state(self, entity: Entity) -> dict[str, Any]:
        attributes = dict(entity.attributes)
        attributes.setdefault("friendly_name", entity.name)
        device_class = entity.device_class or entity.original_device_class
        if device_class and "device_class" not in attributes:
            attributes["device_class"] = device_class
        return {
            "entity_id": entity.entity_id,
            "state": entity.state,
            "attributes": attributes,
            "last_changed": entity.last_changed,
            "last_reported": entity.last_updated,
            "last_updated": entity.last_updated,
            "context": _context(),
        }

    def _options(self, entity: Entity) -> dict[str, Any]:
        options = {"conversation": {"should_expose": entity.exposed}}
        options.update({a: {"should_expose": True} for a in entity.exposed_elsewhere})
        return options

    def _aliases(self, entity: Entity) -> list[str | None]:
        if self.is_2026 and entity.computed_name_alias:
            return [COMPUTED_NAME, *entity.aliases]
        return list(entity.aliases)

    def _partial_entry(self, entity: Entity) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "area_id": entity.area_id,
            "categories": {},
            "config_entry_id": "a1b2c3",
            "config_subentry_id": None,
            "created_at": _stamp(),
            "device_id": entity.device_id,
            "disabled_by": None,
            "entity_category": None,
            "entity_id": entity.entity_id,
            "hidden_by": None,
            "icon": None,
            "id": entity.id,
            "labels": [],
            "modified_at": _stamp(),
            "name": None,
            "options": self._options(entity),
            "original_name": entity.name,
            "platform": "demo",
            "translation_key": None,
            "unique_id": entity.id,
        }
        if self.is_2026:
            entry["next_name_part"] = None
        else:
            entry["has_entity_name"] = False
        return dict(sorted(entry.items()))

    def _extended_entry(self, entity: Entity) -> dict[str, Any]:
        return {
            **self._partial_entry(entity),
            "aliases": self._aliases(entity),
            "capabilities": None,
            "device_class": entity.device_class,
            "original_device_class": entity.original_device_class,
            "original_icon": None,
        }

    def _device(self, device: Device) -> dict[str, Any]:
        if self.is_2026 and device.parent_device_id is not None:
            return {  # ChildDeviceEntry.dict_repr
                "area_id": device.area_id,
                "config_entry_id": "a1b2c3",
                "config_subentry_id": None,
                "created_at": _stamp(),
                "disabled_by": None,
                "id": device.id,
                "identifiers": [["demo", device.id]],
                "labels": [],
                "modified_at": _stamp(),
                "name_by_user": device.name_by_user,
                "name": device.name,
                "next_name_part": None,
                "parent_device_id": device.parent_device_id,
            }
        entry: dict[str, Any] = {
            "area_id": device.area_id,
            "configuration_url": None,
            "config_entries": ["a1b2c3"],
            "config_entries_subentries": {"a1b2c3": [None]},
            "connections": [],
            "created_at": _stamp(),
            "disabled_by": None,
            "entry_type": None,
            "hw_version": None,
            "id": device.id,
            "identifiers": [["demo", device.id]],
            "labels": [],
            "manufacturer": "Demo",
            "model": "Stand-in",
            "model_id": None,
            "modified_at": _stamp(),
            "name_by_user": device.name_by_user,
            "name": device.name,
            "primary_config_entry": "a1b2c3",
            "serial_number": None,
            "sw_version": None,
            "via_device_id": None,
        }
        if self.is_2026:
            entry.update(
                config_entry_id="a1b2c3",
                config_subentry_id=None,
                next_name_part=None,
                parent_device_id=None,
            )
        return entry

    def _area(self, area: Area) -> dict[str, Any]:
        return {
            "aliases": list(area.aliases),
            "area_id": area.area_id,
            "floor_id": area.floor_id,
            "humidity_entity_id": None,
            "icon": None,
            "labels": [],
            "name": area.name,
            "picture": None,
            "temperature_entity_id": None,
            "created_at": _stamp(),
            "modified_at": _stamp(),
        }

    def _floor(self, floor: Floor) -> dict[str, Any]:
        return {
            "aliases": list(floor.aliases),
            "created_at": _stamp(),
            "floor_id": floor.floor_id,
            "icon": None,
            "level": floor.level,
            "name": floor.name,
            "modified_at": _stamp(),
        }

    # --- the WebSocket -------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=55)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            shown = self.advertised_version or self.version
            await ws.send_json({"type": "auth_required", "ha_version": shown})
            message = await ws.receive()
            if message.type != WSMsgType.TEXT:
                return ws
            self.auth_attempts += 1
            try:
                auth = json.loads(message.data)
            except ValueError:
                auth = None
            if not isinstance(auth, dict) or auth.get("type") != "auth":
                await ws.send_json(
                    {
                        "type": "auth_invalid",
                        "message": "Auth message incorrectly formatted: "
                        "value must be one of ['auth'] for dictionary value @ data['type']",
                    }
                )
                return ws
            if auth.get("access_token") != self.token:
                await ws.send_json(
                    {"type": "auth_invalid", "message": "Invalid access token or password"}
                )
                return ws
            await ws.send_json({"type": "auth_ok", "ha_version": shown})
            self._subscriptions[ws] = {}
            await self._commands(ws)
        finally:
            self._subscriptions.pop(ws, None)
            self._sockets.discard(ws)
            await ws.close()
        return ws

    async def _commands(self, ws: web.WebSocketResponse) -> None:
        last_id = 0
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            try:
                msg = json.loads(message.data)
            except ValueError:
                await ws.send_json(_error(None, "invalid_format", "Message incorrectly formatted."))
                continue
            if not isinstance(msg, dict):
                continue
            ident = msg.get("id")
            if not isinstance(ident, int) or "type" not in msg:
                await ws.send_json(
                    _error(ident, "invalid_format", "Message incorrectly formatted.")
                )
                continue
            if ident <= last_id:
                await ws.send_json(_error(ident, "id_reuse", "Identifier values have to increase."))
                continue
            last_id = ident
            self.commands.append(msg)
            if msg["type"] in self.stalled_commands:
                continue
            await ws.send_json(self._answer(ws, msg))
            if (hook := self.after_answer.pop(msg["type"], None)) is not None:
                await hook()

    def _answer(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> dict[str, Any]:
        ident, kind = msg["id"], msg["type"]
        if kind == "ping":
            return {"id": ident, "type": "pong"}
        if kind == "subscribe_events":
            self._subscriptions[ws][ident] = msg.get("event_type", "*")
            return _result(ident, None)
        if kind == "unsubscribe_events":
            if self._subscriptions[ws].pop(msg.get("subscription"), None) is None:
                return _error(ident, "not_found", "Subscription not found.")
            return _result(ident, None)
        if kind == "get_states":
            return _result(ident, [self._state(e) for e in self.entities.values()])
        if kind == "config/entity_registry/list":
            return _result(
                ident, [self._partial_entry(e) for e in self.entities.values() if e.registered]
            )
        if kind == "config/entity_registry/get_entries":
            ids = msg.get("entity_ids")
            if not isinstance(ids, list) or not all(_valid_entity_id(i) for i in ids):
                return _error(ident, "invalid_format", "Entity IDs are invalid")
            found = {i: self.entities.get(i) for i in ids}
            return _result(
                ident,
                {
                    i: self._extended_entry(e) if e is not None and e.registered else None
                    for i, e in found.items()
                },
            )
        if kind == "config/device_registry/list":
            return _result(ident, [self._device(d) for d in self.devices.values()])
        if kind == "config/area_registry/list":
            return _result(ident, [self._area(a) for a in self.areas.values()])
        if kind == "config/floor_registry/list" and self.year_month >= (2024, 4):  # floors
            return _result(ident, [self._floor(f) for f in self.floors.values()])
        if kind == "homeassistant/expose_entity/list":
            if not self.admin:
                return _error(ident, "unauthorized", "Unauthorized")
            # every entity exposed to some assistant, and to which (exposed_entities.py)
            exposed = {
                e.entity_id: {
                    assistant: True
                    for assistant in (["conversation"] if e.exposed else []) + e.exposed_elsewhere
                }
                for e in self.entities.values()
                if e.exposed or e.exposed_elsewhere
            }
            return _result(ident, {"exposed_entities": exposed})
        return _error(ident, "unknown_command", "Unknown command.")

    # --- REST ----------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _api_root(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, text="401: Unauthorized")
        return web.json_response({"message": "API running."})

    async def _intent_handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        if not self._authorized(request):
            self.intent_requests.append(IntentRequest(body, False, 401))
            return web.Response(status=401, text="401: Unauthorized")
        response = await self._intent_response(body)
        self.intent_requests.append(IntentRequest(body, True, response.status))
        return response

    async def _intent_response(self, body: Any) -> web.Response:
        if self.intent_delay:
            await asyncio.sleep(self.intent_delay)
        if not isinstance(body, dict):
            return web.json_response({"message": "Invalid JSON."}, status=400)
        allowed = INTENT_KEYS_2026 if self.year_month >= RICH_INTENT_API else INTENT_KEYS_2025
        for key in body:
            if key not in allowed:
                return _bad_request(f"extra keys not allowed @ data['{key}']")
        if "name" not in body:
            return _bad_request("required key not provided @ data['name']")
        if not isinstance(body["name"], str):
            return _bad_request("expected str for dictionary value @ data['name']")
        data = body.get("data", {})
        if not isinstance(data, dict):
            return _bad_request("expected a dictionary for dictionary value @ data['data']")
        language = body.get("language") or self.language
        handler = {
            "HassTurnOn": self._turn,
            "HassTurnOff": self._turn,
            "HassLightSet": self._light_set,
            "HassGetState": self._get_state,
        }.get(body["name"])
        if handler is None:  # UnknownIntent escapes the view
            return _server_error()
        try:
            answer = await handler(body["name"], data, body.get("assistant"))
        except _InvalidSlots:  # InvalidSlotInfo escapes the view too
            return _server_error()
        except _MatchFailed as err:
            if self.year_month < MATCH_FAILURES_HANDLED:  # MatchFailedError escaped the view
                return _server_error()
            return web.json_response(self._failure(language, err))
        except _HandleError as err:
            return web.json_response(self._failure(language, err))
        return web.json_response({"language": language, **answer})

    def _failure(self, language: str, err: _HandleError) -> dict[str, Any]:
        """What the view makes of IntentHandleError / MatchFailedError."""
        if self.year_month >= RICH_INTENT_API:
            return {
                "speech": {"plain": {"speech": err.message_2026(), "extra_data": None}},
                "card": {},
                "language": language,
                "response_type": "error",
                "data": {"code": "failed_to_handle"},
            }
        return {
            "speech": {"plain": {"speech": err.message_2025(), "extra_data": None}},
            "card": {},
            "language": language,
            "response_type": "action_done",
            "data": {"targets": [], "success": [], "failed": []},
        }

    def _done(
        self,
        success: list[dict[str, Any]],
        failed: list[dict[str, Any]] | None = None,
        response_type: str = "action_done",
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"success": success, "failed": failed or []}
        if not self.is_2026:
            data = {"targets": [], **data}
        return {"speech": {}, "card": {}, "response_type": response_type, "data": data}

    async def _turn(
        self, intent: str, data: dict[str, Any], assistant: str | None
    ) -> dict[str, Any]:
        slots = _slots(data)
        targets, areas, floors = self._match(slots, assistant)
        before = {e.entity_id: self._state(e) for e in targets}
        service = "turn_on" if intent == "HassTurnOn" else "turn_off"
        success = [_target("floor", f.name, f.floor_id) for f in floors]
        if not floors:
            success += [_target("area", a.name, a.area_id) for a in areas]
        failed = []
        for entity in targets:
            if entity.domain in ON_OFF:
                entity.state = "on" if service == "turn_on" else "off"
            elif entity.domain in OPEN_CLOSE:
                entity.state = OPEN_CLOSE[entity.domain][service != "turn_on"]
            elif entity.domain == "lock":
                entity.state = "locked" if service == "turn_on" else "unlocked"
            else:  # no such service for the domain: that entity fails
                failed.append(_target("entity", entity.name, entity.entity_id))
                continue
            entity.last_changed = entity.last_updated = _now()
            success.append(_target("entity", entity.name, entity.entity_id))
        if not success:
            ids = [t["id"] for t in failed]
            raise _HandleError(f"Failed to call {service} for: {ids}")
        await self._changed(targets, before)
        return self._done(success, failed)

    async def _light_set(
        self, intent: str, data: dict[str, Any], assistant: str | None
    ) -> dict[str, Any]:
        slots = _slots(data)
        brightness = slots.get("brightness")
        if brightness is not None:
            try:
                brightness = int(brightness)
            except (TypeError, ValueError):
                raise _InvalidSlots from None
            if not 0 <= brightness <= 100:
                raise _InvalidSlots
        targets, areas, floors = self._match(slots, assistant)
        before = {e.entity_id: self._state(e) for e in targets}
        success = [_target("floor", f.name, f.floor_id) for f in floors]
        if not floors:
            success += [_target("area", a.name, a.area_id) for a in areas]
        for entity in targets:
            if entity.domain == "light" and brightness is not None:
                entity.state = "on" if brightness > 0 else "off"
                entity.attributes["brightness"] = round(brightness * 255 / 100)
                entity.last_changed = entity.last_updated = _now()
            success.append(_target("entity", entity.name, entity.entity_id))
        await self._changed(targets, before)
        return self._done(success)

    async def _get_state(
        self, intent: str, data: dict[str, Any], assistant: str | None
    ) -> dict[str, Any]:
        slots = _slots(data)
        targets, areas, floors = self._match(slots, assistant)
        success = [_target("area", a.name, a.area_id) for a in areas]
        success += [_target("floor", f.name, f.floor_id) for f in floors]
        success += [_target("entity", e.name, e.entity_id) for e in targets]
        return self._done(success, response_type="query_answer")

    async def _changed(self, entities: list[Entity], before: dict[str, dict[str, Any]]) -> None:
        """The service calls changed states: HA fires state_changed for each (a fast
        device's before the intent's answer, as HA waits briefly for its service calls)."""
        for entity in entities:
            old, new = before[entity.entity_id], self._state(entity)
            if (old["state"], old["attributes"]) != (new["state"], new["attributes"]):
                await self._fire(
                    "state_changed",
                    {"entity_id": entity.entity_id, "old_state": old, "new_state": new},
                )

    def _names(self, entity: Entity) -> list[str]:
        """The names an intent matches: 2025 the friendly name and aliases; 2026 the
        aliases, COMPUTED_NAME standing for the full name (here the friendly name)."""
        if not entity.registered:
            return [entity.name]
        if self.is_2026:
            return [entity.name if a is None else a for a in self._aliases(entity)]
        return [entity.name, *entity.aliases]

    def _entity_area(self, entity: Entity) -> str | None:
        if entity.area_id:
            return entity.area_id
        device = self.devices.get(entity.device_id or "")
        if device is None:
            return None
        if device.area_id:
            return device.area_id
        parent = self.devices.get(device.parent_device_id or "")
        return parent.area_id if parent is not None and self.is_2026 else None

    def _match(
        self, slots: dict[str, Any], assistant: str | None
    ) -> tuple[list[Entity], list[Area], list[Floor]]:
        """HA's async_match_targets, in its order: domain, name, device class, floor,
        area, exposure (only with an assistant), duplicate names."""
        name, area_name, floor_name = slots.get("name"), slots.get("area"), slots.get("floor")
        if not any(isinstance(v, str) and v.strip() for v in (name, area_name, floor_name)):
            raise _InvalidSlots  # vol.Any("name", "area", "floor"): non_empty_string
        domains = _as_set(slots.get("domain"))
        classes = _as_set(slots.get("device_class"))
        given = {"name": name, "area_name": area_name, "floor_name": floor_name}
        given.update(domains=domains, device_classes=classes, assistant=assistant)
        candidates = list(self.entities.values())
        if domains:
            candidates = [e for e in candidates if e.domain in domains]
            if not candidates:
                raise _MatchFailed("DOMAIN", given)
        if name:
            candidates = [
                e
                for e in candidates
                if e.entity_id == name or any(_fold(n) == _fold(name) for n in self._names(e))
            ]
            if not candidates:
                raise _MatchFailed("NAME", given)
        if classes:
            candidates = [
                e for e in candidates if self._state(e)["attributes"].get("device_class") in classes
            ]
            if not candidates:
                raise _MatchFailed("DEVICE_CLASS", given)
        floors: list[Floor] = []
        areas: list[Area] = []
        if floor_name:
            floors = [
                f
                for f in self.floors.values()
                if floor_name == f.floor_id
                or any(_fold(n) == _fold(floor_name) for n in (f.name, *f.aliases))
            ]
            if not floors:
                raise _MatchFailed("INVALID_FLOOR", given, no_match_name=floor_name)
            floor_ids = {f.floor_id for f in floors}
            floor_areas = {a.area_id for a in self.areas.values() if a.floor_id in floor_ids}
            candidates = [e for e in candidates if self._entity_area(e) in floor_areas]
            if not candidates:
                raise _MatchFailed("FLOOR", given)
        if area_name:
            areas = [
                a
                for a in self.areas.values()
                if area_name == a.area_id
                or any(_fold(n) == _fold(area_name) for n in (a.name, *a.aliases))
            ]
            if not areas:
                raise _MatchFailed("INVALID_AREA", given, no_match_name=area_name)
            area_ids = {a.area_id for a in areas}
            candidates = [e for e in candidates if self._entity_area(e) in area_ids]
            if not candidates:
                raise _MatchFailed("AREA", given, areas=areas)
        if assistant:
            candidates = [e for e in candidates if e.exposed]
            if not candidates:
                raise _MatchFailed("ASSISTANT", given)
        if name and len({e.entity_id for e in candidates}) > 1:
            raise _MatchFailed("DUPLICATE_NAME", given, no_match_name=name, areas=areas)
        return candidates, areas, floors


class _InvalidSlots(Exception):
    """vol.Invalid in a handler's slot schema: InvalidSlotInfo, which the view lets out."""


class _HandleError(Exception):
    """IntentHandleError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def message_2025(self) -> str:
        return self.message

    def message_2026(self) -> str:
        return self.message


class _MatchFailed(_HandleError):
    """MatchFailedError: a repr in 2025, a sentence in 2026 (helpers/intent.py).

    As `async_match_targets` fills its result: the name that matched nothing for an invalid
    area or floor and a duplicate name; the areas asked for (AreaEntry's repr, measured on
    HA 2025.12) when none of their entities matched. Floors' entries are not written out
    (a FLOOR failure's repr lists none here).
    """

    def __init__(
        self,
        reason: str,
        given: dict[str, Any],
        *,
        no_match_name: str | None = None,
        areas: list[Area] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.given = given
        self.no_match_name = no_match_name
        self.areas = areas or []

    def message_2025(self) -> str:
        g = self.given

        def opt(value: Any) -> str:
            return repr(value) if value else "None"

        areas = ", ".join(_area_entry_repr(area) for area in self.areas)
        result = (
            f"MatchTargetsResult(is_match=False, no_match_reason=<MatchFailedReason."
            f"{self.reason}: {REASON_NUMBERS[self.reason]}>, states=[], "
            f"no_match_name={opt(self.no_match_name)}, areas=[{areas}], floors=[])"
        )
        constraints = (
            f"MatchTargetsConstraints(name={opt(g['name'])}, area_name={opt(g['area_name'])}, "
            f"floor_name={opt(g['floor_name'])}, domains={opt(g['domains'])}, "
            f"device_classes={opt(g['device_classes'])}, features=None, states=None, "
            f"assistant={opt(g['assistant'])}, allow_duplicate_names=False, "
            "single_target=False)"
        )
        return (
            f"<MatchFailedError result={result}, constraints={constraints}, "
            "preferences=MatchTargetsPreferences(area_id=None, floor_id=None)>"
        )

    def message_2026(self) -> str:
        g = self.given
        described = [
            f"{label} {g[key]!r}"
            for label, key in (("name", "name"), ("area", "area_name"), ("floor", "floor_name"))
            if g[key]
        ]
        for label, key in (("domains", "domains"), ("device classes", "device_classes")):
            if g[key]:
                described.append(f"{label} {', '.join(sorted(g[key]))}")
        message = MATCH_FAILURES_2026.get(self.reason, "No entities matched")
        return f"{message} (given {', '.join(described)})" if described else message


def _area_entry_repr(area: Area) -> str:
    """HA 2025.12's `repr(AreaEntry)` (a frozen dataclass; its times are the stand-in's)."""
    stamp = datetime.now(UTC)
    when = (
        f"datetime.datetime({stamp.year}, {stamp.month}, {stamp.day}, {stamp.hour}, "
        f"{stamp.minute}, {stamp.second}, {stamp.microsecond}, tzinfo=datetime.timezone.utc)"
    )
    aliases = repr(set(area.aliases)) if area.aliases else "set()"
    return (
        f"AreaEntry(name={area.name!r}, normalized_name={_fold(area.name)!r}, "
        f"created_at={when}, modified_at={when}, aliases={aliases}, "
        f"floor_id={area.floor_id!r}, humidity_entity_id=None, icon=None, "
        f"id={area.area_id!r}, labels=set(), picture=None, temperature_entity_id=None, "
        "_cache={})"
    )


def _slots(data: dict[str, Any]) -> dict[str, Any]:
    return dict(data)


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    return {str(v) for v in value} if isinstance(value, list) else {str(value)}


def _target(kind: str, name: str, ident: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "id": ident}


def _valid_entity_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", value) is not None


def _result(ident: int, result: Any) -> dict[str, Any]:
    return {"id": ident, "type": "result", "success": True, "result": result}


def _error(ident: Any, code: str, message: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "result",
        "success": False,
        "error": {"code": code, "message": message},
    }


def _bad_request(detail: str) -> web.Response:
    return web.json_response({"message": f"Message format incorrect: {detail}"}, status=400)


def _server_error() -> web.Response:
    return web.Response(
        status=500, text="500 Internal Server Error\n\nServer got itself in trouble"
    )
