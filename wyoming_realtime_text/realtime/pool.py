"""Warm sessions: connected and configured before anyone speaks.

Opening a session costs a TLS/WebSocket handshake and a session.update round trip, easily
a few hundred milliseconds that an utterance would otherwise wait for. The pool keeps a
few spare sessions ready (idle sessions cost nothing but their socket: the API bills
tokens, not connection time), replaces each one that is taken, and retires spares before
the API's session length limit so a spare is never handed out just before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..config import RealtimeSettings
from .events import RealtimeError
from .session import DialectChoice, RealtimeSession

_LOGGER = logging.getLogger(__name__)
# Failures already warned about (by any pool), until a session opens again: one warning per
# problem, not one per pool and retry (an hour without network would be 1,440 lines).
_WARNED: set[str] = set()


def _warn_once(message: str, reason: str) -> None:
    _LOGGER.log(logging.DEBUG if reason in _WARNED else logging.WARNING, message, reason)
    _WARNED.add(reason)


# The API's session length limits; a session older than this minus the margin is retired.
MAX_SESSION_SECONDS = {"beta": 30 * 60.0, "ga": 60 * 60.0}
ROTATE_MARGIN_SECONDS = 5 * 60.0
RETRY_SECONDS = 5.0


def too_old(session: RealtimeSession, now: float | None = None) -> bool:
    """Close enough to the API's limit that it should not start another turn."""
    limit = MAX_SESSION_SECONDS[session.dialect.name] - ROTATE_MARGIN_SECONDS
    return ((time.monotonic() if now is None else now) - session.opened_at) > limit


class SessionPool:
    """`size` spare sessions with one configuration (turn detection on or off)."""

    def __init__(
        self,
        settings: RealtimeSettings,
        size: int,
        turn_detection: dict[str, Any] | None = None,
        *,
        dialect: DialectChoice | None = None,
        languages: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.size = size
        self.turn_detection = turn_detection
        self.dialect = dialect or DialectChoice(settings.dialect)
        self.languages = languages
        self._spares: list[RealtimeSession] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> int:
        return len(self._spares)

    def start(self) -> None:
        if self.size > 0 and self._task is None:
            self._task = asyncio.create_task(self._fill_forever(), name="warm sessions")
            self._wanted.set()

    async def take(self, language: str | None) -> RealtimeSession:
        """A configured session: a warm spare if one is ready, else a freshly opened one."""
        self._wanted.set()  # a spare taken, or missing (also after a refused key): refill
        while self._spares:
            session = self._spares.pop(0)
            if session.is_open and not too_old(session):
                if language:
                    await session.set_language(language)
                return session
            await session.close()
        session = self._new(language)
        await session.open()
        return session

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        spares, self._spares = self._spares, []
        await asyncio.gather(*(s.close() for s in spares), return_exceptions=True)

    def _new(self, language: str | None) -> RealtimeSession:
        return RealtimeSession(
            self.settings,
            language=language,
            languages=self.languages,
            turn_detection=self.turn_detection,
            dialect=self.dialect,
        )

    async def _fill_forever(self) -> None:
        """Top the pool up whenever a spare was taken, died or grew old."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROTATE_MARGIN_SECONDS / 2):
                    await self._wanted.wait()
            self._wanted.clear()
            await self._retire_old()
            while len(self._spares) < self.size:
                session = self._new(None)
                try:
                    await session.open()
                except RealtimeError as err:
                    if err.fatal:  # the key or account is refused: retrying would only repeat it
                        _warn_once(
                            "Cannot open a warm session: %s; trying again when one is taken",
                            err.message,
                        )
                        break
                    _warn_once("Cannot open a warm session: %s (retrying)", err.message)
                    await asyncio.sleep(RETRY_SECONDS)
                    self._wanted.set()
                    break
                if _WARNED:
                    _WARNED.clear()
                    _LOGGER.info("Warm sessions open again")
                self._spares.append(session)
                _LOGGER.debug("Warm session ready (%d/%d)", len(self._spares), self.size)

    async def _retire_old(self) -> None:
        keep = [s for s in self._spares if s.is_open and not too_old(s)]
        gone = [s for s in self._spares if s not in keep]
        self._spares = keep
        await asyncio.gather(*(s.close() for s in gone), return_exceptions=True)
