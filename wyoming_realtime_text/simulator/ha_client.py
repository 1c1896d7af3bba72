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
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.intent import Intent, IntentsStart, IntentsStop, NotRecognized

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


class AgentReader:
    """How Home Assistant's Wyoming agent reads an answer (components/wyoming/conversation.py),
    one event at a time: `take` says when it stops reading.

    `lists` (HA 2026, wyoming 1.9+): intents-start, intent*, intents-stop run together, and an
    `error` ends it (no intents run). Older HA stops at the first `intent`. Both stop at
    handled, not-handled and not-recognized, and skip everything else (handled-start and
    -chunk among it).
    """

    def __init__(self, lists: bool) -> None:
        self.lists = lists
        self.intents: list[Intent] = []
        self.handled: Handled | None = None
        self.not_handled: NotHandled | None = None
        self.error: Error | None = None
        self._listed = False

    def take(self, event: Event) -> bool:
        if Error.is_type(event.type) and self.lists:
            self.error, self.intents = Error.from_event(event), []
            return True
        if IntentsStart.is_type(event.type) and self.lists:
            self._listed = True
        elif Intent.is_type(event.type):
            self.intents.append(Intent.from_event(event))
            return not self._listed
        elif IntentsStop.is_type(event.type):
            return self._listed
        elif Handled.is_type(event.type):
            self.handled = Handled.from_event(event)
            return True
        elif NotHandled.is_type(event.type) or NotRecognized.is_type(event.type):
            self.not_handled = NotHandled(text=event.data.get("text"))
            return True
        return False

    @property
    def spoken(self) -> str:
        """What HA speaks, as far as it is ours to say (an intent's text, before rendering)."""
        if self.handled is not None:
            return self.handled.text or ""
        return "\n".join(i.text for i in self.intents if i.text)
