"""A client of Home Assistant's own APIs: what the home holds, and intents run by HA.

One WebSocket (`/api/websocket`, or `/websocket` behind the Supervisor's proxy) keeps a
`Home` snapshot current: after HA's handshake (`auth_required` → `auth` → `auth_ok` or
`auth_invalid`) it subscribes to the registry-updated events and to `state_changed`, then
reads `get_states`, the registries and the Assist exposure list. A registry event reloads
the lists (debounced: HA fires them in bursts); a `state_changed` of an exposed entity
updates its state at once, so answers about the home need no round trip. When HA restarts,
the client reconnects with a capped backoff and says so once.

Intents go through `POST /api/intent/handle`. What that view accepts changed: HA 2025.x's
schema is `{name, data}` and any other key is a 400 (voluptuous' "extra keys not
allowed"); HA PR #164687 (merged March 2026, so in 2026.4 by the release dates; 2026.11
has it) added `language`, `assistant`, `device_id` and `satellite_id`. Those, with
`assistant: "conversation"` (HA then acts on exposed entities only), are sent to an HA that
says it is 2026.4 or later; a 400 for extra keys all the same makes the client send
`{name, data}` from then on. How HA's answer is read is `answers.py`.

The token is sent in the auth message and the Authorization header only: never logged,
never in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .answers import IntentResult, message_of, read_answer
from .home import Home, build_home

__all__ = [
    "HassUrls",
    "HomeAssistantApi",
    "HomeAssistantAuthError",
    "HomeAssistantError",
    "IntentResult",
    "parse_url",
]

_LOGGER = logging.getLogger(__name__)

ASSISTANT = "conversation"  # HA's assistant id for Assist (the conversation agents)
REGISTRY_EVENTS = (
    "entity_registry_updated",  # also fired when an entity's exposure changes
    "device_registry_updated",
    "area_registry_updated",
    "floor_registry_updated",
)
STATE_CHANGED = "state_changed"
RICH_INTENT_API = (2026, 4)  # the first release whose intent view takes language etc.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # get_states of a large home is several MB
HEARTBEAT_SECONDS = 30.0


class HomeAssistantError(Exception):
    """Home Assistant refused or failed a request; the message says why, never the token."""


class HomeAssistantAuthError(HomeAssistantError):
    """The token was refused (or its user may not do what is needed): retrying won't help."""


class _ConnectionLost(Exception):
    """The WebSocket ended or stopped answering: reconnect."""


class _CommandError(HomeAssistantError):
    """A WebSocket command's `success: false` result."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"{command}: {code}: {message}")
        self.code = code


@dataclass(frozen=True)
class HassUrls:
    """Where HA's APIs are, from the one url a user configures."""

    base: str  # http(s)://host[:port], or http://supervisor/core in an add-on
    websocket: str

    def api(self, path: str) -> str:
        return f"{self.base}/api/{path.lstrip('/')}"


def parse_url(url: str) -> HassUrls:
    """The API urls for a configured HA url; ValueError with a message for a config error.

    `http://host:8123` → `/api/...` and `ws://host:8123/api/websocket`; the Supervisor's
    proxy `http://supervisor/core` → `/core/api/...` and `ws://supervisor/core/websocket`.
    A trailing `/api` is accepted and dropped.
    """
    example = "e.g. http://homeassistant.local:8123, or http://supervisor/core in an add-on"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"the Home Assistant url is empty ({example})")
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise ValueError(f"the Home Assistant url is not a URL ({example})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        got = f"'{scheme}://'" if scheme else "no scheme"
        raise ValueError(
            f"the Home Assistant url must start with http:// or https:// (it has {got}; {example})"
        )
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        raise ValueError(f"the Home Assistant url has an invalid port ({example})")
    if not host:
        raise ValueError(f"the Home Assistant url has no host ({example})")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "the Home Assistant url must not hold a user or password: the access token is "
            "its own setting"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"the Home Assistant url must not have a query or fragment ({example})")
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    base = urlunsplit((scheme, parts.netloc, path, "", ""))
    ws_base = urlunsplit(("wss" if scheme == "https" else "ws", parts.netloc, path, "", ""))
    if host == "supervisor":
        if not path:
            raise ValueError(
                "http://supervisor is the Supervisor's own API: Home Assistant Core is at "
                "http://supervisor/core"
            )
        return HassUrls(base=base, websocket=f"{ws_base}/websocket")
    return HassUrls(base=base, websocket=f"{ws_base}/api/websocket")


def parse_version(text: str | None) -> tuple[int, int] | None:
    """(year, month) of an HA version such as "2026.11.0" or "2026.4.0b2"."""
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


@dataclass
class _Lists:
    """HA's lists as last read, by id: what a Home is built from."""

    states: dict[str, Mapping[str, Any]]
    exposed: frozenset[str]
    entries: dict[str, Mapping[str, Any] | None]
    devices: dict[str, Mapping[str, Any]]
    areas: dict[str, Mapping[str, Any]]
    floors: dict[str, Mapping[str, Any]]

    def build(self) -> Home:
        return build_home(
            self.states, self.exposed, self.entries, self.devices, self.areas, self.floors
        )


@dataclass
class _Outcome:
    """How the first connection attempt ended, for `start()`."""

    future: asyncio.Future[HomeAssistantError | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def set(self, error: HomeAssistantError | None) -> None:
        if not self.future.done():
            self.future.set_result(error)


class HomeAssistantApi:
    """HA's WebSocket and REST APIs for one url and long-lived token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        request_timeout: float = 10.0,
        intent_timeout: float = 10.0,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 30.0,
        reload_delay: float = 0.5,
    ) -> None:
        self.urls = parse_url(url)
        if not isinstance(token, str) or not token.strip():
            raise ValueError("the Home Assistant access token is empty")
        self._token = token.strip()
        self._request_timeout = request_timeout
        self._intent_timeout = intent_timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._reload_delay = reload_delay
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._outcome: _Outcome | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._handlers: dict[int, Callable[[Mapping[str, Any]], None]] = {}
        self._lists: _Lists | None = None
        self._home: Home | None = None
        self._ready = asyncio.Event()
        self._touched: dict[str, Mapping[str, Any] | None] | None = None
        self._load_lock = asyncio.Lock()  # one load at a time: each owns `_touched`
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_wanted = False
        self._ha_version: str | None = None
        self._legacy_intent_api = False  # a 400 showed the intent view takes name/data only
        self._connected = False
        self._error: str | None = None
        self._auth_logged = False

    # --- what callers read -------------------------------------------------------------

    @property
    def home(self) -> Home | None:
        """The latest snapshot; None until the first load. Kept while HA is away."""
        return self._home

    @property
    def connected(self) -> bool:
        """The WebSocket is up and the snapshot follows HA's changes."""
        return self._connected

    @property
    def ha_version(self) -> str | None:
        """HA's version from its last handshake."""
        return self._ha_version

    @property
    def counts_exposure(self) -> bool:
        """HA's intent view acts on exposed entities only (it takes `assistant`: 2026.4+);
        before that it acts on any entity a command matches."""
        return self._rich_intent_api() is True

    @property
    def error(self) -> str | None:
        """Why the client gave up (a refused token), or None."""
        return self._error

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, wait_seconds: float | None = None) -> None:
        """Connect, authenticate and load the home; then follow HA in the background.

        Raises HomeAssistantAuthError when HA refuses the token (or the token's user may not
        list exposed entities): retrying would not help, and the message is fit for a config
        error. When HA cannot be reached (not up yet, restarting), logs once and returns
        while the background task keeps trying; `home` stays None until it loads.
        """
        if self._task is not None:
            raise RuntimeError("HomeAssistantApi.start() called twice")
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=self._request_timeout)
        )
        self._outcome = _Outcome()
        self._task = asyncio.create_task(self._run(), name="home-assistant-api")
        wait = wait_seconds if wait_seconds is not None else 2 * self._request_timeout + 1
        try:
            async with asyncio.timeout(wait):
                error = await asyncio.shield(self._outcome.future)
        except TimeoutError:
            _LOGGER.warning(
                "Home Assistant at %s is not answering yet; still trying", self.urls.base
            )
            return
        if isinstance(error, HomeAssistantAuthError):
            await self.close()
            raise error

    async def wait_ready(self, seconds: float) -> bool:
        """Wait until the first snapshot is loaded; False if not within `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop following HA: no task, WebSocket or HTTP connection is left behind."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        self._connected = False

    async def refresh(self) -> Home:
        """Read HA's lists again now (rarely needed: events keep the snapshot current)."""
        if self._ws is None or self._lists is None:
            raise HomeAssistantError(f"not connected to Home Assistant at {self.urls.base}")
        try:
            await self._load()
        except _ConnectionLost as err:
            raise HomeAssistantError(f"Home Assistant connection lost: {err}") from None
        assert self._home is not None
        return self._home

    # --- the WebSocket -----------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, follow, and reconnect with a capped backoff until closed."""
        failures = 0
        while True:
            try:
                await self._connection()
                reason = "closed by Home Assistant"
            except HomeAssistantAuthError as err:
                self._error = str(err)
                if self._outcome is not None and not self._outcome.future.done():
                    self._outcome.set(err)
                else:
                    _LOGGER.error("%s; no longer following Home Assistant", err)
                return
            except (
                _ConnectionLost,
                HomeAssistantError,
                aiohttp.ClientError,
                OSError,
                ValueError,  # not JSON
            ) as err:
                reason = self._describe(err)
            except TimeoutError:
                reason = f"no answer within {self._request_timeout:g} s"
            was_up, self._connected = self._connected, False
            if was_up:
                failures = 0
                _LOGGER.warning(
                    "Home Assistant connection lost (%s); reconnecting (the home as last "
                    "seen stays in use)",
                    reason,
                )
            elif failures == 0:
                _LOGGER.warning(
                    "cannot reach Home Assistant at %s (%s); retrying", self.urls.base, reason
                )
            else:
                _LOGGER.debug("Home Assistant still unreachable (%s)", reason)
            if self._outcome is not None:
                self._outcome.set(HomeAssistantError(reason))
            delay = min(self._max_reconnect_delay, self._reconnect_delay * 2**failures)
            failures += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))

    async def _connection(self) -> None:
        """One WebSocket: handshake, subscribe, load, then read until it ends."""
        assert self._http is not None
        async with asyncio.timeout(self._request_timeout):
            ws = await self._http.ws_connect(
                self.urls.websocket, heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES
            )
        try:
            await self._handshake(ws)
            self._ws = ws
            reader = asyncio.create_task(self._read(ws), name="home-assistant-reader")
            try:
                await self._subscribe()
                await self._load()
                self._connected = True
                if self._error is None and self._outcome is not None:
                    self._outcome.set(None)
                _LOGGER.info(
                    "following Home Assistant %s at %s: %d entities exposed to Assist",
                    self._ha_version or "(version unknown)",
                    self.urls.base,
                    len(self._home or ()),
                )
                await reader
            finally:
                self._ws = None
                for task in (reader, self._reload_task):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                self._reload_task = None
                self._fail_pending(_ConnectionLost("the connection ended"))
                self._handlers.clear()
        finally:
            await ws.close()

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """HA's auth phase: auth_required → auth → auth_ok | auth_invalid."""
        async with asyncio.timeout(self._request_timeout):
            hello = await self._receive(ws)
            if hello.get("type") != "auth_required":
                raise _ConnectionLost(f"expected auth_required, got {hello.get('type')!r}")
            self._ha_version = hello.get("ha_version") or self._ha_version
            await ws.send_json({"type": "auth", "access_token": self._token})
            answer = await self._receive(ws)
        kind = answer.get("type")
        if kind == "auth_invalid":
            said = self._scrub_token(str(answer.get("message") or "no reason given"))
            raise HomeAssistantAuthError(
                f"Home Assistant at {self.urls.base} refused the access token ({said}): "
                "give a valid long-lived access token (or, in an add-on, "
                "homeassistant_api: true for SUPERVISOR_TOKEN)"
            )
        if kind != "auth_ok":
            raise _ConnectionLost(f"expected auth_ok, got {kind!r}")
        self._ha_version = answer.get("ha_version") or self._ha_version

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> Mapping[str, Any]:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise _ConnectionLost(f"the WebSocket ended ({message.type.name.lower()})")
        data = json.loads(message.data)
        if not isinstance(data, dict):
            raise _ConnectionLost("Home Assistant sent a message that is not an object")
        return data

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Hand each message to its command or subscription until the socket closes."""
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                try:
                    data = json.loads(message.data)
                except ValueError:
                    _LOGGER.debug("Home Assistant sent text that is not JSON; ignored")
                    continue
                # One object per frame unless coalescing is asked for (it is not); a list
                # is read all the same.
                for item in data if isinstance(data, list) else [data]:
                    if isinstance(item, dict):
                        self._dispatch(item)
        finally:
            self._fail_pending(_ConnectionLost("the WebSocket closed"))

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        ident = message.get("id")
        if kind == "result" and isinstance(ident, int):
            command, future = self._pending.pop(ident, ("", None))
            if future is None or future.done():
                return
            if message.get("success"):
                future.set_result(message.get("result"))
            else:
                error = message.get("error") or {}
                future.set_exception(
                    _CommandError(
                        command,
                        str(error.get("code", "unknown_error")),
                        self._scrub_token(str(error.get("message", ""))),
                    )
                )
        elif kind == "event" and isinstance(ident, int):
            handler = self._handlers.get(ident)
            event = message.get("event")
            if handler is not None and isinstance(event, dict):
                handler(event)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a command nobody awaits any more is fine

    async def _command(
        self,
        command: str,
        on_event: Callable[[Mapping[str, Any]], None] | None = None,
        **fields: Any,
    ) -> Any:
        """Send one command and wait (bounded) for its result; `on_event` gets the events
        of a subscription, from before its result on (so none is missed)."""
        ws = self._ws
        if ws is None or ws.closed:
            raise _ConnectionLost("not connected")
        self._next_id += 1
        ident = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (command, future)
        if on_event is not None:
            self._handlers[ident] = on_event
        try:
            await ws.send_json({"id": ident, "type": command, **fields})
            async with asyncio.timeout(self._request_timeout):
                return await future
        except TimeoutError:
            raise _ConnectionLost(
                f"{command} not answered within {self._request_timeout:g} s"
            ) from None
        except ConnectionError as err:
            raise _ConnectionLost(str(err)) from None
        finally:
            self._pending.pop(ident, None)

    async def _subscribe(self) -> None:
        """Registry events and state_changed, before the lists are read: nothing is missed."""
        handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            event: self._on_registry_event for event in REGISTRY_EVENTS
        }
        handlers[STATE_CHANGED] = self._on_state_changed
        await asyncio.gather(
            *(
                self._command("subscribe_events", on_event=handler, event_type=event_type)
                for event_type, handler in handlers.items()
            )
        )

    async def _load(self) -> None:
        """Read the exposure list, registries and states; build a new snapshot."""
        async with self._load_lock:
            await self._load_now()

    async def _load_now(self) -> None:
        self._touched = {}
        try:
            exposure, areas, devices, floors, states = await asyncio.gather(
                self._command("homeassistant/expose_entity/list"),
                self._command("config/area_registry/list"),
                self._command("config/device_registry/list"),
                self._floors(),
                self._command("get_states"),
            )
        except _CommandError as err:
            if err.code == "unauthorized":
                raise HomeAssistantAuthError(
                    "the Home Assistant user of this token is not an administrator: HA lists "
                    "the entities exposed to Assist only to administrators"
                ) from None
            raise
        exposed = frozenset(
            entity_id
            for entity_id, assistants in (exposure or {}).get("exposed_entities", {}).items()
            if isinstance(assistants, dict) and assistants.get(ASSISTANT)
        )
        entries: dict[str, Any] = {}
        if exposed:
            entries = await self._command(
                "config/entity_registry/get_entries", entity_ids=sorted(exposed)
            )
        found = {
            s["entity_id"]: s
            for s in states or ()
            if isinstance(s, dict) and s.get("entity_id") in exposed
        }
        touched, self._touched = self._touched or {}, None
        for entity_id, state in touched.items():  # newer than get_states' answer
            if state is None:
                found.pop(entity_id, None)
            elif entity_id in exposed:
                found[entity_id] = state
        self._lists = _Lists(
            states=found,
            exposed=exposed,
            entries=dict(entries or {}),
            devices={d["id"]: d for d in devices or () if isinstance(d, dict) and "id" in d},
            areas={a["area_id"]: a for a in areas or () if isinstance(a, dict)},
            floors={f["floor_id"]: f for f in floors or () if isinstance(f, dict)},
        )
        self._home = self._lists.build()
        self._ready.set()

    async def _floors(self) -> Any:
        """The floor registry (HA 2024.4+); none on an HA that lacks the command."""
        try:
            return await self._command("config/floor_registry/list")
        except _CommandError as err:
            if err.code == "unknown_command":
                return []
            raise

    def _on_registry_event(self, event: Mapping[str, Any]) -> None:
        """A registry changed: read the lists again, once per burst."""
        self._reload_wanted = True
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(
                self._reload_later(), name="home-assistant-reload"
            )

    async def _reload_later(self) -> None:
        while self._reload_wanted:
            await asyncio.sleep(self._reload_delay)
            self._reload_wanted = False
            try:
                await self._load()
            except HomeAssistantAuthError as err:
                _LOGGER.error("%s; the home is no longer updated", err)
                return
            except (_ConnectionLost, HomeAssistantError) as err:
                _LOGGER.warning("reading Home Assistant's lists again failed: %s", err)
                if self._ws is not None:  # a stuck HA: a new connection starts afresh
                    await self._ws.close()
                return

    def _on_state_changed(self, event: Mapping[str, Any]) -> None:
        """Keep the exposed entities' states current; others are ignored."""
        data = event.get("data") or {}
        entity_id = data.get("entity_id")
        if not isinstance(entity_id, str):
            return
        new_state = data.get("new_state")
        if self._touched is not None:  # a load is reading get_states: this is newer
            self._touched[entity_id] = new_state
        lists, home = self._lists, self._home
        if lists is None or home is None or entity_id not in lists.exposed:
            return
        if new_state is None:
            lists.states.pop(entity_id, None)
            self._home = lists.build()
            return
        lists.states[entity_id] = new_state
        if home.get(entity_id) is not None:
            self._home = home.with_state(entity_id, new_state)
        else:  # exposed, and now it has a state (HA still starting, or a new entity)
            self._home = lists.build()

    # --- intents over REST -------------------------------------------------------------

    async def handle_intent(
        self,
        name: str,
        slots: Mapping[str, Any] | None = None,
        language: str | None = None,
        *,
        device_id: str | None = None,
        satellite_id: str | None = None,
    ) -> IntentResult:
        """Run one intent in HA (`POST /api/intent/handle`); never raises for HA's answer.

        `slots` are plain values ({"name": "Kitchen Light"}); HA wraps each as
        {"value": ...}. `language`, `device_id` and `satellite_id` reach HA only where its
        view takes them (2026.4+), with `assistant: "conversation"`; before that HA uses its
        own language and acts on any entity, exposed or not, so a caller should pick
        targets from `home` first.
        """
        if not name:
            raise ValueError("an intent needs a name")
        if self._http is None:
            raise RuntimeError("HomeAssistantApi.start() first")
        body: dict[str, Any] = {"name": name, "data": dict(slots or {})}
        rich = self._rich_intent_api()
        if rich is not False:
            extra = {"language": language, "device_id": device_id, "satellite_id": satellite_id}
            request = {**body, "assistant": ASSISTANT}
            request.update({key: value for key, value in extra.items() if value})
            status, payload = await self._post_intent(request)
            if status == 400 and "extra keys" in message_of(payload):
                self._legacy_intent_api = True  # an HA whose view takes name/data only
                status, payload = await self._post_intent(body)
        else:
            status, payload = await self._post_intent(body)
        if isinstance(payload, IntentResult):
            return payload
        result = read_answer(name, status, payload, self._home)
        if result.error_code == "unauthorized" and not self._auth_logged:
            self._auth_logged = True  # once: every later intent would say the same
            _LOGGER.error("%s", result.error_message)
        return result

    def _rich_intent_api(self) -> bool | None:
        """Whether HA's intent view takes language etc.; None: unknown, try and see."""
        if self._legacy_intent_api:
            return False
        version = parse_version(self._ha_version)
        if version is None:
            return None
        return version >= RICH_INTENT_API

    async def _post_intent(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        """POST the intent; (status, JSON or text), or (0, IntentResult) without an answer."""
        assert self._http is not None
        url = self.urls.api("intent/handle")
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with asyncio.timeout(self._intent_timeout):
                async with self._http.post(url, json=body, headers=headers) as response:
                    text = await response.text()
                    status = response.status
        except TimeoutError:
            return 0, IntentResult.failure(
                "timeout",
                f"Home Assistant did not answer the intent within {self._intent_timeout:g} s",
            )
        except (aiohttp.ClientError, OSError) as err:
            return 0, IntentResult.failure(
                "unreachable", f"cannot reach Home Assistant: {self._describe(err)}"
            )
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # --- keeping secrets and ids out of text -------------------------------------------

    def _scrub_token(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _describe(self, err: BaseException) -> str:
        text = str(err) or type(err).__name__
        if isinstance(err, aiohttp.WSServerHandshakeError):
            text = f"WebSocket handshake refused: HTTP {err.status}"
        elif isinstance(err, aiohttp.ClientConnectorError):
            text = f"cannot connect to {err.host}:{err.port}"
        return self._scrub_token(text)
