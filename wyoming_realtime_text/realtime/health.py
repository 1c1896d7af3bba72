"""How the Realtime API is doing, as /healthz and /metrics tell it.

Sessions report here as they open or fail to, lose their connection, hear an error event or
finish a response; the live page's activity reports how each turn ended. Healthy means the
last attempt upstream (a session opened, a turn answered) did not fail: a fault shows at
once, and the first success after it clears it. Each error is counted once, where it is
first seen. One process talks to one API, so there is one `UPSTREAM`.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .events import (
    CONVERSATION_CLOSED,
    FATAL_CODES,
    RealtimeError,
    ResponseDone,
    UpstreamError,
)

if TYPE_CHECKING:
    from .session import RealtimeSession

MAX_CODE = 64  # an error code becomes a metric label: keep whatever the API sends short
# A failed open with these codes was counted already: as the error event that refused the
# key, or as the lost connection.
_COUNTED_AS_SEEN = FATAL_CODES | {"closed"}


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    at: float  # wall clock


class UpstreamHealth:
    """The last success and failure upstream, errors by code, and the sessions open now."""

    def __init__(self) -> None:
        self.ok_at: float | None = None
        self.failure: Failure | None = None
        self.failing = False  # the last attempt failed (not timestamps: clocks jump)
        self.errors: Counter[str] = Counter()
        self._messages: dict[str, str] = {}  # the last message of each code, for /healthz
        self._sessions: weakref.WeakSet[RealtimeSession] = weakref.WeakSet()

    @property
    def healthy(self) -> bool:
        """No failure yet, or a success since the last one."""
        return not self.failing

    @property
    def open_sessions(self) -> int:
        return sum(session.is_open for session in list(self._sessions))

    # -- reports from sessions ------------------------------------------------------------

    def opened(self, session: RealtimeSession) -> None:
        self._sessions.add(session)
        self._ok()

    def unreachable(self, err: RealtimeError) -> None:
        """A session could not be opened (refused, unreachable, timed out)."""
        if err.code not in _COUNTED_AS_SEEN:
            self.count(err.code, err.message)
        self._fail(err.code)

    def lost(self, message: str) -> None:
        """An open session's connection ended without our asking."""
        self.count("closed", message)

    def heard(self, event: UpstreamError | ResponseDone) -> None:
        """Error events and failed responses are counted; a finished answer is a success."""
        if isinstance(event, UpstreamError):
            self.count(event.code, event.message)
        elif event.status == "failed":
            self.count(event.error_code or "failed", event.error or "the response failed")
        elif event.status in ("completed", "incomplete"):
            self._ok()

    # -- reports from turns ---------------------------------------------------------------

    def turn_ended(self, outcome: str, reason: str | None) -> None:
        """An answered turn is a success; one that fell back (error, timeout) a failure.

        A fallback for a reason of our own (its conversation was closed) is neither.
        """
        if outcome in ("completed", "incomplete"):
            self._ok()
        elif outcome == "fallback" and reason != CONVERSATION_CLOSED:
            code = reason or "fallback"
            if code == "timeout":  # no event says so: the API just went quiet
                self.count(code, "no complete answer within realtime.response_timeout")
            self._fail(code)

    # -- state ----------------------------------------------------------------------------

    def count(self, code: str, message: str) -> None:
        code = code[:MAX_CODE]
        self.errors[code] += 1
        self._messages[code] = message[:300]

    def report(self, secret: str) -> dict[str, Any]:
        """The /healthz body; `secret` (the API key) is masked should a message quote it."""
        failure = self.failure
        last_error = None
        if failure is not None:
            message = failure.message.replace(secret, "***") if secret else failure.message
            last_error = {"code": failure.code, "message": message, "at": _iso(failure.at)}
        return {
            "healthy": self.healthy,
            "last_ok": _iso(self.ok_at) if self.ok_at is not None else None,
            "last_error": last_error,
            "open_sessions": self.open_sessions,
        }

    def _ok(self) -> None:
        self.ok_at = time.time()
        self.failing = False

    def _fail(self, code: str) -> None:
        code = code[:MAX_CODE]
        message = self._messages.get(code, "the turn got no answer")
        self.failure = Failure(code, message, time.time())
        self.failing = True


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


UPSTREAM = UpstreamHealth()
