"""Wyoming clients, built on the `wyoming` library, that timestamp what they send and get.

Two kinds, as the server meets them:
- a direct client: `run-pipeline {asr -> handle}`, audio in 20 ms chunks, optionally
  `audio-stop`, then it reads the transcript and the answer on the same connection (a
  satellite never sends `audio-stop`: the server's end-of-turn detection has to end its
  stream);
- `HomeAssistant`: real Home Assistant core's two requests, framed as it frames them (STT
  in 10 ms chunks; see the class). A typed message is its agent request alone.
Every timestamp is `time.monotonic()` taken just before a write or just after a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient, AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStop
from wyoming.intent import Intent, IntentsStart
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator.ha_client import AgentReader, TcpClientFrom, wyoming_of

RATE, WIDTH, CHANNELS = 16000, 2, 1
DIRECT_CHUNK_SECONDS = 0.020  # a satellite's / direct client's chunks (640 bytes)
HA_CHUNK_SECONDS = 0.010  # Home Assistant's STT chunks: 320 bytes, 100 events a second
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
    """A Wyoming client connection whose events are read, and timestamped, as they arrive.

    `host`: the local address to connect from (one per Home Assistant install); `version`:
    the wyoming version its event headers name (with `host`; None: this machine's).
    """

    def __init__(self, uri: str, host: str | None = None, version: str | None = None) -> None:
        self._client: AsyncClient = AsyncTcpClient.from_uri(uri)
        if host is not None:
            assert isinstance(self._client, AsyncTcpClient)
            self._client = TcpClientFrom(host, self._client.host, self._client.port, version)
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


async def paced_chunks(
    speech: Speech, chunk_seconds: float, *, realtime: bool
) -> AsyncIterator[tuple[int, bytes]]:
    """(byte offset, pcm) of each chunk, each when it would have been recorded (`realtime`)
    or at once: the one place that cuts and paces audio, for every client."""
    step = int(RATE * chunk_seconds) * WIDTH * CHANNELS
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(speech.pcm), step)):
        if realtime:
            await asyncio.sleep(max(0.0, start + index * chunk_seconds - time.monotonic()))
        yield offset, speech.pcm[offset : offset + step]


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
    async for offset, pcm in paced_chunks(speech, DIRECT_CHUNK_SECONDS, realtime=realtime):
        if stop.is_set():
            return
        sent = await conn.write(_chunk(pcm))
        if offset == 0:
            result.started = sent
        if offset < speech.speech_end <= offset + len(pcm):
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
    audio_stop: float | None  # None: the transcript came first (`stt(while_uploading=True)`)
    transcript_at: float
    text: str
    first_chunk: float  # when the first audio-chunk was sent (the audio's time zero)


@dataclass
class AgentResult:
    sent: float
    first_text_at: float | None  # the first handled-chunk
    handled_at: float  # `handled`: Home Assistant hangs up here
    text: str  # what `handled` says (what HA speaks)


@dataclass
class AgentAnswer:
    """An agent request's answer as HA's Wyoming agent reads it (`HomeAssistant.ask`)."""

    sent: float
    first_text_at: float | None  # the first handled-chunk (HA skips them)
    ended_at: float  # the event HA stops reading at
    ended_by: str  # its type: handled, intent (a lone one, or HA 2025's first), intents-stop
    intents: list[Intent]
    text: str  # `handled`'s text, or the intents' texts joined (before HA renders them)


_LOOPBACK_HOSTS = itertools.count(2)  # 127.0.0.2, 127.0.0.3, ... (all of 127/8 is loopback)


def new_conversation_id() -> str:
    """An id shaped like HA's (a ULID: 26 characters of Crockford base32)."""
    return uuid.uuid4().hex[:26].upper()


class HomeAssistant:
    """One Home Assistant install, talking to the server as real HA core does.

    As measured on HA 2025.4.4, 2025.12.5 and 2026.11.0 (and as `HomeAssistant` in
    tests/harness.py plays it, which the bench must not import): one TCP connection per
    request; STT audio in 10 ms chunks (320 bytes, 100 events a second) paced in real time,
    the request hung up right after reading `transcript`; the agent request
    `transcript {text, context: {conversation_id}}` (HA 2025.7+: an id on every request, the
    first included), hung up right after `handled` (HA never reads handled-stop). The
    STT result is read once the audio is sent, as up to 2025.12.

    Each instance connects from a loopback address of its own, as two installs would from
    two hosts: the server tells its clients apart by address (it starts a spoken request in
    the conversation that host spoke in last), so unrelated samples must not share one.

    `version`: the HA release whose wyoming version the event headers name (the server
    tells HA 2026's intent lists from HA 2025's first-intent-only by it) and whose agent
    request `ask` sends; None: this machine's wyoming in the headers (as `converse` has
    always been measured).
    """

    def __init__(self, uri: str, version: tuple[int, int] | None = None) -> None:
        self.uri = uri
        self.version = version
        n = next(_LOOPBACK_HOSTS)
        self.host = f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"

    @property
    def wyoming_version(self) -> str | None:
        if self.version is None:
            return None
        return wyoming_of(self.version)

    @property
    def runs_intent_lists(self) -> bool:
        """HA 2026 (wyoming 1.9+): intents-start, intent*, intents-stop; older: one intent."""
        return self.version is None or self.version >= (2026, 1)

    def _connection(self) -> Connection:
        return Connection(self.uri, self.host, self.wyoming_version)

    async def stt(
        self,
        speech: Speech,
        *,
        realtime: bool = True,
        chunk_seconds: float = HA_CHUNK_SECONDS,
        while_uploading: bool = False,
    ) -> SttResult:
        """transcribe → audio-start → audio-chunk* → audio-stop; read until `transcript`.

        `realtime`: False sends the audio at once (a recording; load tests); `chunk_seconds`
        other than HA's 10 ms only to compare framings. `while_uploading`: read the result
        while the audio is still being sent, as HA 2026 does, and stop sending at the first
        `transcript` (then `audio_stop` is None: it was never sent).
        """
        async with self._connection() as conn:
            await conn.write(Transcribe(language="en").event())
            await conn.write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
            stopped: list[float] = []
            started: list[float] = []
            upload = self._upload(conn, speech, realtime, chunk_seconds, started, stopped)
            if not while_uploading:
                await upload
                return await self._transcript(conn, started, stopped)
            sender = asyncio.create_task(upload)
            try:
                return await self._transcript(conn, started, stopped)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    @staticmethod
    async def _upload(
        conn: Connection,
        speech: Speech,
        realtime: bool,
        chunk_seconds: float,
        started: list[float],
        stopped: list[float],
    ) -> None:
        async for _, pcm in paced_chunks(speech, chunk_seconds, realtime=realtime):
            sent = await conn.write(_chunk(pcm))
            started[:] = started or [sent]
        stopped.append(await conn.write(AudioStop().event()))

    @staticmethod
    async def _transcript(
        conn: Connection, started: list[float], stopped: list[float]
    ) -> SttResult:
        async with asyncio.timeout(TURN_TIMEOUT):
            while True:
                at, event = await conn.next()
                if Transcript.is_type(event.type):
                    text = Transcript.from_event(event).text
                    return SttResult(stopped[0] if stopped else None, at, text, started[0])
                if Error.is_type(event.type):
                    raise RuntimeError(f"STT failed: {Error.from_event(event).text}")

    async def voice_turn(
        self, speech: Speech, conversation_id: str, **stt: Any
    ) -> tuple[SttResult, AgentResult]:
        """One spoken command: the STT request, then the agent request with its transcript."""
        heard = await self.stt(speech, **stt)
        return heard, await self.converse(heard.text, conversation_id)

    async def converse(self, text: str, conversation_id: str) -> AgentResult:
        """The conversation agent request (also what a typed message is); read to `handled`."""
        async with self._connection() as conn:
            context = {"conversation_id": conversation_id}
            sent = await conn.write(Transcript(text=text, context=context).event())
            first: float | None = None
            async with asyncio.timeout(TURN_TIMEOUT):
                while True:
                    at, event = await conn.next()
                    if HandledChunk.is_type(event.type):
                        first = first or at
                    elif Handled.is_type(event.type):
                        return AgentResult(sent, first, at, Handled.from_event(event).text or "")
                    elif Intent.is_type(event.type) or IntentsStart.is_type(event.type):
                        raise RuntimeError(f"the answer is an intent, not text: {event.data}")
                    elif Error.is_type(event.type) or event.type == "not-handled":
                        raise RuntimeError(f"agent request failed: {event.type} {event.data}")

    async def ask(
        self, text: str, conversation_id: str, device_id: str | None = None
    ) -> AgentAnswer:
        """The agent request, its answer read as HA's Wyoming agent reads it.

        HA 2026 (and `version` None) stops at `handled`, a lone `intent`, or intents-stop
        after intents-start; HA 2025 at `handled` or the first `intent`. Both skip
        handled-chunks (their first is noted). HA 2026 sends the event's `language` and, from
        a satellite, its `device_id` in the context.
        """
        recent = self.version is None or self.version >= (2026, 1)
        context = {"conversation_id": conversation_id}
        if device_id and recent:
            context["device_id"] = device_id
        request = Transcript(text=text, language="en" if recent else None, context=context)
        async with self._connection() as conn:
            sent = await conn.write(request.event())
            first: float | None = None
            reader = AgentReader(self.runs_intent_lists)
            async with asyncio.timeout(TURN_TIMEOUT):
                while True:
                    at, event = await conn.next()
                    if HandledChunk.is_type(event.type):
                        first = first or at
                    elif Error.is_type(event.type) or event.type == "not-handled":
                        raise RuntimeError(f"agent request failed: {event.type} {event.data}")
                    if reader.take(event):
                        break
            return AgentAnswer(sent, first, at, event.type, reader.intents, reader.spoken)

    async def voice_ask(
        self, speech: Speech, conversation_id: str, device_id: str | None = None, **stt: Any
    ) -> tuple[SttResult, AgentAnswer]:
        """A spoken request (a command or a question): STT, then `ask` with its transcript."""
        heard = await self.stt(speech, **stt)
        return heard, await self.ask(heard.text, conversation_id, device_id)
