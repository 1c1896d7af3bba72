"""Remote wake word: a satellite without a local wake word streams all the time.

Its audio goes to a Wyoming wake service (openWakeWord and others) until that service
reports a detection; only the audio after the wake word goes to the Realtime API. Audio
before it never goes upstream.
"""

from __future__ import annotations

import asyncio
import logging

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient
from wyoming.wake import Detect, Detection, NotDetected

from .config import WakeSettings

_LOGGER = logging.getLogger(__name__)


class WakeError(Exception):
    """The wake service is unreachable or went away; one line for the client and the log."""


class WakeListener:
    """One wake word session: feed microphone chunks, watch `detected`."""

    def __init__(self, settings: WakeSettings, names: list[str] | None) -> None:
        self.settings = settings
        self.names = names or settings.names or None
        self.detection: Detection | None = None
        self._client = AsyncClient.from_uri(settings.uri, connect_timeout=5)
        self._reader: asyncio.Task[None] | None = None
        self._started = False

    @property
    def detected(self) -> bool:
        return self.detection is not None

    @property
    def failed(self) -> bool:
        return self._reader is not None and self._reader.done() and not self.detected

    async def feed(self, chunk: AudioChunk) -> None:
        """Pass one microphone chunk to the wake service (connecting on the first)."""
        try:
            if not self._started:
                self._started = True
                await self._client.connect()
                await self._client.write_event(Detect(names=self.names).event())
                start = AudioStart(rate=chunk.rate, width=chunk.width, channels=chunk.channels)
                await self._client.write_event(start.event())
                self._reader = asyncio.create_task(self._read(), name="wake reader")
            await self._client.write_event(chunk.event())
        except (OSError, TimeoutError) as err:
            reason = getattr(err, "strerror", None) or err.__class__.__name__
            where = self.settings.uri
            raise WakeError(f"cannot reach the wake word service at {where}: {reason}") from None

    async def _read(self) -> None:
        while (event := await self._client.read_event()) is not None:
            if Detection.is_type(event.type):
                self.detection = Detection.from_event(event)
                _LOGGER.debug("Wake word %r detected", self.detection.name)
                return
            if NotDetected.is_type(event.type):
                return

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._client.disconnect()
