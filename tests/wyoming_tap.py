"""A recording TCP proxy for Wyoming: what a real client and our server said, byte for byte.

Home Assistant is a black box here: to see what it sends us (the agent request's context,
the STT chunk sizes, the header's version) the test puts this proxy between HA and the
server. It forwards every byte unchanged, in both directions, and parses a copy of each
event (header line, data, payload) into a `Connection` record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TapEvent:
    type: str
    data: dict[str, Any]
    header: dict[str, Any]
    payload_length: int
    at: float  # time.monotonic() when the event had been read whole


@dataclass
class Connection:
    """One client connection: the events each way, in order."""

    opened: float
    sent: list[TapEvent] = field(default_factory=list)  # client → server
    answered: list[TapEvent] = field(default_factory=list)  # server → client
    closed: float | None = None

    def types(self) -> list[str]:
        return [event.type for event in self.sent]

    def first(self, event_type: str) -> TapEvent | None:
        return next((e for e in self.sent if e.type == event_type), None)

    @property
    def kind(self) -> str:
        """What HA opened it for: `stt`, `agent`, `info`, `tts` or `other`."""
        types = set(self.types())
        if "transcribe" in types or "audio-chunk" in types:
            return "stt"
        if "transcript" in types:
            return "agent"
        if types & {"synthesize", "synthesize-start"}:
            return "tts"
        if types == {"describe"}:
            return "info"
        return "other"


async def _read_event(reader: asyncio.StreamReader) -> tuple[bytes, TapEvent] | None:
    """One event's raw bytes and its parsed copy; None at a clean end of stream."""
    line = await reader.readline()
    if not line:
        return None
    header = json.loads(line)
    data_bytes = await reader.readexactly(header.get("data_length") or 0)
    payload = await reader.readexactly(header.get("payload_length") or 0)
    data = dict(header.get("data") or {})
    if data_bytes:
        data.update(json.loads(data_bytes))
    event = TapEvent(header["type"], data, header, len(payload), time.monotonic())
    return line + data_bytes + payload, event


class WyomingTap:
    """Listens on loopback, forwards each connection to ``target_port``, records it."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.connections: list[Connection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> WyomingTap:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def of_kind(self, kind: str, since: int = 0) -> list[Connection]:
        return [c for c in self.connections[since:] if c.kind == kind]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(opened=time.monotonic())
        self.connections.append(conn)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, conn.sent),
                self._pump(up_reader, writer, conn.answered),
            )
        finally:
            conn.closed = time.monotonic()
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: list[TapEvent]
    ) -> None:
        """Copy events until either side ends; then end the other direction too."""
        try:
            while (read := await _read_event(reader)) is not None:
                raw, event = read
                record.append(event)
                writer.write(raw)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, json.JSONDecodeError):
            pass
        finally:
            with contextlib.suppress(OSError):
                if writer.can_write_eof():
                    writer.write_eof()
