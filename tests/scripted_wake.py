"""A scripted Wyoming wake word service for tests that drive the real wyoming-satellite.

With ``--wake-uri`` the satellite connects to its wake service once at startup and sends
``detect`` (the names from ``--wake-word-name``), then every microphone chunk while it is not
streaming to its server; it sends ``detect`` again after each ``run-satellite`` and each
``transcript``, and starts a voice turn (``run-pipeline`` from the asr stage) on the first
``detection`` that follows. This one "hears" its wake word at the first loud chunk after a
few quiet ones, and only once armed, so a test decides which turn happens and when.
"""

from __future__ import annotations

import asyncio

import numpy as np
from wyoming.audio import AudioChunk
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.wake import Detect, Detection

from wyoming_realtime_text.simulator.tts import PeerHandler, WyomingPeer

ATTRIBUTION = Attribution(name="wyoming-realtime-text tests", url="")
LOUD = 1000  # mean |sample| of a chunk that counts as sound (16-bit)
QUIET_BEFORE = 3  # quiet chunks heard while armed before a loud one is taken


class ScriptedWake(WyomingPeer):
    def __init__(self, name: str = "ok_test", host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.name = name
        self.detects: list[Detect] = []  # every detect request, in order
        self.chunks = 0  # microphone chunks received
        self.detections = 0
        self._armed = False
        self._quiet = 0
        self._changed = asyncio.Condition()

    def info(self) -> Info:
        model = WakeModel(
            name=self.name,
            description="Scripted: the first sound after silence, once armed",
            attribution=ATTRIBUTION,
            installed=True,
            version="1",
            languages=["en"],
            phrase=self.name,
        )
        program = WakeProgram(
            name="scripted-wake",
            description="Scripted wake word service for tests",
            attribution=ATTRIBUTION,
            installed=True,
            version="1",
            models=[model],
        )
        return Info(wake=[program])

    def arm(self) -> None:
        """Detect once: at the next loud chunk that follows a few quiet ones."""
        self._armed, self._quiet = True, 0

    # A plain timeout argument is the API tests want here: hence the noqa (ASYNC109).
    async def wait_detects(self, count: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until ``count`` detect requests have arrived in all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.detects) >= count)

    async def wait_detection(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until the armed detection has been sent."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.detections > 0 and not self._armed)

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> PeerHandler:
        return _WakeHandler(self, reader, writer)

    async def on_event(self, handler: PeerHandler, event: Event) -> None:
        if Describe.is_type(event.type):
            await handler.write_event(self.info().event())
        elif Detect.is_type(event.type):
            async with self._changed:
                self.detects.append(Detect.from_event(event))
                self._quiet = 0
                self._changed.notify_all()
        elif AudioChunk.is_type(event.type):
            self.chunks += 1
            if not self._armed:
                return
            chunk = AudioChunk.from_event(event)
            level = np.abs(np.frombuffer(chunk.audio, dtype="<i2").astype(np.int32)).mean()
            if level < LOUD:
                self._quiet += 1
            elif self._quiet >= QUIET_BEFORE:
                await handler.write_event(
                    Detection(name=self.name, timestamp=chunk.timestamp).event()
                )
                async with self._changed:
                    self._armed = False
                    self.detections += 1
                    self._changed.notify_all()


class _WakeHandler(PeerHandler):
    peer: ScriptedWake

    async def handle_event(self, event: Event) -> bool:
        await self.peer.on_event(self, event)
        return True
