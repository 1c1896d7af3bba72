"""One request's share of what reached the Realtime simulator and the Wyoming tap.

The real-HA modules (test_real_ha.py, test_real_ha_home_control.py) make requests through
real Home Assistant and then ask what our server did for each: which sessions it used, what
it sent them, what was committed, which Wyoming connections HA opened. A `Window` counts
from its opening to a moment after the request (SETTLE_SECONDS), so that what our server
still does for a request (a late `response.create`, a cancel) is counted with it and not
with the next one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from wyoming_tap import Connection, WyomingTap

from wyoming_realtime_text.simulator import RealtimeSimulator, SimConnection

SETTLE_SECONDS = 0.5  # after a request, for what our server still does for it


@dataclass
class Window:
    sim: RealtimeSimulator
    tap: WyomingTap
    start: dict[int, tuple[int, int]]  # id(connection) -> (received, commits) at the start
    tap_start: int
    end: dict[int, tuple[int, int]] | None = None
    tap_end: int | None = None

    @classmethod
    def open(cls, sim: RealtimeSimulator, tap: WyomingTap) -> Window:
        return cls(sim, tap, _counts(sim), len(tap.connections))

    async def close(self) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        self.end, self.tap_end = _counts(self.sim), len(self.tap.connections)

    def _span(self, conn: SimConnection, which: int) -> slice:
        assert self.end is not None, "window still open"
        start = self.start.get(id(conn), (0, 0))[which]
        return slice(start, self.end[id(conn)][which])

    def _connections(self) -> list[SimConnection]:
        assert self.end is not None, "window still open"
        return [conn for conn in self.sim.connections if id(conn) in self.end]

    def sim_events(self) -> list[tuple[SimConnection, dict[str, Any]]]:
        """Client events that reached the simulator in the window, with their connection."""
        return [
            (conn, event)
            for conn in self._connections()
            for event in conn.received[self._span(conn, 0)]
        ]

    def count(self, event_type: str) -> int:
        return sum(1 for _, event in self.sim_events() if event["type"] == event_type)

    def creates(self) -> list[dict[str, Any]]:
        return [event for _, event in self.sim_events() if event["type"] == "response.create"]

    def commits(self) -> list[tuple[SimConnection, bytes]]:
        """The audio committed in the window, by our `commit` or the API's turn detection."""
        return [
            (conn, audio)
            for conn in self._connections()
            for audio in conn.commits[self._span(conn, 1)]
        ]

    def heard(self) -> SimConnection:
        """The one Realtime session that had the request's words committed."""
        sessions = {id(conn): conn for conn, _ in self.commits()}
        assert len(sessions) == 1, [e["type"] for _, e in self.sim_events()]
        return next(iter(sessions.values()))

    def texts(self, conn: SimConnection | None = None) -> list[str]:
        """Texts our server put into a session (`conversation.item.create`) in the window."""
        return [
            part.get("text")
            for c, event in self.sim_events()
            if event["type"] == "conversation.item.create" and conn in (None, c)
            for part in event["item"]["content"]
        ]

    def offered(self) -> set[str]:
        """The tools the window's responses were offered."""
        return {
            tool["name"]
            for event in self.creates()
            for tool in (event.get("response") or {}).get("tools") or []
        }

    def instructions(self) -> list[str]:
        """The instructions each of the window's responses was given (the home's overview
        is in them when our server knows the home)."""
        return [(event.get("response") or {}).get("instructions") or "" for event in self.creates()]

    def upstream(self) -> list[str]:
        """The event types our server sent upstream, without the audio appends."""
        return [
            event["type"]
            for _, event in self.sim_events()
            if event["type"] != "input_audio_buffer.append"
        ]

    def tap_connections(self, kind: str) -> list[Connection]:
        return [c for c in self.tap.connections[self.tap_start : self.tap_end] if c.kind == kind]


def _counts(sim: RealtimeSimulator) -> dict[int, tuple[int, int]]:
    return {id(conn): (len(conn.received), len(conn.commits)) for conn in sim.connections}
