"""A local WebSocket server that speaks the OpenAI Realtime protocol (beta and GA).

It exists so the project can be tested end to end, including the failure modes seen
in the wild (rejected session.update, audio despite text, cut responses, expired
sessions, dropped sockets), without an API key or network. It plays the documented
protocol; it must not be bent to make a particular client pass.

Turn detection is simulated (:mod:`.vad`): both default sessions have ``server_vad``
on, as the real ones do, so appended audio that sounds like speech gets
``speech_started``/``speech_stopped``, an automatic commit and, unless
``create_response`` is false, an automatic response with the SESSION's settings.
With ``turn_detection: null`` only client commits and response.create drive it.

With function tools offered, the model answers a few English commands with function
calls of them (:mod:`.tools`); a ``function_call_output`` must answer a call of the
conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import params, tools
from . import protocol as p
from .conversation import ConversationMixin
from .responses import ResponseRun
from .scenario import Scenario
from .vad import Vad

_LOGGER = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # append allows 15 MiB of audio, base64 grows it 4/3


def _presented_key(headers: Headers) -> str | None:
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("api-key")


def _json_response(conn: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = conn.respond(status, json.dumps(body) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


class RealtimeSimulator:
    """The server: accepts Realtime connections and records them for inspection."""

    # The websockets connection class: a subclass can observe frames (the benchmark
    # stamps their arrival) without copying start().
    connection_class: type[ServerConnection] = ServerConnection

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        scenario: Scenario | None = None,
        record_limit: int | None = None,
        dialect: p.Dialect | None = None,
        serve_beta: bool = False,
    ) -> None:
        self.host = host
        # None: the dialect follows the OpenAI-Beta header, as api.openai.com does. A fixed
        # dialect plays a server that speaks only one, whatever the client sends (e.g. an
        # Azure preview deployment, or a GA-only endpoint).
        self.dialect = dialect
        # api.openai.com refuses the beta interface (since May 2026): a beta handshake is
        # accepted, answered with one error and closed. True plays a compatible server that
        # still serves it. A fixed dialect="beta" is such a server too.
        self.serve_beta = serve_beta or dialect == "beta"
        self.port = port
        self.api_key = api_key  # None: any key (or none) is accepted
        self.scenario = scenario or Scenario()
        # None: connections keep every received and sent event, log entry and commit (tests);
        # N: only about the last N of each, so a long soak run stays bounded.
        self.record_limit = record_limit
        self.connections: list[SimConnection] = []
        self.handshakes = 0  # upgrade requests, refused ones included (they make no connection)
        self._server: Server | None = None
        self._stopping = asyncio.Event()  # cuts handshake delays short on stop()

    @property
    def url(self) -> str:
        """Base URL; clients append ``?model=...``."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def received_types(self) -> list[str]:
        """Types of every client event, connection by connection, in order."""
        return [str(e.get("type")) for c in self.connections for e in c.received]

    async def start(self) -> None:
        """Listen; with ``port=0`` the chosen port is written back to ``self.port``."""
        self._stopping.clear()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            create_connection=self.connection_class,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and end every task the simulator started."""
        self._stopping.set()
        for conn in self.connections:
            conn.cancel_tasks()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in self.connections:
            await conn.wait_tasks()

    async def __aenter__(self) -> RealtimeSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def key_ok(self, headers: Headers) -> bool:
        """Whether the request carries the configured key (always, without one)."""
        return self.api_key is None or _presented_key(headers) == self.api_key

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """HTTP-level decisions before the upgrade: delay, faults, path, auth."""
        self.handshakes += 1
        scenario = self.scenario
        if scenario.handshake_delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), scenario.handshake_delay)
        if self._stopping.is_set():
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Shutting down\n")
        if scenario.reject_handshake is not None:
            status = scenario.reject_handshake
            return _json_response(conn, status, {"error": {"message": HTTPStatus(status).phrase}})
        if urlsplit(request.path).path not in p.PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if scenario.auth_failure == "http" and not self.key_ok(request.headers):
            body = p.error_body("invalid_api_key", "Incorrect API key provided.")
            del body["event_id"]
            return _json_response(conn, HTTPStatus.UNAUTHORIZED, {"error": body})
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = SimConnection(self, ws)
        self.connections.append(conn)
        await conn.serve()


class SimConnection(ConversationMixin):
    """One client connection: its session, audio buffer, items and a full record."""

    def __init__(self, sim: RealtimeSimulator, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.sim = sim
        self.ws = ws
        self.headers: Headers = ws.request.headers
        url = urlsplit(ws.request.path)
        self.query: dict[str, str] = {k: v[0] for k, v in parse_qs(url.query).items()}
        beta = "realtime=v1" in self.headers.get("OpenAI-Beta", "").replace(" ", "")
        self.dialect: p.Dialect = sim.dialect or ("beta" if beta else "ga")
        model = self.query.get("model") or self.query.get("deployment")
        self.session: dict[str, Any] = p.default_session(
            self.dialect, model or p.DEFAULT_MODEL[self.dialect]
        )
        self.conversation_id = p.new_id("conv")
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # every server event, as it went on the wire
        self.log: list[tuple[float, str, str]] = []
        self.commits: list[bytes] = []
        self.closed = False
        self.items: dict[str, dict[str, Any]] = {}  # conversation items (no audio kept)
        self.item_texts: dict[str, str] = {}  # what the "model" understood per user item
        # The model's function_call items as finished (arguments complete, or cut), and the
        # function_call_output items the client added, in order (for inspection).
        self.calls: list[dict[str, Any]] = []
        self.tool_outputs: list[dict[str, Any]] = []
        self.last_item_id: str | None = None
        self.replay_ids: dict[str, str] = {}  # forum_replay: logged id -> fresh id
        self.replay_transcription: asyncio.Task[None] | None = None
        self._buffer = bytearray()
        self.vad = Vad()
        self.vad_events: list[tuple[str, int]] = []  # (decision, audio ms) for inspection
        self._response: ResponseRun | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- plumbing ---------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection until the client or the server closes it."""
        try:
            if not self.sim.key_ok(self.headers):  # only reached with auth_failure="event"
                await self._reject_key()
                return
            if self.dialect == "beta" and not self.sim.serve_beta:
                await self._refuse_beta()
                return
            await self.send({"type": "session.created", "session": self.session})
            async for message in self.ws:
                await self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.cancel_tasks()

    async def send(self, event: dict[str, Any]) -> None:
        """Send a server event, giving it a fresh ``event_id`` and logging it.

        ``sent`` keeps the event parsed back from its wire text: the dicts that built it
        (the session, items) live on and change, what was sent does not.
        """
        event = {"type": event["type"], "event_id": p.new_id("event"), **event}
        text = json.dumps(event, ensure_ascii=False)
        self.record(self.sent, json.loads(text))
        self.record(self.log, (time.monotonic(), "out", event["type"]))
        _LOGGER.debug("out %s", event["type"])
        await self.ws.send(text)

    async def error(
        self, code: str | None, message: str, param: str | None = None, client_event_id: Any = None
    ) -> None:
        """Send an ``error`` event; the connection stays usable."""
        await self.send(
            {"type": "error", "error": p.error_body(code, message, param, client_event_id)}
        )

    def record(self, records: list[Any], value: Any) -> None:
        """Append to one of the inspection lists, trimming it if a record_limit is set."""
        records.append(value)
        limit = self.sim.record_limit
        if limit is not None and len(records) > 2 * limit:
            del records[:-limit]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` beside the reader so the connection keeps reading meanwhile."""
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await coro

    def cancel_tasks(self) -> None:
        """Cancel every background task of this connection."""
        for task in list(self._tasks):
            task.cancel()

    async def wait_tasks(self) -> None:
        """Wait until every background task has ended."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (a network failure)."""
        if self.ws.transport is not None:
            self.ws.transport.abort()

    async def expire(self) -> None:
        """End the session like the real server at its time limit."""
        minutes = p.SESSION_MINUTES[self.dialect]
        await self.error(
            "session_expired", f"Your session hit the maximum duration of {minutes} minutes."
        )
        await self.ws.close(1001, "session expired")

    async def _reject_key(self) -> None:
        key = _presented_key(self.headers)
        if key is None:  # live GA: code null, close reason is the bare type
            await self.error(None, "Missing bearer or basic authentication in header")
            await self.ws.close(p.AUTH_CLOSE_CODE, "invalid_request_error")
            return
        await self.error(
            "invalid_api_key",
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        )
        await self.ws.close(p.AUTH_CLOSE_CODE, "invalid_request_error.invalid_api_key")

    async def _refuse_beta(self) -> None:
        """What api.openai.com answers a beta handshake with since the beta was shut down."""
        await self.error(p.BETA_DISABLED_CODE, p.BETA_DISABLED_MESSAGE)
        await self.ws.close(
            p.BETA_DISABLED_CLOSE_CODE, f"invalid_request_error.{p.BETA_DISABLED_CODE}"
        )

    async def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.record(self.log, (time.monotonic(), "in", "<binary>"))
            msg = "Expected a text WebSocket message; binary frames are not supported."
            await self.error("invalid_event", msg)
            return
        try:
            event = json.loads(message)
        except ValueError:
            self.record(self.log, (time.monotonic(), "in", "<invalid json>"))
            await self.error("invalid_json", "Invalid event: failed to parse JSON value.")
            return
        if not isinstance(event, dict):
            self.record(self.log, (time.monotonic(), "in", "<not an object>"))
            await self.error("invalid_event", "Invalid event: expected a JSON object.")
            return
        etype = event.get("type")
        self.record(self.received, event)
        self.record(self.log, (time.monotonic(), "in", str(etype)))
        _LOGGER.debug("in %s", etype)
        client_event_id = event.get("event_id")
        if etype is None:
            await self.error("invalid_event", "The 'type' field is missing.", None, client_event_id)
            return
        events = params.CLIENT_EVENTS[self.dialect]
        if not isinstance(etype, str) or etype not in events:
            allowed = ", ".join(f"'{t}'" for t in events)
            msg = f"Invalid value: '{etype}'. Supported values are: {allowed}."
            await self.error("invalid_value", msg, "type", client_event_id)
            return
        try:
            params.validate(self.dialect, event)  # a refused event changes nothing
            await getattr(self, "_on_" + etype.replace(".", "_"))(event)
        except p.ProtocolError as exc:
            await self.error(exc.code, exc.message, exc.param, client_event_id)

    # --- responses ------------------------------------------------------------------------

    def active_response(self) -> ResponseRun | None:
        """The response in progress (response.done not sent yet), if any."""
        if self._response is None or self._response.done_sent:
            return None
        return self._response

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if (active := self.active_response()) is not None:
            raise p.ProtocolError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        given = (event.get("response") or {}).get("input")
        if given is not None:  # the response sees only its input: an output needs its call there
            referenced = [
                self.items[i["id"]]
                for i in given
                if i.get("type") == "item_reference" and i.get("id") in self.items
            ]
            tools.check_outputs(given, referenced)
        await self.create_response(event.get("response") or {}, event.get("event_id"))

    async def create_response(self, params: dict[str, Any], client_event_id: Any = None) -> None:
        """Start a response (client response.create, or turn detection with ``{}``)."""
        scenario = self.sim.scenario.next_response()
        if scenario.error_code is not None and scenario.error_delivery == "event":
            code = scenario.error_code
            await self.error(code, p.error_message(code), None, client_event_id)
            return
        run = ResponseRun(self, params, scenario)
        self._response = run
        self.vad.idle_from = None  # the idle timeout restarts when this one is done
        run.task = self.spawn(self._run_response(run))

    async def _run_response(self, run: ResponseRun) -> None:
        try:
            await run.run()
        finally:
            if self._response is run:
                self._response = None

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        active = self.active_response()
        wanted = event.get("response_id")
        if active is None or (wanted is not None and wanted != active.id):
            raise p.ProtocolError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        active.cancel()

    async def _on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        """Taken, and nothing to do: over WebSocket the client holds the output audio (the
        buffer and its ``output_audio_buffer.cleared`` are WebRTC/SIP only)."""
