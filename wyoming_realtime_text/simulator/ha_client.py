"""A Wyoming connection as a given Home Assistant makes it: from its own address, with the
event headers of the wyoming release that HA pins.

The server tells HA releases apart by the header's `version` (see `home/peer.py`); the tests'
and the bench's stand-ins for HA use this to speak as HA 2025's wyoming 1.7 on a machine
that has 1.10, and to come from a loopback address of their own, as two installs would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.client import AsyncTcpClient

# The wyoming package each Home Assistant release pins (what its event headers say).
WYOMING_OF_HA = {(2026, 1): "1.10.2", (2025, 7): "1.7.2", (2025, 1): "1.5.4"}


def wyoming_of(release: tuple[int, int]) -> str:
    """The wyoming version HA `release` (year, month) speaks."""
    return next(v for since, v in WYOMING_OF_HA.items() if release >= since)


class VersionedWriter:
    """A stream writer whose event headers name another wyoming version.

    wyoming writes each event's header line with one `writelines` call; only its `version`
    field is changed here (the framing stays wyoming's).
    """

    def __init__(self, writer: asyncio.StreamWriter, version: str) -> None:
        self._writer = writer
        self._version = version

    def writelines(self, lines: Any) -> None:
        header, *rest = lines
        fields = json.loads(header)
        fields["version"] = self._version
        self._writer.writelines((json.dumps(fields, ensure_ascii=False).encode(), *rest))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class TcpClientFrom(AsyncTcpClient):
    """wyoming's TCP client, connecting from a given local address; `version`: the wyoming
    version its event headers name (None: this machine's)."""

    def __init__(self, local: str, host: str, port: int, version: str | None = None) -> None:
        super().__init__(host, port)
        self.local = local
        self.version = version

    async def connect(self) -> None:
        local = (self.local, 0)
        self._reader, writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        self._writer = VersionedWriter(writer, self.version) if self.version else writer  # type: ignore[assignment]
