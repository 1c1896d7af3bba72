"""Black-box harness: the real server as a subprocess, against the simulator on loopback.

Tests talk to the server with the `wyoming` library's client exactly as Home Assistant
does, and read what reached the simulator to check what the server really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.handle import Handled

FALLBACK = "Fallback: the assistant is unavailable."
RESPONSE_TIMEOUT = 3.0
SECRET_KEY = "sk-test-SECRET-9f8e7d6c5b4a"


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
            "model": "gpt-realtime" if dialect == "ga" else "gpt-4o-realtime-preview",
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
    """`start_server`, and at the end a SIGTERM after which it must exit 0 (its log if not)."""
    server = await start_server(tmp, config, *args)
    yield server
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


class HomeAssistant:
    """The two Wyoming flows Home Assistant runs per utterance, as its integration does."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    async def stt(
        self,
        audio: bytes,
        rate: int = 16000,
        width: int = 2,
        channels: int = 1,
        language: str | None = "en",
        chunk_ms: int = 20,
    ) -> tuple[Transcript, list[Event]]:
        """transcribe → audio-start → audio-chunk* → audio-stop; read until transcript."""
        events: list[Event] = []
        async with AsyncTcpClient.from_uri(self.uri) as client:
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            step = rate * width * channels * chunk_ms // 1000
            for start in range(0, len(audio), step):
                chunk = AudioChunk(
                    rate=rate, width=width, channels=channels, audio=audio[start : start + step]
                )
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            async with asyncio.timeout(RESPONSE_TIMEOUT + 5):
                while (event := await client.read_event()) is not None:
                    events.append(event)
                    if Transcript.is_type(event.type):
                        # HA stops reading here; keep reading briefly to catch what follows.
                        break
                try:
                    async with asyncio.timeout(0.3):
                        while (event := await client.read_event()) is not None:
                            events.append(event)
                except TimeoutError:
                    pass
        transcript = next(Transcript.from_event(e) for e in events if Transcript.is_type(e.type))
        return transcript, events

    async def converse(
        self, text: str, conversation_id: str | None = None
    ) -> tuple[Handled, list[Event]]:
        """transcript {text, context} → read until handled (what HA speaks)."""
        events: list[Event] = []
        context = {"conversation_id": conversation_id} if conversation_id else None
        async with AsyncTcpClient.from_uri(self.uri) as client:
            await client.write_event(Transcript(text=text, context=context).event())
            async with asyncio.timeout(RESPONSE_TIMEOUT + 5):
                while (event := await client.read_event()) is not None:
                    events.append(event)
                    if event.type == "handled-stop":
                        break
        handled = next(Handled.from_event(e) for e in events if Handled.is_type(e.type))
        return handled, events
