"""Limits that keep one client from hanging the server or exhausting it.

Every Wyoming connection passes through here: at most `server.max_connections` at once;
each event parsed by the `wyoming` package itself, from a stream whose sizes are bounded by
`server.max_frame_bytes`; a connection closed when it stalls mid-utterance
(`audio.stall_seconds`), sends nothing while nothing is in progress for it, or reads
nothing of what it is sent (`server.idle_timeout`, both); and on shutdown, answers in
progress get `server.shutdown_grace` seconds before every connection is closed. A client
that breaks a rule gets one Wyoming `error` event saying which, and is closed; nobody else
notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.server import AsyncEventHandler

from .config import ServerSettings, Settings

_LOGGER = logging.getLogger(__name__)
MALFORMED = (
    'not a Wyoming event: expected a line of JSON (an object with a "type"), '
    "then the data and payload it announces"
)
# After the grace: how long closed connections get to cancel their turns upstream.
CLOSE_SECONDS = 2.0
# A signal this soon after the one that began the shutdown is that one delivered twice
# (`timeout` forwarding it, `pkill -f` matching a wrapper too, a process-group kill).
REPEAT_SECONDS = 0.5


class ClientFault(Exception):
    """A client broke the protocol or a limit: it is told so in an error event and closed.

    Not a ValueError: wyoming's reader takes those for the end of the stream.
    """

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def event(self) -> Event:
        return Error(text=self.text, code=self.code).event()


def peer(writer: asyncio.StreamWriter) -> str:
    """The client's address for log lines."""
    name = writer.get_extra_info("peername")
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else "local client"


def _unfinished(tasks: Collection[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    return [task for task in tasks if not task.done()]


class FrameGuard:
    """The connection's reader as wyoming's `async_read_event` sees it, with sizes bounded.

    wyoming does the framing (a header line, then exactly `data_length` and `payload_length`
    bytes); this only refuses a length over the limit before a byte of it is read, and turns
    a header line over the StreamReader's limit (see `Connections.listen`) into a fault.
    """

    def __init__(self, reader: asyncio.StreamReader, max_bytes: int) -> None:
        self._reader = reader
        self.max_bytes = max_bytes
        self._line = b""

    async def readline(self) -> bytes:
        try:
            self._line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as err:
            self._line = err.partial  # the end of the stream, as StreamReader.readline has it
        except asyncio.LimitOverrunError:
            raise ClientFault(
                f"event header longer than {self.max_bytes} bytes (server.max_frame_bytes)",
                "event-too-large",
            ) from None
        return self._line

    async def readexactly(self, count: int) -> bytes:
        if not isinstance(count, int):
            raise ClientFault(MALFORMED, "malformed-event")
        if count > self.max_bytes:
            raise ClientFault(
                f"event announcing {count} bytes of data or payload; at most {self.max_bytes} "
                "are accepted (server.max_frame_bytes)",
                "event-too-large",
            )
        return await self._reader.readexactly(count)

    def header_version(self) -> str | None:
        """The `version` in the last event's header: the client's wyoming package.

        wyoming's Event drops it; Home Assistant's releases differ in what they do with our
        answers, and this is how to tell them apart (see `home/peer.py`). Read only for the
        few events that need it, not for every audio chunk.
        """
        try:
            version = json.loads(self._line).get("version")
        except (ValueError, AttributeError):
            return None
        return version if isinstance(version, str) else None

    async def read_event(self) -> Event | None:
        """The next event; None at the end of the stream; a ClientFault for a bad frame."""
        self._line = b""
        try:
            event = await async_read_event(cast(asyncio.StreamReader, self))
        except (AttributeError, KeyError, TypeError, RecursionError):
            # A header that is JSON but not an event: not an object, no "type", odd lengths;
            # or JSON nested deeper than the decoder goes.
            raise ClientFault(MALFORMED, "malformed-event") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None  # the client left in the middle of an event
        if event is None and self._line:
            raise ClientFault(MALFORMED, "malformed-event")  # wyoming's None for bad JSON
        if event is not None and not isinstance(event.data, dict):
            raise ClientFault(MALFORMED, "malformed-event")  # "data": null, a list, a number
        return event


class WriteGuard:
    """The connection's writer as wyoming's `async_write_event` sees it, with waits bounded.

    wyoming frames and writes; this only bounds `drain()`, which waits while the client is
    not reading and our buffer is full: after `seconds` of that the connection is dropped
    (and a ConnectionError raised), so a client that never reads cannot hold a task, an
    answer and a socket forever. The bound is armed only when the buffer is over its high
    mark, i.e. only when drain() would wait at all.
    """

    def __init__(self, writer: asyncio.StreamWriter, seconds: float, client: str) -> None:
        self._writer = writer
        self.seconds = seconds
        self.client = client

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self._writer.writelines(data)

    async def drain(self) -> None:
        transport = self._writer.transport
        if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
            await self._writer.drain()  # not paused: returns without waiting
            return
        try:
            async with asyncio.timeout(self.seconds):
                await self._writer.drain()
        except TimeoutError:
            _LOGGER.info(
                "%s: read nothing of our last %d bytes for %g s (server.idle_timeout); "
                "closing the connection",
                self.client,
                transport.get_write_buffer_size(),
                self.seconds,
            )
            transport.abort()
            raise ConnectionResetError("the client stopped reading") from None


class GuardedHandler(AsyncEventHandler):
    """wyoming's read loop with the limits applied; subclasses route the events.

    Waiting for the client's next event is bounded by what it owes: mid-utterance (more
    audio) `audio.stall_seconds`, otherwise `server.idle_timeout`, counted from its last
    event or from the moment the server last finished something for it; while the server
    is still answering it, no bound at all (that time is the server's, not the client's).
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: Settings
    ) -> None:
        super().__init__(reader, writer)
        self.client = peer(writer)
        self.guard = FrameGuard(reader, settings.server.max_frame_bytes)
        self._out = WriteGuard(writer, settings.server.idle_timeout, self.client)
        self.idle_timeout = settings.server.idle_timeout
        self.stall_seconds = settings.audio.stall_seconds

    async def write_event(self, event: Event) -> None:
        """Send `event`; a client that reads nothing for server.idle_timeout is dropped."""
        await async_write_event(event, cast(asyncio.StreamWriter, self._out))

    def streaming(self) -> bool:
        """Mid-utterance: the client owes more audio, so its silence is a stall."""
        return False

    def pending(self) -> Collection[asyncio.Task[Any]]:
        """Work in progress for this client; its silence meanwhile is not idleness."""
        return ()

    def quiet(self) -> bool:
        """Nothing in progress for this client: closing it now loses nothing."""
        return not self.streaming() and not _unfinished(self.pending())

    async def run(self) -> None:
        """Read and handle events until the client leaves, breaks a rule or goes quiet."""
        watchdog = _Watchdog(self)
        try:
            while (event := await self._next_event(watchdog)) is not None:
                if not await self._handle(event):
                    break
        except ClientFault as fault:
            _LOGGER.warning("%s: %s; closing the connection", self.client, fault.text)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.write_event(fault.event())
        except ConnectionError as err:
            _LOGGER.debug("%s: connection lost: %s", self.client, err)
        finally:
            watchdog.close()
            await self.disconnect()
            self.writer.close()

    async def _handle(self, event: Event) -> bool:
        try:
            return await self.handle_event(event)
        except (KeyError, TypeError, ValueError) as err:
            # A well-framed event whose data wyoming cannot decode (no rate, text as a list).
            _LOGGER.debug("%s: cannot decode %s", self.client, event.type, exc_info=True)
            text = f"malformed {event.type} event: {err.__class__.__name__} {err}"
            raise ClientFault(text[:200], "malformed-event") from err

    async def _next_event(self, watchdog: _Watchdog) -> Event | None:
        """The client's next event; None when it has left or has been quiet too long."""
        watchdog.reading()
        try:
            return await self.guard.read_event()
        except _QuietTooLong:
            return self._quiet_too_long(watchdog.stalled)
        finally:
            watchdog.reading_ended()

    def _quiet_too_long(self, streaming: bool) -> None:
        if streaming:
            raise ClientFault(
                f"no audio for {self.stall_seconds:g} s in the middle of an utterance "
                "(audio.stall_seconds): the utterance is dropped",
                "audio-stalled",
            )
        _LOGGER.info(
            "%s: nothing sent for %g s (server.idle_timeout); closing the connection",
            self.client,
            self.idle_timeout,
        )


class _QuietTooLong(Exception):
    """Put into a connection's reader by its watchdog: the wait for the client is over."""


class _Watchdog:
    """How long the client may keep the server waiting: one timer per connection.

    A read only notes when it began; the timer, when it fires, works out what the client
    owed since then (more audio: the stall limit; otherwise the idle limit; nothing while
    the server works for it, whose end restarts the clock) and either ends the read with
    `_QuietTooLong` or sleeps on. A deadline re-armed per read cost ~10% of the server's
    CPU at 200 streams, as audio comes 50 times a second from every client.
    """

    def __init__(self, handler: GuardedHandler) -> None:
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.since = self.loop.time()  # the client owes its next event from here
        self.stalled = False  # the limit that ran out was the stall limit
        self._in_read = False
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf
        self._watched: set[asyncio.Task[Any]] = set()

    def reading(self) -> None:
        """A read starts: the client owes the next event from now."""
        self._in_read = True
        self.since = now = self.loop.time()
        if not self.handler.streaming():
            self._check()  # the limit may have changed: work started or ended, audio ended
        elif self._due > now + self.handler.stall_seconds:
            self._schedule(now + self.handler.stall_seconds)  # audio started

    def reading_ended(self) -> None:
        self._in_read = False

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._due, self._timer = when, self.loop.call_at(when, self._check)

    def _check(self) -> None:
        """Close the read if the client has been quiet too long; else wake when it could be."""
        if self._timer is not None:
            self._timer.cancel()
        self._due, self._timer = math.inf, None
        handler = self.handler
        streaming = handler.streaming()
        busy = _unfinished(handler.pending())
        if busy and not streaming:
            for task in set(busy) - self._watched:  # the server's time, not the client's
                self._watched.add(task)
                task.add_done_callback(self._work_done)
            return
        if not self._in_read:
            return  # handling the client's last event: the next read re-arms
        due = self.since + (handler.stall_seconds if streaming else handler.idle_timeout)
        if self.loop.time() < due:
            self._schedule(due)
            return
        self.stalled = streaming
        handler.reader.set_exception(_QuietTooLong())

    def _work_done(self, task: asyncio.Task[Any]) -> None:
        """Work for the client ended: its clock starts now."""
        self._watched.discard(task)
        self.since = max(self.since, self.loop.time())
        self._check()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        for task in self._watched:
            task.remove_done_callback(self._work_done)
        self._watched.clear()


class StopSignals:
    """SIGTERM/SIGINT: the first asks for a graceful stop (`stop`), a later one for a quick
    one (`hurry`: the grace ends at once; Ctrl+C twice). The same signal delivered twice
    within REPEAT_SECONDS counts once."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()
        self._first: float | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.received)

    def received(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._first is None:
            self._first = now
            self.stop.set()
        elif now - self._first < REPEAT_SECONDS:
            _LOGGER.debug("The stop signal again at once: taken as the same one")
        elif not self.hurry.is_set():
            _LOGGER.info("Second signal: closing the remaining clients now")
            self.hurry.set()


HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter], GuardedHandler]


class Connections:
    """The server's listening socket and live connections: how many, and their shutdown."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._live: dict[GuardedHandler, asyncio.Task[Any]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._factory: HandlerFactory | None = None

    async def listen(self, factory: HandlerFactory) -> None:
        """Accept clients at server.uri (tcp:// or unix://)."""
        await self.bind()
        await self.start_serving(factory)

    async def bind(self) -> None:
        """Take server.uri's address, accepting no one yet: OSError when it is taken.

        Start-up binds first, so that a port in use stops it before anything else is
        started or logged; start_serving() accepts clients once all is ready.

        asyncio's server rather than wyoming's, for two things wyoming's does not offer: the
        StreamReader limit that bounds header lines, and closing the listening socket
        without closing the connections (wyoming's also stops every handler on SIGTERM).
        """
        uri = urlparse(self.settings.uri)
        limit = self.settings.max_frame_bytes
        if uri.scheme == "unix":
            self._remove_socket()  # a stale socket file from an earlier run
            self._server = await asyncio.start_unix_server(
                self._accept, uri.path, limit=limit, start_serving=False
            )
        else:
            self._server = await asyncio.start_server(
                self._accept, uri.hostname, uri.port, limit=limit, start_serving=False
            )

    async def start_serving(self, factory: HandlerFactory) -> None:
        """Accept clients at the address bind() took, each served by a `factory` handler."""
        assert self._server is not None, "bind() first"
        self._factory = factory
        await self._server.start_serving()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._live) >= self.settings.max_connections:
            await self._refuse(writer)
            return
        assert self._factory is not None  # start_serving() set it before the first client
        handler = self._factory(reader, writer)
        self._live[handler] = cast(asyncio.Task[Any], asyncio.current_task())
        try:
            await handler.run()
        except Exception:
            _LOGGER.exception("%s: the connection failed", handler.client)
        finally:
            del self._live[handler]

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """One client too many: told so and closed, without a handler or a byte read."""
        fault = ClientFault(
            f"the server already serves {len(self._live)} clients (server.max_connections); "
            "try again later",
            "too-many-connections",
        )
        _LOGGER.warning("%s: refused: %s", peer(writer), fault.text)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await async_write_event(fault.event(), writer)
        writer.close()

    def _remove_socket(self) -> None:
        uri = urlparse(self.settings.uri)
        if uri.scheme == "unix":
            Path(uri.path).unlink(missing_ok=True)

    async def shutdown(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Stop accepting; let work in progress finish for up to `grace` s; close everything.

        A connection is closed as soon as nothing is in progress for it, so idle clients
        never hold the shutdown up; those still busy at the deadline (or once `hurry` is
        set) are closed then, which cancels their turns upstream.
        """
        if self._server is not None:
            self._server.close()
            self._remove_socket()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if busy := sum(not handler.quiet() for handler in self._live):
            _LOGGER.info("Letting %d client(s) finish, for up to %g s", busy, grace)
        hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
        while self._live and not hurried.done() and (remaining := deadline - loop.time()) > 0:
            for handler in [h for h in self._live if h.quiet()]:
                await handler.stop()
            work = [task for handler in self._live for task in handler.pending()]
            waits = {hurried, *self._live.values(), *_unfinished(work)}
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        if self._live:
            _LOGGER.warning("Closing %d client(s) still busy after %g s", len(self._live), grace)
        for handler in list(self._live):
            await handler.stop()
        tasks = list(self._live.values())
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
