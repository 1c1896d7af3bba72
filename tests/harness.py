"""Black-box harness: the real server as a subprocess, against the simulator on loopback.

Tests talk to the server with the `wyoming` library's client exactly as Home Assistant
does, and read what reached the simulator to check what the server really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import socket
import struct
import sys
import uuid
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.handle import Handled, NotHandled
from wyoming.intent import Intent
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator.ha_client import AgentReader, TcpClientFrom, wyoming_of

FALLBACK = "Fallback: the assistant is unavailable."
RESPONSE_TIMEOUT = 3.0
SECRET_KEY = "sk-test-SECRET-9f8e7d6c5b4a"
FIXTURES = Path(__file__).parent / "fixtures"
SILENCE = bytes(16000 * 2 * 3)  # 3 s of a quiet room after the words (16 kHz pcm16)


def cache_dir() -> Path:
    """Where real peers' environments are kept between runs (one build per machine)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wyoming-realtime-text"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, width: int = 2) -> bytes:
    """A sine tone as little-endian PCM: stands in for speech in the audio path."""
    count = int(seconds * rate)
    peak = 0.5 * (2 ** (8 * width - 1) - 1)
    fmt = {2: "h", 4: "i"}[width]
    return struct.pack(
        f"<{count}{fmt}",
        *(int(peak * math.sin(2 * math.pi * freq * i / rate)) for i in range(count)),
    )


def speech(name: str) -> bytes:
    """Real (synthesised) speech, 16 kHz pcm16 mono: tests/fixtures/speech-<name>.wav.

    For streamed turns: the server's local voice detector rightly ignores test tones.
    """
    with wave.open(str(FIXTURES / f"speech-{name}.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        return wav.readframes(wav.getnframes())


@dataclass
class ServerProcess:
    uri: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def server_config(sim_url: str, dialect: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "realtime": {
            "url": sim_url,
            "dialect": dialect,
            "model": "gpt-realtime-2.1-mini" if dialect == "ga" else "gpt-4o-realtime-preview",
            "api_key": "${TEST_REALTIME_KEY}",
            "connect_timeout": 3,
            "response_timeout": RESPONSE_TIMEOUT,
            # Most tests read "the connections since X" as the turn's session: keep every
            # session fresh. Warm sessions have their own tests (test_warm_sessions.py).
            "warm_sessions": 0,
        },
        "languages": ["en", "ja"],
        "fallback_text": FALLBACK,
        # Off unless a test asks: servers running side by side must not race for its port.
        "web": {"enabled": False},
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


async def start_server(
    tmp: Path, config: dict[str, Any], *args: str, host: str = "127.0.0.1"
) -> ServerProcess:
    """The real server as a subprocess (listening on `host`), once it accepts connections."""
    port = free_port()
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    log_path = tmp / "server.log"
    env = {**os.environ, "TEST_REALTIME_KEY": SECRET_KEY}
    process = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "wyoming_realtime_text",
            "--config",
            str(config_path),
            "--uri",
            f"tcp://{host}:{port}",
            *args,
        ],
        stdout=log_path.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    server = ServerProcess(f"tcp://127.0.0.1:{port}", port, process, log_path)
    for _ in range(200):
        if process.returncode is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{server.log()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return server
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server did not start:\n{server.log()}")


@contextlib.asynccontextmanager
async def running_server(
    tmp: Path, config: dict[str, Any], *args: str
) -> AsyncIterator[ServerProcess]:
    """`start_server`, and at the end a SIGTERM after which it must exit 0 (its log if not).

    A test that fails inside still stops its server (it would otherwise outlive the run).
    """
    server = await start_server(tmp, config, *args)
    try:
        yield server
    except BaseException:
        await stop_server(server)
        raise
    assert await stop_server(server) == 0, server.log()


async def stop_server(server: ServerProcess) -> int:
    """SIGTERM, as Docker and the HA supervisor stop it; returns the exit code."""
    server.process.terminate()
    try:
        async with asyncio.timeout(10):
            return await server.process.wait()
    except TimeoutError:
        server.process.kill()
        return await server.process.wait()


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def read_until_closed(
    read: Callable[[], Awaitable[Event | None]], seconds: float = 5.0
) -> tuple[list[Event], bool]:
    """Events read (e.g. `client.read_event`) until the server closes: (events, closed in time)."""
    events: list[Event] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            with contextlib.suppress(ConnectionError):
                while (event := await read()) is not None:
                    events.append(event)
            return events, True
    return events, False


async def raw_exchange(port: int, data: bytes, seconds: float = 5.0) -> tuple[list[Event], bool]:
    """Write raw bytes (malformed frames welcome), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await read_until_closed(partial(async_read_event, reader), seconds)
    finally:
        writer.close()


_HA_HOSTS = itertools.cycle(range(2, 255))


@dataclass
class AgentReply:
    """What HA's Wyoming agent made of one answer: the intents it runs, or what it speaks.

    `intents`: all of them for HA 2026 (intents-start ... intents-stop, or one `intent`);
    older HA runs only the first `intent` it reads and hangs up.
    """

    events: list[Event]
    intents: list[Intent]
    handled: Handled | None
    not_handled: NotHandled | None = None

    @property
    def spoken(self) -> str:
        """What HA speaks, as far as it is ours to say (an intent's text, before rendering)."""
        if self.handled is not None:
            return self.handled.text or ""
        return "\n".join(i.text for i in self.intents if i.text)


class HomeAssistant:
    """The two Wyoming flows Home Assistant runs per utterance, as real HA core does them.

    As measured on HA 2025.4.4, 2025.12.5 and 2026.11.0: one connection per request; STT
    audio in 10 ms chunks (320 bytes, 100 events a second) paced in real time; the STT
    request hangs up at `transcript`, the agent request at `handled` (HA never reads
    transcript-stop or handled-stop). `version` picks what differs:

    - before 2025.7: the agent request carries no context (no conversation_id at all);
    - 2025.7 and later: a conversation_id on every agent request, the first included (HA
      makes a new one when a conversation starts);
    - 2026 and later: the agent request also has `language` (the event's field; a satellite's
      `device_id` goes in the context), and the STT result is read while the audio is still
      being sent: a `transcript` or `error` before `audio-stop` ends it.
    """

    def __init__(self, uri: str, version: tuple[int, int] = (2025, 12)) -> None:
        self.uri = uri
        self.version = version
        self.audio_stopped_at: float | None = None  # loop time of the last audio-stop sent
        # Each instance is a Home Assistant of its own: its connections come from its own
        # loopback address, as two HA installs would from two hosts (the server tells its
        # clients apart by address, e.g. to find a spoken follow-up's conversation).
        self.host = f"127.0.0.{next(_HA_HOSTS)}"

    def _connection(self) -> AsyncTcpClient:
        uri = urlparse(self.uri)
        assert uri.hostname is not None and uri.port is not None
        return TcpClientFrom(self.host, uri.hostname, uri.port, self.wyoming_version)

    @property
    def wyoming_version(self) -> str:
        return wyoming_of(self.version)

    @property
    def runs_intent_lists(self) -> bool:
        """HA 2026 (wyoming 1.9+): intents-start, intent*, intents-stop; older: one intent."""
        return self.version >= (2026, 1)

    @property
    def sends_context(self) -> bool:
        return self.version >= (2025, 7)

    @property
    def reads_while_uploading(self) -> bool:
        return self.version >= (2026, 1)

    async def stt(
        self,
        audio: bytes,
        rate: int = 16000,
        width: int = 2,
        channels: int = 1,
        language: str | None = "en",
        chunk_ms: int = 10,
        *,
        paced: bool = True,
        linger: float = 0.0,
    ) -> tuple[Transcript, list[Event]]:
        """transcribe → audio-start → audio-chunk* → audio-stop; read until transcript.

        `paced`: chunks in real time, as HA sends them (False: at once, for load tests).
        `linger`: keep reading this long after the transcript (HA does not: a test may want
        to see what the server sends after it).
        """
        events: list[Event] = []
        async with self._connection() as client:
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            upload = self._upload(client, AudioChunk(rate, width, channels, audio), chunk_ms, paced)
            if self.reads_while_uploading:
                sender = asyncio.create_task(upload)
                seconds = len(audio) / (rate * width * channels) + RESPONSE_TIMEOUT + 5
                try:
                    await read_until(client, events, Transcript, seconds)
                finally:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
            else:
                await upload
                await read_until(client, events, Transcript, RESPONSE_TIMEOUT + 5)
            await linger_on(client, events, linger)
        transcript = next(Transcript.from_event(e) for e in events if Transcript.is_type(e.type))
        return transcript, events

    async def _upload(
        self, client: AsyncTcpClient, audio: AudioChunk, chunk_ms: int, paced: bool
    ) -> None:
        """All of `audio` in chunks, then audio-stop (its time noted)."""
        await send_audio(
            client, audio.audio, audio.rate, audio.width, audio.channels, chunk_ms, paced=paced
        )
        self.audio_stopped_at = asyncio.get_running_loop().time()

    async def converse(
        self,
        text: str,
        conversation_id: str | None = None,
        *,
        linger: float = 0.0,
    ) -> tuple[Handled, list[Event]]:
        """transcript {text, context} → read until handled (what HA speaks), then hang up.

        HA 2025.7+ makes a new conversation_id when none is given (a conversation starts);
        older HA sends no context whatever it was given.
        """
        events: list[Event] = []
        context: dict[str, str] | None = None
        if self.sends_context:
            context = {"conversation_id": conversation_id or new_conversation_id()}
        language = "en" if self.version >= (2026, 1) else None  # the event's, not the context's
        async with self._connection() as client:
            request = Transcript(text=text, language=language, context=context)
            await client.write_event(request.event())
            await read_until(client, events, Handled, RESPONSE_TIMEOUT + 5)
            await linger_on(client, events, linger)
        handled = next(Handled.from_event(e) for e in events if Handled.is_type(e.type))
        return handled, events

    async def ask(
        self,
        text: str,
        conversation_id: str | None = None,
        *,
        device_id: str | None = None,
        linger: float = 0.0,
    ) -> AgentReply:
        """An agent request, read as HA's Wyoming agent reads the answer.

        HA 2026 (components/wyoming/conversation.py) stops at handled, not-handled,
        not-recognized, `error`, a lone `intent`, or intents-stop after intents-start; HA
        2025 at handled, not-handled, not-recognized or the first `intent` (an `error` it
        does not know). Everything else (handled-start, handled-chunk, ...) is skipped.
        `device_id`: the satellite's (HA 2026 passes it in the context).
        """
        events: list[Event] = []
        context: dict[str, str] | None = None
        if self.sends_context:
            context = {"conversation_id": conversation_id or new_conversation_id()}
            if device_id and self.version >= (2026, 1):
                context["device_id"] = device_id
        language = "en" if self.version >= (2026, 1) else None
        reader = AgentReader(self.runs_intent_lists)
        async with self._connection() as client:
            await client.write_event(
                Transcript(text=text, language=language, context=context).event()
            )
            async with asyncio.timeout(RESPONSE_TIMEOUT + 5):
                while (event := await client.read_event()) is not None:
                    events.append(event)
                    if reader.take(event):
                        break
                else:
                    raise AssertionError(f"the server closed first: {[e.type for e in events]}")
            await linger_on(client, events, linger)
        return AgentReply(events, reader.intents, reader.handled, reader.not_handled)


async def pipeline_from(host: str, uri: str, audio: bytes, seconds: float = 10.0) -> list[Event]:
    """A direct client at loopback address ``host`` says ``audio`` to the server at ``uri``
    (run-pipeline asr → handle, as a satellite without a speaker): the events it read, up
    to `handled` or `error`. The server tells direct clients apart by that address
    (`home_control.clients`)."""
    parsed = urlparse(uri)
    assert parsed.hostname is not None and parsed.port is not None
    events: list[Event] = []
    async with TcpClientFrom(host, parsed.hostname, parsed.port) as client:
        request = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
        await client.write_event(request.event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(16000, 2, 1, audio).event())
        await client.write_event(AudioStop().event())
        async with asyncio.timeout(seconds):
            while (event := await client.read_event()) is not None:
                events.append(event)
                if event.type in ("handled", "error"):
                    break
    return events


def new_conversation_id() -> str:
    """An id shaped like HA's (a ULID: 26 characters of Crockford base32)."""
    return uuid.uuid4().hex[:26].upper()


async def send_audio(
    client: AsyncTcpClient,
    audio: bytes,
    rate: int,
    width: int,
    channels: int,
    chunk_ms: int,
    *,
    paced: bool,
    stop: bool = True,
) -> None:
    """audio-chunk* then audio-stop (unless not `stop`); `paced`: each chunk when it would
    have been recorded."""
    step = rate * width * channels * chunk_ms // 1000
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, offset in enumerate(range(0, len(audio), step)):
        if paced:
            await asyncio.sleep(max(0.0, start + index * chunk_ms / 1000 - loop.time()))
        chunk = AudioChunk(
            rate=rate, width=width, channels=channels, audio=audio[offset : offset + step]
        )
        await client.write_event(chunk.event())
    if stop:
        await client.write_event(AudioStop().event())


async def read_until(
    client: AsyncTcpClient, events: list[Event], last: type[Any], seconds: float
) -> None:
    """Read into `events` up to and including the first event of type `last` (or an error)."""
    async with asyncio.timeout(seconds):
        while (event := await client.read_event()) is not None:
            events.append(event)
            if last.is_type(event.type) or event.type == "error":
                return
    raise AssertionError(f"the server closed before {last.__name__}: {[e.type for e in events]}")


async def linger_on(client: AsyncTcpClient, events: list[Event], seconds: float) -> None:
    """Read whatever else comes within `seconds`."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            while (event := await client.read_event()) is not None:
                events.append(event)
