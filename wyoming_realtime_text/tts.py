"""Speak a streaming answer with a Wyoming TTS server (piper and others).

The answer is handed to the TTS while it is still being written: as synthesize-chunks when
the TTS supports synthesize streaming, otherwise one `synthesize` per sentence the moment
that sentence is complete. The TTS's audio comes back as one continuous
audio-start / audio-chunk* / audio-stop stream in the TTS's own format, so the first words
play long before the answer is finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .config import TtsSettings
from .sentences import SentenceSplitter
from .stream import TextStream

_LOGGER = logging.getLogger(__name__)
WriteEvent = Callable[[Event], Awaitable[None]]


class TtsError(Exception):
    """The TTS is unreachable or failed; the message is one line for the client and the log."""


class _AudioOut:
    """Merges the TTS's per-sentence audio into one stream towards the client."""

    def __init__(self, write: WriteEvent) -> None:
        self.write = write
        self.started = False
        self.bytes = 0

    async def forward(self, event: Event) -> bool:
        """Forward audio; True at the end of one sentence's audio."""
        if AudioStart.is_type(event.type):
            if not self.started:
                self.started = True
                await self.write(event)
        elif AudioChunk.is_type(event.type):
            if not self.started:
                chunk = AudioChunk.from_event(event)
                self.started = True
                await self.write(AudioStart(chunk.rate, chunk.width, chunk.channels).event())
            self.bytes += len(event.payload or b"")
            await self.write(event)
        elif AudioStop.is_type(event.type):
            return True
        elif Error.is_type(event.type):
            raise TtsError(f"the TTS failed: {Error.from_event(event).text}")
        return False

    async def finish(self) -> None:
        if self.started:
            await self.write(AudioStop().event())


class TtsRelay:
    """A Wyoming TTS client that speaks one answer per call."""

    def __init__(self, settings: TtsSettings) -> None:
        self.settings = settings
        self.voice = SynthesizeVoice(name=settings.voice) if settings.voice else None

    async def speak(self, text: TextStream, write: WriteEvent) -> int:
        """Speak `text` as it streams; write the audio events. Returns the audio bytes sent."""
        out = _AudioOut(write)
        client = AsyncClient.from_uri(self.settings.uri)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await client.connect()
                streaming = await self._supports_streaming(client)
            if streaming:
                await self._speak_streaming(client, text, out)
            else:
                await self._speak_sentences(client, text, out)
        except TimeoutError:
            raise TtsError(f"the TTS at {self.settings.uri} did not answer in time") from None
        except OSError as err:
            reason = err.strerror or err.__class__.__name__
            raise TtsError(f"cannot reach the TTS at {self.settings.uri}: {reason}") from None
        finally:
            await out.finish()
            await client.disconnect()
        return out.bytes

    async def _supports_streaming(self, client: AsyncClient) -> bool:
        await client.write_event(Describe().event())
        while True:
            event = await self._read(client)
            if Info.is_type(event.type):
                programs = Info.from_event(event).tts
                installed = [p for p in programs if p.installed] or programs
                return bool(installed and installed[0].supports_synthesize_streaming)

    async def _speak_streaming(self, client: AsyncClient, text: TextStream, out: _AudioOut) -> None:
        async def send_text() -> None:
            await client.write_event(SynthesizeStart(voice=self.voice).event())
            async for part in text.follow():
                await client.write_event(SynthesizeChunk(text=part).event())
            # The full text too, for TTS servers that only read `synthesize`.
            await client.write_event(Synthesize(text=text.text, voice=self.voice).event())
            await client.write_event(SynthesizeStop().event())

        sender = asyncio.create_task(send_text())
        reading: asyncio.Task[Event | None] | None = None
        try:
            while True:
                # The TTS may rightly stay quiet while the model has not written a sentence
                # yet: its silence only counts once all the text has been sent.
                reading = reading or asyncio.create_task(client.read_event())
                done, _ = await asyncio.wait({reading}, timeout=self.settings.timeout)
                if not done:
                    if sender.done():
                        raise TimeoutError
                    continue
                event, reading = reading.result(), None
                if event is None:
                    raise TtsError(f"the TTS at {self.settings.uri} closed the connection")
                if SynthesizeStopped.is_type(event.type):
                    break
                await out.forward(event)
            await sender
        finally:
            sender.cancel()
            if reading is not None:
                reading.cancel()

    async def _speak_sentences(self, client: AsyncClient, text: TextStream, out: _AudioOut) -> None:
        splitter = SentenceSplitter()
        async for part in text.follow():
            for sentence in splitter.feed(part):
                await self._synthesize(client, sentence, out)
        for sentence in splitter.flush():
            await self._synthesize(client, sentence, out)

    async def _synthesize(self, client: AsyncClient, sentence: str, out: _AudioOut) -> None:
        await client.write_event(Synthesize(text=sentence, voice=self.voice).event())
        while not await out.forward(await self._read(client)):
            pass

    async def _read(self, client: AsyncClient) -> Event:
        async with asyncio.timeout(self.settings.timeout):
            event = await client.read_event()
        if event is None:
            raise TtsError(f"the TTS at {self.settings.uri} closed the connection")
        return event
