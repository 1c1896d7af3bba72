"""The test side of `ha_driver.py`: a real Home Assistant core process, one command at a time.

`HaProcess.start` copies the driver and the WAVs it will speak into a work directory, runs
the driver with the environment's Python (in its chroot where it has one), waits for HA to
boot and set itself up, and then sends commands and reads the answers, each bounded by a
timeout. A failing command raises `HaError` with the driver's traceback and HA's log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, BinaryIO

from real_ha_env import DRIVER, HaEnv

BOOT_TIMEOUT = 180.0  # seconds: HA's first start imports (and byte-compiles) a lot
COMMAND_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
LOG_TAIL = 6000  # characters of HA's log in a failure message


class HaError(AssertionError):
    """Home Assistant did not do what it was asked; the message says what it said."""


def prepare(workdir: Path, settings: dict[str, Any], files: list[Path]) -> BinaryIO:
    """The work directory: the driver, its settings, the files it reads; its log, open."""
    workdir.mkdir(parents=True, exist_ok=True)
    for path in [DRIVER, *files]:
        shutil.copy(path, workdir / path.name)
    (workdir / "driver.json").write_text(json.dumps(settings), encoding="utf-8")
    return (workdir / "driver.log").open("wb")


class HaProcess:
    """One Home Assistant core booted by `ha_driver.py serve`."""

    def __init__(self, process: asyncio.subprocess.Process, workdir: Path) -> None:
        self.process = process
        self.workdir = workdir
        self.ready: dict[str, Any] = {}
        self._ids = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "driver.log"

    def log(self, tail: int = LOG_TAIL) -> str:
        """HA's own log (stderr of the driver): the last ``tail`` characters."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        return ""

    @classmethod
    async def start(
        cls, env: HaEnv, workdir: Path, settings: dict[str, Any], files: list[Path]
    ) -> HaProcess:
        """Boot HA in ``workdir`` with ``settings`` (see ha_driver.py) and ``files`` beside it."""
        log = await asyncio.to_thread(prepare, workdir, settings, files)
        argv, inside = env.command(workdir, "serve", "__WORKDIR__")
        argv = [inside if arg == "__WORKDIR__" else arg for arg in argv]
        with log:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # its own process group: stop() ends all of it
                limit=1 << 22,
            )
        ha = cls(process, workdir)
        try:
            ha.ready = await ha._read(BOOT_TIMEOUT, "booting")
        except BaseException:
            await ha.stop()
            raise
        if not ha.ready.get("ready"):
            await ha.stop()
            raise HaError(f"HA did not set up: {ha.ready.get('error')}\n{ha.log()}")
        return ha

    async def _read(self, seconds: float, what: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(seconds):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise HaError(f"HA gave no answer in {seconds:g}s while {what}\n{self.log()}") from None
        if not line:
            await self.process.wait()
            code = self.process.returncode
            raise HaError(f"HA exited ({code}) while {what}\n{self.log()}")
        return json.loads(line)

    async def call(self, cmd: str, seconds: float = COMMAND_TIMEOUT, **args: Any) -> Any:
        """Run one driver command; its result, or HaError with HA's traceback and log."""
        assert self.process.stdin is not None
        self._ids += 1
        command = {"id": self._ids, "cmd": cmd, **args}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        answer = await self._read(seconds, f"running {command}")
        if answer.get("id") != self._ids:
            raise HaError(f"answer out of order: {answer} for {command}")
        if not answer["ok"]:
            raise HaError(f"{cmd} failed in HA:\n{answer['error']}\n--- HA log ---\n{self.log()}")
        return answer["result"]

    async def stop(self) -> int | None:
        """`stop` (HA shuts down cleanly), then SIGTERM and SIGKILL to its group if it hangs."""
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.process.stdin.write(b'{"id": 0, "cmd": "stop"}\n')
                await self.process.stdin.drain()
                self.process.stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            try:
                async with asyncio.timeout(STOP_TIMEOUT if sig is None else 10):
                    return await self.process.wait()
            except TimeoutError:
                continue
        return self.process.returncode
