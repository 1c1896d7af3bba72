"""When a turn that failed upstream is tried again, and how long it waits first.

The user is waiting for the answer, so a retry must be likely to help and must fit in the
turn's time (`realtime.response_timeout` from the end of speech):

- a lost connection or an expired session: once, at once, in a new session;
- a rate limit, a server error (5xx) or a connection refused or cut before the session
  opened (`connect_failed`: a network hiccup, a restarting proxy): after
  `realtime.retry_backoff` seconds, doubling each time, with jitter so that clients hit by
  the same limit do not return in step;
- a refused key or account (`invalid_api_key`, `insufficient_quota`, `account_deactivated`,
  HTTP 401/403), or anything else: never; the same request would fail the same way. Nor a
  connection that timed out (`connect_timeout`): it has spent `realtime.connect_timeout`
  of the user's patience already.

Every retry counts against `realtime.max_retries`. Whether any answer text already reached
the user (then nothing is retried) is the turn's business, not this module's.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable

RECONNECT_CODES = frozenset({"closed", "session_expired"})
# Rate limits and server errors (as error events, failed responses or upgrade refusals),
# and connections refused or cut before the upgrade.
BACKOFF_CODES = frozenset({"rate_limit_exceeded", "server_error", "connect_failed"}) | {
    f"http_{status}" for status in (429, 500, 502, 503, 504)
}
JITTER = 0.25  # each wait is its nominal length ± 25%
MIN_ATTEMPT_SECONDS = 1.0  # a retry needs at least this long before the deadline


class Remedy(enum.Enum):
    NONE = "none"
    # At once, in a new session: the conversation replaces one that is closed or expired.
    RECONNECT = "reconnect"
    BACKOFF = "backoff"  # after a growing wait, in the same session if it is still open


def remedy(code: str) -> Remedy:
    """What may fix the failure `code` (a RealtimeError code)."""
    if code in RECONNECT_CODES:
        return Remedy.RECONNECT
    if code in BACKOFF_CODES:
        return Remedy.BACKOFF
    return Remedy.NONE


def backoff_seconds(base: float, step: int, rand: float) -> float:
    """The wait before backoff retry number `step` (from 0): `base` doubled per step, ± JITTER.

    `rand` is uniform in [0, 1): 0 gives the shortest wait, 1 the longest.
    """
    return base * 2**step * (1 + JITTER * (2 * rand - 1))


class RetryBudget:
    """One turn's retries: at most `max_retries`, of which at most one reconnect."""

    def __init__(
        self, max_retries: int, backoff: float, rand: Callable[[], float] = random.random
    ) -> None:
        self.max_retries = max_retries
        self.backoff = backoff
        self.retries = 0
        self._rand = rand
        self._reconnected = False
        self._backoffs = 0

    def wait(self, code: str, remaining: float = math.inf) -> float | None:
        """Seconds to wait before retrying after failure `code`; None: give up.

        `remaining` is the time left before the turn's deadline. The wait is cut short so
        the retry keeps MIN_ATTEMPT_SECONDS; with less than that left there is no retry.
        """
        how = remedy(code)
        if how is Remedy.NONE or self.retries >= self.max_retries:
            return None
        if how is Remedy.RECONNECT and self._reconnected:
            return None
        room = remaining - MIN_ATTEMPT_SECONDS
        if room < 0:
            return None
        self.retries += 1
        if how is Remedy.RECONNECT:
            self._reconnected = True
            return 0.0
        wanted = backoff_seconds(self.backoff, self._backoffs, self._rand())
        self._backoffs += 1
        return min(wanted, room)
