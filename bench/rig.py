"""The system under test: the real server as a subprocess, the simulator in this process.

The server is started exactly as a user starts it (`python -m wyoming_realtime_text
--config FILE --uri URI`) and pointed at a `RealtimeSimulator` listening on loopback here,
so the simulator's `conn.log` timestamps and the clients' timestamps share this process's
clock; the server's /proc entries give its resident memory and CPU time. The server runs
this checkout's package (PYTHONPATH), whatever copy is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event as WsEvent

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection

REPO = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench-not-a-real-key"
FALLBACK = "BENCH-FALLBACK: the assistant is unavailable."
RECORD_LIMIT = 256  # simulator records kept per connection: enough for the latest turn
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TYPE_HEAD = re.compile(rb'"type"\s*:\s*"([^"]+)"')


class ConfigRejected(RuntimeError):
    """The server refused its config (exit code 2); the message is its one error line."""


@dataclass
class Server:
    process: asyncio.subprocess.Process
    uri: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rss_bytes(self) -> int:
        """Resident memory (VmRSS) of the server process."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (the clients and the simulator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """CPU seconds the server and the bench used over `seconds` of wall time."""

    seconds: float = 0.0
    server: float = 0.0
    bench: float = 0.0

    @property
    def server_cores(self) -> float:
        """The server's load, 1.0 = one core busy (above it: figures are queueing time)."""
        return self.server / self.seconds if self.seconds else 0.0

    @property
    def bench_cores(self) -> float:
        return self.bench / self.seconds if self.seconds else 0.0


@contextlib.contextmanager
def cpu_use(server: Server) -> Iterator[CpuUse]:
    """What the block costs in CPU, read from /proc and getrusage when it ends."""
    use = CpuUse()
    server_before, bench_before, start = server.cpu_seconds(), own_cpu_seconds(), time.monotonic()
    try:
        yield use
    finally:
        use.seconds = time.monotonic() - start
        use.server = server.cpu_seconds() - server_before
        use.bench = own_cpu_seconds() - bench_before


def raise_fd_limit() -> None:
    """200 clients need ~400 sockets here and ~400 in the server (which inherits this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(sim_url: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config for the simulator; `sections` add or override keys section by section."""
    config: dict[str, Any] = {
        "realtime": {
            "url": sim_url,
            "dialect": "ga",
            "model": "gpt-realtime",
            "api_key": "${BENCH_REALTIME_KEY}",
            "connect_timeout": 10,
            "response_timeout": 30,
        },
        "languages": ["en"],
        "fallback_text": FALLBACK,
        # 200 clients at once, each with a connection per request: above the default cap.
        "server": {"max_connections": 1024},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def _prepare(workdir: Path, config: dict[str, Any]) -> tuple[Path, BinaryIO]:
    """Write the config file; open the server's log file."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return config_path, (workdir / "server.log").open("wb")


def _pythonpath() -> str:
    """This checkout first: the server measured is the code beside this bench."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


async def start_server(workdir: Path, config: dict[str, Any]) -> Server:
    """Start the server and wait until it accepts connections."""
    config_path, log = _prepare(workdir, config)
    uri = f"tcp://127.0.0.1:{free_port()}"
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wyoming_realtime_text",
            "--config",
            str(config_path),
            "--uri",
            uri,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "BENCH_REALTIME_KEY": API_KEY, "PYTHONPATH": _pythonpath()},
        )
    finally:
        log.close()
    log_path = Path(log.name)
    server = Server(process, uri, log_path)
    port = int(uri.rsplit(":", 1)[1])
    for _ in range(400):
        if process.returncode is not None:
            message = server.log().strip().splitlines()[-1:] or [""]
            if process.returncode == 2:
                raise ConfigRejected(message[0])
            raise RuntimeError(f"server exited {process.returncode}:\n{server.log()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return server
    await stop_server(server)
    raise RuntimeError(f"server did not start:\n{server.log()}")


async def stop_server(server: Server) -> None:
    """SIGTERM, as a service manager stops it; SIGKILL if it hangs."""
    if server.process.returncode is not None:
        return
    server.process.terminate()
    try:
        async with asyncio.timeout(10):
            await server.process.wait()
    except TimeoutError:
        server.process.kill()
        await server.process.wait()


class StampedConnection(ServerConnection):
    """A simulator connection that notes when each client event reaches its socket.

    The simulator's `conn.log` stamps an event when it gets to handle it, that is after
    handling every event before it; `arrivals` stamps it as its bytes arrive, which splits
    the simulator's own queueing from the server's latency. `closed_at`: when the server's
    close frame arrived (or the TCP connection ended without one): the session closed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: deque[tuple[float, str]] = deque(maxlen=RECORD_LIMIT)
        self.closed_at: float | None = None

    def process_event(self, event: WsEvent) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
            head = _TYPE_HEAD.search(bytes(event.data[:256]))
            self.arrivals.append((time.monotonic(), head.group(1).decode() if head else ""))
        elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
            self.closed_at = self.closed_at or time.monotonic()
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_at = self.closed_at or time.monotonic()
        super().connection_lost(exc)


class StampedSimulator(RealtimeSimulator):
    """The project's simulator, unchanged but for `StampedConnection` connections."""

    connection_class = StampedConnection


def logged_at(conn: SimConnection, way: str, kinds: frozenset[str], since: float) -> float | None:
    """When the simulator first handled ("in") / sent ("out") one of `kinds` from `since`."""
    return next(
        (at for at, d, kind in conn.log if at >= since and d == way and kind in kinds), None
    )


def arrived_at(conn: SimConnection, kinds: frozenset[str], since: float) -> float | None:
    """When one of `kinds` first reached the simulator's socket at or after `since`."""
    assert isinstance(conn.ws, StampedConnection)
    return next((at for at, kind in conn.ws.arrivals if at >= since and kind in kinds), None)


def session_of(sim: RealtimeSimulator, transcript: str) -> SimConnection | None:
    """The simulated session that heard `transcript` (every commit is heard differently)."""
    return next((c for c in reversed(sim.connections) if transcript in c.item_texts.values()), None)


@contextlib.asynccontextmanager
async def serving(
    workdir: Path, scenario: Scenario | None = None, **sections: dict[str, Any]
) -> AsyncIterator[tuple[RealtimeSimulator, Server]]:
    """A fresh simulator and a fresh server configured for it, for one measurement."""
    simulator = StampedSimulator(scenario=scenario, record_limit=RECORD_LIMIT)
    async with simulator as sim:
        server = await start_server(workdir, server_config(sim.url, **sections))
        try:
            yield sim, server
        finally:
            await stop_server(server)
