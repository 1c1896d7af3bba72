"""A simulated Wyoming TTS server that behaves like wyoming-piper, for tests and trials.

The product never speaks itself: the hub's TTS does. Tests need a TTS whose timing and
event order are known, so they can check what reaches it (streamed text, sentence by
sentence), on which connection, and when the first text arrived, without a real voice model.
Many real Wyoming TTS servers answer one `synthesize` per connection and then close (Home
Assistant opens a connection for each), and real ones fail now and then: both can be played.
Also holds `WyomingPeer`, the loopback-server plumbing shared with the simulated satellite.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self, cast

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from .. import PROJECT_URL, __version__

ATTRIBUTION = Attribution(name="wyoming-realtime-text", url=PROJECT_URL)
SAMPLES_PER_CHUNK = 1024  # wyoming-piper's default --samples-per-chunk
TONE_HZ = 440.0
TONE_LEVEL = 0.1  # of full scale: audible in a trial, never clipping
FAILURE = Error(text="simulated TTS failure", code="tts-failed")

# What the TTS does instead of speaking one `synthesize`: answer `error` and close, close
# after part of the audio (no audio-stop), or say nothing and wait (the client's timeout).
Fault = Literal["error", "close", "silent"]

# A sentence ends at . ! ? before whitespace or the end of the text received so far, or at
# a CJK full stop anywhere. Crude on purpose: piper's detector is smarter, tests need a
# rule they can predict.
_BOUNDARY = re.compile(r"[.!?](?=\s|$)|[。！？]")


def split_sentences(text: str) -> tuple[list[str], str]:
    """The complete sentences of ``text`` and the unfinished remainder."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    return sentences, text[start:]


def tone(seconds: float, rate: int, width: int, channels: int) -> bytes:
    """A quiet sine as interleaved little-endian PCM (8-bit unsigned, as in WAV)."""
    count = max(0, round(seconds * rate))
    wave = np.sin(2 * math.pi * TONE_HZ * np.arange(count) / rate) * TONE_LEVEL
    if width == 1:
        samples = (128 + wave * 127).astype(np.uint8)
    else:
        samples = (wave * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}")
    return np.repeat(samples, channels).tobytes()


class WyomingPeer:
    """A `wyoming` AsyncTcpServer on loopback whose every task is tracked.

    Shared by the simulated peers so that ``stop()`` really leaves nothing running:
    the library's own ``stop()`` closes sockets but does not wait for handler tasks.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: AsyncTcpServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> PeerHandler:
        raise NotImplementedError

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` until it ends so that ``stop()`` can end it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Listen; with ``port=0`` the chosen port is written back to ``self.port``."""
        server = AsyncTcpServer(self.host, self.port)
        await server.start(self._handler)
        self._server = server
        # The library keeps the asyncio server private; it is the only way to learn the port.
        listening = cast(asyncio.Server, server._server)
        self.port = listening.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection, and end every task."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class PeerHandler(AsyncEventHandler):
    """One connection; tracked by its peer, and quiet when the other side goes away."""

    def __init__(
        self, peer: WyomingPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.peer = peer

    async def run(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.peer.track(task)
        # A peer hanging up mid-event is part of what these simulators are for.
        with contextlib.suppress(OSError, EOFError):
            await super().run()


@dataclass
class TtsConnection:
    """One client connection as the TTS saw it, so tests can check per-connection use."""

    received: list[Event] = field(default_factory=list)
    synthesized: list[str] = field(default_factory=list)  # spoken on this connection
    open: bool = True  # until either side closed it


class SimulatedTts(WyomingPeer):
    """Answers synthesize requests with a tone whose length follows the text length.

    ``one_per_connection`` answers one `synthesize` per connection and then closes it, as
    many real Wyoming TTS servers do. ``faults`` maps the number of a `synthesize` (1 for
    the first this TTS gets, counted over all connections) to a `Fault` played instead of
    speaking it; ``fail`` fails every request.
    """

    def __init__(
        self,
        streaming: bool = True,
        rate: int = 22050,
        width: int = 2,
        channels: int = 1,
        seconds_per_char: float = 0.01,
        fail: bool = False,
        delay: float = 0.0,
        one_per_connection: bool = False,
        faults: Mapping[int, Fault] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_limit: int | None = None,
    ) -> None:
        super().__init__(host, port)
        # Records kept at most (None: all, for tests); a trial run may last for days.
        self.record_limit = record_limit
        self.streaming = streaming
        self.rate, self.width, self.channels = rate, width, channels
        self.seconds_per_char = seconds_per_char
        self.fail = fail
        self.delay = delay
        self.one_per_connection = one_per_connection
        self.faults = dict(faults or {})
        self.received: list[Event] = []
        self.synthesized: list[str] = []
        self.requests = 0  # `synthesize` events answered or faulted (not those in a stream)
        self.first_text_at: float | None = None
        self.connection_log: list[TtsConnection] = []

    @property
    def connections(self) -> int:
        return len(self.connection_log)

    @property
    def open_connections(self) -> int:
        return sum(c.open for c in self.connection_log)

    def info(self) -> Info:
        voice = TtsVoice(
            name="sim-voice",
            description="Simulated voice: a quiet tone as long as the text",
            attribution=ATTRIBUTION,
            installed=True,
            version=__version__,
            languages=["en", "ja"],
        )
        program = TtsProgram(
            name="simulated-tts",
            description="Simulated Wyoming TTS (behaves like wyoming-piper)",
            attribution=ATTRIBUTION,
            installed=True,
            version=__version__,
            voices=[voice],
            supports_synthesize_streaming=self.streaming,
        )
        return Info(tts=[program])

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> PeerHandler:
        connection = TtsConnection()
        self.connection_log.append(connection)
        if self.record_limit is not None and len(self.connection_log) > self.record_limit:
            self.connection_log = [c for c in self.connection_log if c.open]
        return _TtsHandler(self, connection, reader, writer)

    def text_arrived(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()

    async def answer(self, handler: _TtsHandler, text: str) -> bool:
        """One `synthesize`: spoken, or its fault played; False closes the connection."""
        self.requests += 1
        fault = self.faults.get(self.requests)
        if fault == "error":
            await handler.write_event(FAILURE.event())
            return False
        if fault == "close":
            await self.speak(handler, text, cut=True)
            return False
        if fault == "silent":
            return True  # until the client gives up
        await self.speak(handler, text)
        return not self.one_per_connection

    async def speak(self, handler: _TtsHandler, text: str, cut: bool = False) -> None:
        """One utterance: audio-start, ~1024-sample chunks, audio-stop (as piper); ``cut``
        stops after the first chunk, as a TTS that crashes mid-sentence."""
        if not cut:
            self.synthesized.append(text)
            handler.connection.synthesized.append(text)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        fmt = {"rate": self.rate, "width": self.width, "channels": self.channels}
        await handler.write_event(AudioStart(**fmt).event())
        audio = tone(self.seconds_per_char * len(text), **fmt)
        step = SAMPLES_PER_CHUNK * self.width * self.channels
        offsets = range(0, len(audio), step)
        for offset in offsets[:1] if cut else offsets:
            chunk = AudioChunk(audio=audio[offset : offset + step], **fmt)
            await handler.write_event(chunk.event())
        if not cut:
            await handler.write_event(AudioStop().event())


class _TtsHandler(PeerHandler):
    peer: SimulatedTts

    def __init__(
        self,
        tts: SimulatedTts,
        connection: TtsConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(tts, reader, writer)
        self.connection = connection
        self.in_stream = False
        self.pending = ""  # streamed text not yet spoken (no sentence end seen)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self.connection.open = False

    async def handle_event(self, event: Event) -> bool:
        tts = self.peer
        tts.received.append(event)
        self.connection.received.append(event)
        if tts.record_limit is not None and len(tts.received) > tts.record_limit:
            del tts.received[: -tts.record_limit], tts.synthesized[: -tts.record_limit]
            del self.connection.received[: -tts.record_limit]
        if Describe.is_type(event.type):
            await self.write_event(tts.info().event())
            return True
        if tts.fail and (Synthesize.is_type(event.type) or SynthesizeStart.is_type(event.type)):
            await self.write_event(FAILURE.event())
            return False
        if Synthesize.is_type(event.type):
            if self.in_stream:
                return True  # sent inside a stream only for older servers: piper ignores it
            tts.text_arrived()
            return await tts.answer(self, Synthesize.from_event(event).text.strip())
        if not tts.streaming:
            return True  # piper --no-streaming ignores the stream events altogether
        if SynthesizeStart.is_type(event.type):
            self.in_stream, self.pending = True, ""
        elif SynthesizeChunk.is_type(event.type) or SynthesizeStop.is_type(event.type):
            if not self.in_stream:
                # piper fails an assertion here, answers `error` and drops the connection.
                await self.write_event(Error(f"{event.type} outside a stream", "protocol").event())
                return False
            if SynthesizeChunk.is_type(event.type):
                text = SynthesizeChunk.from_event(event).text
                if text:
                    tts.text_arrived()
                sentences, self.pending = split_sentences(self.pending + text)
            else:
                sentences, self.pending = [self.pending.strip()], ""
            for sentence in filter(None, sentences):
                await tts.speak(self, sentence)
            if SynthesizeStop.is_type(event.type):
                self.in_stream = False  # piper never resets; HA opens a connection per request
                await self.write_event(SynthesizeStopped().event())
        return True
