"""Wyoming clients, built on the `wyoming` library, that timestamp what they send and get.

Three kinds, as the server meets them:
- a direct client: `run-pipeline {asr -> handle}`, audio, optionally `audio-stop`, then it
  reads the transcript and the answer on the same connection (a satellite never sends
  `audio-stop`: the server's end-of-turn detection has to end its stream);
- Home Assistant's STT request: `transcribe`, audio, `audio-stop`, read `transcript`;
- Home Assistant's agent request: `transcript {text, context.conversation_id}`, read the
  answer (`handled-chunk`* then `handled-stop`); a typed message is the same request.
Every timestamp is `time.monotonic()` taken just before a write or just after a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient, AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import HandledChunk, HandledStop
from wyoming.pipeline import PipelineStage, RunPipeline

RATE, WIDTH, CHANNELS = 16000, 2, 1
CHUNK_SECONDS = 0.020
CHUNK_BYTES = int(RATE * CHUNK_SECONDS) * WIDTH * CHANNELS
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SPEECH_LEVEL = 16  # |sample| above this counts as speech when finding where the words end
TURN_TIMEOUT = 30.0  # seconds a client waits for the rest of a turn


@dataclass(frozen=True)
class Speech:
    """16 kHz 16-bit mono audio and where its last speech sample ends (a byte offset)."""

    name: str
    pcm: bytes
    speech_end: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (RATE * WIDTH * CHANNELS)

    def then_silence(self, seconds: float) -> Speech:
        return Speech(self.name, self.pcm + silence(seconds), self.speech_end)


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * WIDTH * CHANNELS)


def load_speech(name: str) -> Speech:
    """A test fixture, e.g. `kitchen` for tests/fixtures/speech-kitchen.wav."""
    with wave.open(str(FIXTURES / f"speech-{name}.wav"), "rb") as wav:
        fmt = (wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
        if fmt != (RATE, WIDTH, CHANNELS):
            raise ValueError(f"speech-{name}.wav is {fmt}, not 16 kHz 16-bit mono")
        pcm = wav.readframes(wav.getnframes())
    samples = memoryview(pcm).cast("h")
    last = max((i for i in range(len(samples)) if abs(samples[i]) > SPEECH_LEVEL), default=-1)
    return Speech(name, pcm, (last + 1) * WIDTH)


class Connection:
    """A Wyoming client connection whose events are read, and timestamped, as they arrive."""

    def __init__(self, uri: str) -> None:
        self._client: AsyncClient = AsyncTcpClient.from_uri(uri)
        self._events: asyncio.Queue[tuple[float, Event | None]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Connection:
        await self._client.connect()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(OSError):
            await self._client.disconnect()

    async def _read(self) -> None:
        try:
            while (event := await self._client.read_event()) is not None:
                self._events.put_nowait((time.monotonic(), event))
        except (OSError, EOFError):  # reset, or cut mid-event: both end the connection
            pass
        self._events.put_nowait((time.monotonic(), None))

    async def write(self, event: Event) -> float:
        """Send `event`; returns the time it was handed to the socket."""
        sent = time.monotonic()
        await self._client.write_event(event)
        return sent

    async def next(self) -> tuple[float, Event]:
        """The next event and when it arrived; EOFError when the server closed."""
        at, event = await self._events.get()
        if event is None:
            raise EOFError("the server closed the connection")
        return at, event


def _chunk(pcm: bytes) -> Event:
    return AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=pcm).event()


@dataclass
class Utterance:
    """What one spoken turn of a direct client saw, as monotonic times."""

    started: float = 0.0  # first audio chunk sent
    speech_end: float | None = None  # chunk holding the last speech sample sent
    audio_stop: float | None = None
    transcript_at: float | None = None
    transcript: str = ""
    first_text_at: float | None = None  # first handled-chunk
    answer: list[str] = field(default_factory=list)
    done_at: float | None = None  # handled-stop
    error: str | None = None


async def _stream(
    conn: Connection,
    speech: Speech,
    *,
    realtime: bool,
    audio_stop: bool,
    result: Utterance,
    stop: asyncio.Event,
) -> None:
    """Send the audio in 20 ms chunks (at real-time pace or all at once) until told to stop."""
    last_speech_chunk = (speech.speech_end - 1) // CHUNK_BYTES
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(speech.pcm), CHUNK_BYTES)):
        if stop.is_set():
            return
        if realtime:
            await asyncio.sleep(max(0.0, start + index * CHUNK_SECONDS - time.monotonic()))
        sent = await conn.write(_chunk(speech.pcm[offset : offset + CHUNK_BYTES]))
        if index == 0:
            result.started = sent
        if index == last_speech_chunk:
            result.speech_end = sent
    if audio_stop and not stop.is_set():
        result.audio_stop = await conn.write(AudioStop().event())


async def pipeline_turn(
    conn: Connection,
    speech: Speech,
    *,
    realtime: bool = True,
    audio_stop: bool = True,
) -> Utterance:
    """One direct-client utterance: run-pipeline {asr -> handle}, audio, read the answer.

    Without `audio_stop` the audio streams (like a satellite's microphone) until the
    transcript arrives, which is what stops a real satellite's stream.
    """
    result = Utterance()
    await conn.write(RunPipeline(PipelineStage.ASR, PipelineStage.HANDLE).event())
    await conn.write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
    stop = asyncio.Event()
    streamer = asyncio.create_task(
        _stream(conn, speech, realtime=realtime, audio_stop=audio_stop, result=result, stop=stop)
    )
    try:
        async with asyncio.timeout(TURN_TIMEOUT):
            while True:
                at, event = await conn.next()
                if Transcript.is_type(event.type):
                    stop.set()
                    result.transcript_at = at
                    result.transcript = Transcript.from_event(event).text
                elif HandledChunk.is_type(event.type):
                    result.first_text_at = result.first_text_at or at
                    result.answer.append(HandledChunk.from_event(event).text)
                elif HandledStop.is_type(event.type):
                    result.done_at = at
                    break
                elif Error.is_type(event.type):
                    result.error = Error.from_event(event).code or "error"
                    break
    except (TimeoutError, EOFError) as err:
        result.error = type(err).__name__
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            await streamer
    return result


@dataclass
class SttResult:
    audio_stop: float
    transcript_at: float
    text: str


async def ha_stt(uri: str, speech: Speech, *, realtime: bool) -> SttResult:
    """Home Assistant's STT request on its own connection; it stops reading at `transcript`."""
    async with Connection(uri) as conn:
        await conn.write(Transcribe(language="en").event())
        await conn.write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(speech.pcm), CHUNK_BYTES)):
            if realtime:
                await asyncio.sleep(max(0.0, start + index * CHUNK_SECONDS - time.monotonic()))
            await conn.write(_chunk(speech.pcm[offset : offset + CHUNK_BYTES]))
        stopped = await conn.write(AudioStop().event())
        async with asyncio.timeout(TURN_TIMEOUT):
            while True:
                at, event = await conn.next()
                if Transcript.is_type(event.type):
                    return SttResult(stopped, at, Transcript.from_event(event).text)
                if Error.is_type(event.type):
                    raise RuntimeError(f"STT failed: {Error.from_event(event).text}")


@dataclass
class AgentResult:
    sent: float
    first_text_at: float | None
    done_at: float
    text: str


async def ha_agent(uri: str, text: str, conversation_id: str) -> AgentResult:
    """Home Assistant's conversation agent request (also what a typed message is)."""
    async with Connection(uri) as conn:
        context = {"conversation_id": conversation_id}
        sent = await conn.write(Transcript(text=text, context=context, language="en").event())
        first: float | None = None
        parts: list[str] = []
        async with asyncio.timeout(TURN_TIMEOUT):
            while True:
                at, event = await conn.next()
                if HandledChunk.is_type(event.type):
                    first = first or at
                    parts.append(HandledChunk.from_event(event).text)
                elif HandledStop.is_type(event.type):
                    return AgentResult(sent, first, at, "".join(parts))
                elif Error.is_type(event.type) or event.type == "not-handled":
                    raise RuntimeError(f"agent request failed: {event.type} {event.data}")
