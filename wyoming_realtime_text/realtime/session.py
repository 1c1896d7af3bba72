"""One WebSocket to the Realtime API, configured for text only.

This is where model audio stops: audio deltas are recognised from the first bytes of the
raw message, counted and dropped without being parsed, decoded or kept. Everything above
this module sees only text and a count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import itertools
import json
import logging
import re
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from .. import __version__
from ..config import RealtimeSettings, redact_url
from .dialect import (
    AUDIO_DELTA_TYPES,
    BETA,
    DIALECTS,
    GA,
    Dialect,
    function_call_item,
    function_output_item,
    parse,
    user_text_item,
)
from .events import (
    BETA_REFUSED,
    FunctionCall,
    ItemAdded,
    RealtimeError,
    RealtimeEvent,
    ResponseDone,
    SessionUpdated,
    TextDelta,
    TextDone,
    UpstreamError,
)
from .health import UPSTREAM

_LOGGER = logging.getLogger(__name__)
_TYPE_HEAD = re.compile(r'"type"\s*:\s*"([^"]+)"')
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
BETA_CLOSE_CODE = 4000  # with the reason invalid_request_error.beta_api_shape_disabled


def session_url(settings: RealtimeSettings) -> str:
    """The configured URL with ?model= added, unless it already names a model or deployment."""
    parts = urlparse(settings.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if settings.model and not any(k in ("model", "deployment") for k, _ in query):
        query.append(("model", settings.model))
    return urlunparse(parts._replace(query=urlencode(query)))


def auth_headers(settings: RealtimeSettings) -> dict[str, str]:
    """Bearer for OpenAI and compatible servers, api-key for Azure (or as configured)."""
    auth = settings.auth
    if auth == "auto":
        host = urlparse(settings.url).hostname or ""
        auth = "api-key" if host.endswith(".azure.com") else "bearer"
    if auth == "api-key":
        return {"api-key": settings.api_key}
    return {"Authorization": f"Bearer {settings.api_key}"}


class DialectChoice:
    """The dialect this server's sessions speak: the configured one, until beta is refused.

    api.openai.com shut the beta interface down (May 2026): a beta handshake gets one error
    `beta_api_shape_disabled` and a close 4000. Asking again in beta would fail the same way
    forever, so the first refusal moves every session after it to GA, with one warning.
    Until a beta session has opened or been refused, beta sessions open one at a time: a burst
    of them (both warm pools at start-up, several clients at once) costs one refused
    handshake, not one each. Shared by every pool of one server (one API, one answer).
    """

    def __init__(self, configured: str) -> None:
        self.current: Dialect = DIALECTS[configured]
        self.settled = self.current is not BETA  # GA needs no finding out
        self.lock = asyncio.Lock()

    def beta_works(self) -> None:
        self.settled = True

    def beta_refused(self) -> None:
        if self.current is BETA:
            _LOGGER.warning(
                "The Realtime API refused the beta interface (%s): using GA from now on. "
                "Set realtime.dialect: ga in the config (beta is for compatible servers only)",
                BETA_REFUSED,
            )
        self.current, self.settled = GA, True


@dataclasses.dataclass(frozen=True)
class History:
    """One remembered turn, as a new session is told it (`RealtimeSession.add_history`)."""

    user: str
    answer: str  # what the user was told ("" for none)
    calls: Sequence[tuple[FunctionCall, str]] = ()  # each call and its function output


class RealtimeSession:
    """A configured, text-only Realtime session: send requests, receive parsed events."""

    def __init__(
        self,
        settings: RealtimeSettings,
        *,
        language: str | None = None,
        languages: tuple[str, ...] = (),
        turn_detection: dict[str, Any] | None = None,
        dialect: DialectChoice | None = None,
    ) -> None:
        self.settings = settings
        self.turn_detection = turn_detection
        self._choice = dialect or DialectChoice(settings.dialect)
        self.dialect = self._choice.current
        self.language = language
        self.languages = languages  # what users may speak: a hint for the transcription model
        self.audio_deltas_dropped = 0
        self.text_only_confirmed = False
        self.opened_at = 0.0
        self.expired = False  # the API said `session_expired`; its close frame may lag
        self._abandoned: set[str] = set()  # cancelled responses whose events nobody reads
        self._ws: ClientConnection | None = None
        self._corked = False
        self._lost_seen = False

    @property
    def is_open(self) -> bool:
        return self._ws is not None and self._ws.close_code is None and not self.expired

    async def open(self) -> None:
        """Connect, configure text-only and wait for the server to confirm it."""
        try:
            await self._open_in_dialect()
        except RealtimeError as err:
            UPSTREAM.unreachable(err)
            raise
        UPSTREAM.opened(self)

    async def _open_in_dialect(self) -> None:
        """Open in the server's dialect; beta refused: at once again in GA (see DialectChoice)."""
        choice = self._choice
        if not choice.settled:
            async with choice.lock:
                if not choice.settled:
                    self.dialect = choice.current
                    try:
                        await self._open()
                    except RealtimeError as err:
                        if err.code != BETA_REFUSED:
                            raise
                        choice.beta_refused()
                    else:
                        choice.beta_works()
                        return
        self.dialect = choice.current
        await self._open()

    async def _open(self) -> None:
        url = session_url(self.settings)
        headers = {**auth_headers(self.settings), **self.dialect.headers}
        opened = False
        self._lost_seen = False
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                self._ws = await connect(
                    url,
                    additional_headers=headers,
                    user_agent_header=f"wyoming-realtime-text/{__version__}",
                    max_size=MAX_MESSAGE_BYTES,
                    open_timeout=None,
                    # Base64 audio barely compresses; deflating it cost ~20% of the CPU
                    # at 200 streams (py-spy).
                    compression=None,
                )
                _LOGGER.debug("Connected to %s (%s dialect)", redact_url(url), self.dialect.name)
                await self.send(
                    self.dialect.session_update(
                        self.settings, self.language, self.languages, self.turn_detection
                    )
                )
                await self._await_session_updated()
            opened = True
            self.opened_at = time.monotonic()
        except InvalidStatus as err:
            status = err.response.status_code
            raise RealtimeError(f"http_{status}", _http_message(status)) from None
        except TimeoutError:
            message = "the Realtime API did not answer in time"
            raise RealtimeError("connect_timeout", message) from None
        except (OSError, WebSocketException) as err:
            raise RealtimeError("connect_failed", f"cannot reach the Realtime API: {err}") from None
        finally:
            if not opened:  # failed or cancelled half-way: never leave a socket behind
                await asyncio.shield(self.close())

    async def _await_session_updated(self) -> None:
        while True:
            event = await self.receive()
            if isinstance(event, SessionUpdated):
                self.text_only_confirmed = event.text_only
                if not event.text_only:
                    _LOGGER.warning(
                        "The Realtime API did not confirm text-only output (it says %s); "
                        "any audio it sends is dropped",
                        list(event.modalities),
                    )
                return
            if isinstance(event, UpstreamError):
                if event.fatal or event.code == BETA_REFUSED:
                    raise RealtimeError(event.code, event.message)
                _LOGGER.warning(
                    "The Realtime API rejected our session settings (%s: %s); check "
                    "realtime.dialect matches the model. Audio it sends is dropped",
                    event.code,
                    event.message,
                )
                return

    async def send(self, event: dict[str, Any]) -> None:
        await self._send_text(json.dumps(event, ensure_ascii=False))

    async def _send_text(self, message: str) -> None:
        if self._ws is None:
            raise RealtimeError("closed", "the Realtime session is not open")
        try:
            await self._ws.send(message)
        except ConnectionClosed as err:
            raise self._lost(err) from None

    def hold(self) -> None:
        """Keep what is sent next in the kernel until `release()` (TCP_CORK).

        The end of the user's audio, the commit and response.create then leave as one TCP
        segment: the API reads them in one go instead of waking up for each.
        """
        self._cork(True)

    def release(self) -> None:
        """Send what `hold()` kept, now."""
        self._cork(False)

    def _cork(self, on: bool) -> None:
        if self._corked is on or self._ws is None or not hasattr(socket, "TCP_CORK"):
            return
        sock = self._ws.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
                self._corked = on

    async def append_audio(self, pcm16: bytes) -> None:
        """Send pcm16 24 kHz mono audio of the user's speech."""
        if pcm16:
            # Written out, not json.dumps'd: base64 needs no escaping, and scanning its ~2.6 KB
            # per 20 ms chunk was ~6% of the server's CPU at 200 streams (py-spy).
            audio = base64.b64encode(pcm16).decode("ascii")
            await self._send_text(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}')

    async def set_language(self, language: str) -> None:
        """Tell a warm session the language of the speech to come (transcription hint)."""
        if language != self.language:
            self.language = language
            model = self.settings.transcription_model
            await self.send(self.dialect.transcription_update(model, language, self.languages))

    async def add_history(self, turns: Sequence[History]) -> list[list[str | None]]:
        """Re-seed earlier turns into a new session; each turn's new item ids, in order.

        A turn is the user's words, the calls the answer made with what became of each (so
        that "turn it off again" still knows what "it" is), and what the user was told.
        Waits until the API has added them all, so that their confirmations never reach the
        next turn (which would take a re-seeded user item for its own). None where an item
        was refused.
        """
        counts = []
        for turn in turns:
            items = [user_text_item(turn.user)]
            for call, output in turn.calls:
                # Its old id and position died with the old session: appended, in order.
                items.append(function_call_item(call))
                items.append(function_output_item(dataclasses.replace(call, item_id=""), output))
            if turn.answer:
                items.append(self.dialect.assistant_text_item(turn.answer))
            for item in items:
                await self.send(item)
            counts.append(len(items))
        ids: list[str | None] = []
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                while len(ids) < sum(counts):
                    event = await self.receive()
                    if isinstance(event, ItemAdded):
                        ids.append(event.item_id)
                    elif isinstance(event, UpstreamError):
                        _LOGGER.warning("Re-seeding a turn failed: %s", event.message)
                        ids.append(None)
        except TimeoutError:
            message = "the Realtime API did not answer in time"
            raise RealtimeError("connect_timeout", message) from None
        ends = list(itertools.accumulate(counts))
        return [ids[end - count : end] for end, count in zip(ends, counts, strict=True)]

    async def clear_audio(self) -> None:
        await self.send({"type": "input_audio_buffer.clear"})

    async def commit(self) -> None:
        await self.send({"type": "input_audio_buffer.commit"})

    async def create_response(
        self, tools: Sequence[dict[str, Any]] = (), instructions: str | None = None
    ) -> None:
        tokens = self.settings.max_output_tokens
        await self.send(self.dialect.response_create(tokens, tools, instructions))

    async def add_function_output(
        self, call: FunctionCall, output: str, item_id: str | None = None
    ) -> None:
        """Tell the model what became of `call` (no response: it speaks of it next turn)."""
        await self.send(function_output_item(call, output, item_id))

    async def add_user_text(self, text: str) -> None:
        await self.send(user_text_item(text))

    async def cancel_response(self, response_id: str | None = None) -> None:
        """Cancel the running response; the rest of `response_id`'s events are skipped.

        The turn that asked for it has stopped reading: without this, its late
        `response.done` (cancelled) would end the next turn on this session.
        """
        if response_id:
            self._abandoned.add(response_id)
        await self.send({"type": "response.cancel"})

    async def delete_item(self, item_id: str) -> None:
        await self.send({"type": "conversation.item.delete", "item_id": item_id})

    async def receive(self) -> RealtimeEvent:
        """The next event we care about; raises RealtimeError when the session ends."""
        if self._ws is None:
            raise RealtimeError("closed", "the Realtime session is not open")
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed as err:
                raise self._lost(err) from None
            if isinstance(message, bytes):
                continue
            head = _TYPE_HEAD.search(message, 0, 256)
            kind = head.group(1) if head else ""
            if kind in AUDIO_DELTA_TYPES:
                self.audio_deltas_dropped += 1
                continue
            try:
                data = json.loads(message)
            except ValueError:
                _LOGGER.warning("Ignoring a message from the Realtime API that is not JSON")
                continue
            event = parse(data) if isinstance(data, dict) else None
            if isinstance(event, UpstreamError | ResponseDone):
                UPSTREAM.heard(event)
            if isinstance(event, UpstreamError) and event.code == "session_expired":
                self.expired = True
            if event is not None and not self._abandoned_event(event):
                _LOGGER.debug("Realtime event %s", kind)
                return event

    def _abandoned_event(self, event: RealtimeEvent) -> bool:
        """Part of a response cancelled by a turn that left (forgotten at its done)."""
        if not isinstance(event, TextDelta | TextDone | ResponseDone):
            return False
        if event.response_id not in self._abandoned:
            return False
        if isinstance(event, ResponseDone):
            self._abandoned.discard(event.response_id)
        return True

    def _lost(self, err: ConnectionClosed) -> RealtimeError:
        """The connection ended: counted upstream once, unless we were closing it."""
        error = _closed_error(err)
        if self._ws is not None and not self._lost_seen:
            self._lost_seen = True
            UPSTREAM.lost(error.message)
        return error

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                async with asyncio.timeout(2):
                    await ws.close()
            except (TimeoutError, OSError, WebSocketException):
                pass


def _http_message(status: int) -> str:
    if status in (401, 403):
        return f"the Realtime API refused the API key (HTTP {status}); check realtime.api_key"
    return f"the Realtime API answered HTTP {status}"


def _closed_error(err: ConnectionClosed) -> RealtimeError:
    frame = err.rcvd
    code = frame.code if frame else 1006
    reason = frame.reason if frame and frame.reason else "connection lost"
    message = f"the Realtime API closed the session ({code}: {reason})"
    if code == BETA_CLOSE_CODE and BETA_REFUSED in reason:  # its error event went unread
        return RealtimeError(BETA_REFUSED, message)
    return RealtimeError("closed", message)
