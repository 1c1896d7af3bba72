"""Speak a streaming answer with a Wyoming TTS server (piper and others).

The answer is handed to the TTS while it is still being written: as synthesize-chunks when
the TTS supports synthesize streaming (one connection: that is the protocol), otherwise one
`synthesize` per sentence the moment that sentence is complete, each on its own connection
as Home Assistant does (a Wyoming TTS need answer only one `synthesize` per connection, and
many close after it). The TTS's audio comes back as one continuous
audio-start / audio-chunk* / audio-stop stream in the TTS's own format, so the first words
play long before the answer is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

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
from .sentences import stream_sentences
from .stream import TextStream

_LOGGER = logging.getLogger(__name__)
WriteEvent = Callable[[Event], Awaitable[None]]


class TtsError(Exception):
    """The TTS is unreachable or failed; the message is one line for the client and the log."""


class TtsTimeout(TtsError):
    """The TTS did not answer in time: asking it again would most likely cost another wait."""


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
        return False

    async def finish(self) -> None:
        if self.started:
            await self.write(AudioStop().event())


@dataclass
class _Unspoken:
    """The sentences of one answer that the TTS did not speak, for one error line."""

    numbers: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # distinct, in order
    gave_up: bool = False  # after a timeout: the sentences after the last were not tried

    def add(self, number: int, err: TtsError) -> None:
        self.numbers.append(number)
        if str(err) not in self.reasons:
            self.reasons.append(str(err))
        self.gave_up = isinstance(err, TtsTimeout)

    def error(self, total: int) -> TtsError:
        plural = "s" if len(self.numbers) > 1 else ""
        numbers = ", ".join(map(str, self.numbers))
        scope = "and the rest" if self.gave_up else f"of {total}"
        return TtsError(f"sentence{plural} {numbers} {scope} not spoken: {'; '.join(self.reasons)}")


def _reason(err: OSError) -> str:
    return err.strerror or err.__class__.__name__


class TtsRelay:
    """A Wyoming TTS client that speaks one answer per call."""

    def __init__(self, settings: TtsSettings) -> None:
        self.settings = settings
        self.voice = SynthesizeVoice(name=settings.voice) if settings.voice else None

    async def speak(self, text: TextStream, write: WriteEvent) -> int:
        """Speak `text` as it streams; write the audio events. Returns the audio bytes sent.

        Raises TtsError when nothing could be spoken. A failure once audio has gone out is
        logged and sent as `error` (code tts-failed) here, just before the audio-stop: a
        client that reads until audio-stop sees it, and one that stops at an error already
        has all the audio there is.
        """
        out = _AudioOut(write)
        try:
            await self._speak(text, out)
        except TtsError as err:
            if not out.started:
                raise
            _LOGGER.warning("%s", err)
            await write(Error(text=str(err), code="tts-failed").event())
        finally:
            await out.finish()
        return out.bytes

    async def _speak(self, text: TextStream, out: _AudioOut) -> None:
        # `describe` once per answer: one small round trip, done while the model writes its
        # first sentence, and a TTS restarted with other settings is followed at once.
        async with self._connected() as client:
            async with asyncio.timeout(self.settings.connect_timeout):
                streaming = await self._supports_streaming(client)
            if streaming:
                await self._speak_streaming(client, text, out)
                return
        await self._speak_sentences(text, out)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[AsyncClient]:
        """A new connection to the TTS, closed on every path; failures as one-line errors."""
        uri = self.settings.uri
        client = AsyncClient.from_uri(uri)
        try:
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    await client.connect()
            except OSError as err:
                raise TtsError(f"cannot reach the TTS at {uri}: {_reason(err)}") from None
            yield client
        except TimeoutError:
            raise TtsTimeout(f"the TTS at {uri} did not answer in time") from None
        except OSError as err:
            raise TtsError(f"lost the connection to the TTS at {uri}: {_reason(err)}") from None
        finally:
            with contextlib.suppress(OSError):  # the TTS may have closed or reset it first
                await client.disconnect()

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
                event, reading = self._checked(reading.result()), None
                if SynthesizeStopped.is_type(event.type):
                    break
                await out.forward(event)
            await sender
        finally:
            sender.cancel()
            if reading is not None:
                reading.cancel()

    async def _speak_sentences(self, text: TextStream, out: _AudioOut) -> None:
        """One connection per sentence, in order; the next is asked once the last has played.

        The connection is not opened ahead: on loopback a fresh one adds ~0.3 ms to a
        sentence (a TCP handshake on a LAN), against the ~100 ms piper takes to synthesize
        it, and an idle spare could be closed by the TTS under us.
        A sentence the TTS fails on or cuts short is skipped and the rest is still tried:
        better the rest of the answer than silence. After a timeout the rest is given up,
        since each try would likely add another `tts.timeout` of silence. Either way the
        sentences not spoken become one TtsError at the end.
        """
        unspoken = _Unspoken()
        total = 0
        async with contextlib.aclosing(stream_sentences(text.follow())) as sentences:
            async for sentence in sentences:
                total += 1
                try:
                    await self._synthesize(sentence, out)
                except TtsError as err:
                    unspoken.add(total, err)
                    if unspoken.gave_up:
                        break
        if unspoken.numbers:
            raise unspoken.error(total)

    async def _synthesize(self, sentence: str, out: _AudioOut) -> None:
        async with self._connected() as client:
            await client.write_event(Synthesize(text=sentence, voice=self.voice).event())
            while not await out.forward(await self._read(client)):
                pass

    async def _read(self, client: AsyncClient) -> Event:
        async with asyncio.timeout(self.settings.timeout):
            return self._checked(await client.read_event())

    def _checked(self, event: Event | None) -> Event:
        """The TTS's event, unless it is an `error` or the TTS closed the connection."""
        if event is None:
            raise TtsError(f"the TTS at {self.settings.uri} closed the connection")
        if Error.is_type(event.type):
            raise TtsError(f"the TTS at {self.settings.uri} failed: {Error.from_event(event).text}")
        return event
