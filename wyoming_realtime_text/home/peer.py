"""Which Home Assistant is asking, as far as home control cares, from the request itself.

HA's Wyoming agent changed what it does with intents between releases, and no event says
which release it is; the event header's `version` (the client's wyoming package) and the
request's context do:

| HA              | wyoming | runs                       | intent `text`     | context          |
|-----------------|---------|----------------------------|-------------------|------------------|
| 2026.x          | 1.10    | intents-start, intent*     | rendered template | device/satellite |
| 2025.7-2025.12  | 1.7     | the first intent; hangs up | spoken literally  | conversation id  |
| <= 2025.6       | < 1.7   | the first intent           | spoken literally  | none             |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MULTI_INTENTS = (1, 9)  # wyoming's intents-start/stop; HA 2026's agent renders templates
CONVERSATIONS = (1, 7)  # HA 2025.7+: a conversation_id on every request


def parse_version(text: Any) -> tuple[int, ...] | None:
    """'1.10.2' -> (1, 10, 2); None for anything else."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text) if isinstance(text, str) else None
    return tuple(int(p) for p in match.groups() if p is not None) if match else None


@dataclass(frozen=True)
class Peer:
    """One agent request's Home Assistant.

    `device`: HA passed the satellite's device (timers can ring on it, "the lights" is its
    area). For a spoken turn, started before HA's agent request says so, HA 2026 is taken
    to pass one (its requests from satellites do); a timer asked without one is refused
    when the request arrives.
    """

    version: tuple[int, ...] | None = None
    device: bool = False
    conversation: bool = False  # follow-ups (and a "yes" to a question) reach the same one

    @classmethod
    def from_request(cls, version: Any, context: dict[str, Any] | None) -> Peer:
        context = context or {}
        parsed = parse_version(version)
        device = bool(context.get("device_id") or context.get("satellite_id"))
        return cls(parsed, device, bool(context.get("conversation_id")))

    @classmethod
    def speaking(cls, version: Any) -> Peer:
        """The HA whose STT request this is, as its agent request will most likely be."""
        parsed = parse_version(version)
        multi = parsed is not None and parsed >= MULTI_INTENTS
        return cls(parsed, multi, parsed is not None and parsed >= CONVERSATIONS)

    @property
    def multi(self) -> bool:
        """Runs several intents per answer, and renders templates in their text."""
        return self.version is not None and self.version >= MULTI_INTENTS
