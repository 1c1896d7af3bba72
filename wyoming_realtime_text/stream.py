"""Live text that several readers can follow from its beginning.

A turn's answer starts streaming before anyone asks for it (one round trip): Home
Assistant's agent request arrives later and must still get every delta, in order, then
the rest live. So the text is kept (it is small) and each reader walks it at its own pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class TextStream:
    """Append-only text with an end; readers replay it from the start and then follow it."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._done = False
        self._changed = asyncio.Event()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        return self._done

    def push(self, text: str) -> None:
        if text and not self._done:
            self._parts.append(text)
            self._wake()

    def finish(self, final: str | None = None) -> None:
        """End the stream; `final` replaces the text when the source gives a definitive one."""
        if self._done:
            return
        if final is not None and final != self.text:
            self._parts = [final] if final else []
        self._done = True
        self._wake()

    async def wait(self) -> str:
        while not self._done:
            await self._changed.wait()
        return self.text

    async def follow(self) -> AsyncIterator[str]:
        """Every part pushed so far, then each new one, until the stream ends."""
        index = 0
        while True:
            changed = self._changed
            while index < len(self._parts):
                index += 1
                yield self._parts[index - 1]
            if self._done:
                return
            await changed.wait()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
