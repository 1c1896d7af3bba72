"""The README's first command, as written, on a fresh Debian 12 (bookworm) machine.

Stock Debian has python3 but not python3-venv (a package of its own), so `python3 -m venv`
fails there; the command's `apt-get` fallback installs it, as root. The stand-in machine:
a Debian bookworm chroot (addon_build's cached minbase one) with `python3` added from this
machine's Debian mirror, built once and cached under ~/.cache/wyoming-realtime-text. Each
run takes a throwaway copy of it (so the command's `apt-get install python3-venv` really
happens), puts the repository's tracked files in it (what a fresh clone has) and runs, as
root with OPENAI_API_KEY unset and the host's pip index settings (real_ha_env.pip_conf):

- the README's first command: it must end with exit code 2 and the one-line
  "realtime.api_key is not set: ... --simulator" message;
- the server it installed, alone: that one line, and nothing else, on stderr;
- `.venv/bin/wyoming-realtime-text --simulator --uri tcp://127.0.0.1:PORT` (live page off):
  it answers a Wyoming `describe` from this process (the chroot shares its network).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import addon_build
import prebuild
import pytest
from addon_files import REPO
from harness import free_port
from real_ha_env import (
    EnvError,
    EnvMissing,
    host_pip_settings,
    in_chroot,
    pip_conf,
)
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

pytestmark = pytest.mark.needs_build(prebuild.DEBIAN_STOCK)
CHECKOUT = "/root/wyoming-realtime-text"  # where the fresh clone is, inside the chroot
# stderr lines of this stand-in, not of a Debian machine: this machine's local pip index lacks
# some projects' folders; in_chroot mounts no /dev/pts (apt cannot log the dpkg run); and the
# command runs without a terminal (stdin /dev/null, no TERM), so debconf falls back from its
# dialog frontend, aloud (a root shell on a terminal shows none of it: python3-venv asks
# nothing).
NOT_DEBIANS = (
    re.compile(r"^debconf: "),
    re.compile(r"^dpkg-preconfigure: unable to re-open stdin"),
    re.compile(r"^WARNING: Location 'file:///mnt/pip\d+/.*' is ignored: it is neither a file"),
    re.compile(r"^E: Can not write log \(Is /dev/pts mounted\?\)"),
)
KEY_LINE = re.compile(r"^error: realtime\.api_key is not set: [^\n]*--simulator\)?$")


def readme_first_command() -> str:
    """README.md line 4, the first line of its first ```sh block, without its # comment."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[2] == "```sh", lines[:4]
    command, _, comment = lines[3].rpartition("   # ")
    assert command and comment, lines[3]
    return command.strip()


def fresh_machine(into: Path) -> tuple[Path, dict[Path, str]]:
    """A throwaway copy of the stock root with a fresh clone at CHECKOUT; its pip binds."""
    root = into / "root"
    try:
        stock = prebuild.result(prebuild.DEBIAN_STOCK, addon_build.stock_root)
    except EnvMissing as missing:
        pytest.skip(f"no Debian chroot here: {missing}")
    except EnvError as err:
        pytest.fail(f"cannot build the stock Debian stand-in: {err}", pytrace=False)
    subprocess.run(["cp", "-a", str(stock), str(root)], check=True)
    binds: dict[Path, str] = {}
    (root / "etc/pip.conf").write_text(pip_conf(host_pip_settings(), binds))
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0 or not listed.stdout:
        pytest.skip("not a git checkout: no tracked files to clone")
    checkout = root / CHECKOUT.lstrip("/")
    for name in listed.stdout.split("\0"):
        source = REPO / name
        if name and source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    return root, binds


def as_root(root: Path, binds: dict[Path, str], command: str) -> list[str]:
    """``command`` run by bash (root's shell on Debian) in the clone, as root would."""
    argv = ["/usr/bin/env", "-C", CHECKOUT, "bash", "-c", command]
    return in_chroot(root, argv, readonly=binds)


async def describe(port: int, within: float) -> Info:
    deadline = time.monotonic() + within
    while True:
        try:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Describe().event())
                while True:
                    event = await asyncio.wait_for(client.read_event(), timeout=10)
                    if event is None:
                        raise ConnectionError("closed before its info")
                    if Info.is_type(event.type):
                        return Info.from_event(event)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.timeout(900)  # cold: the stock chroot is built first (debootstrap, python3)
def test_the_readmes_first_command_runs_on_a_fresh_debian(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a chroot needs root")
    command = readme_first_command()
    assert command.endswith(".venv/bin/wyoming-realtime-text"), command
    root, binds = fresh_machine(tmp_path)
    try:
        assert not addon_build.installed(root, "python3-venv")
        venv = in_chroot(root, ["python3", "-m", "venv", "/tmp/v"])
        assert subprocess.run(venv, capture_output=True).returncode != 0  # as on stock Debian
        first = subprocess.run(
            as_root(root, binds, command),
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        report = f"exit {first.returncode}\nstdout:\n{first.stdout}\nstderr:\n{first.stderr}"
        (tmp_path / "first.txt").write_text(report)
        assert first.returncode == 2, report
        # The command's apt-get installed it.
        assert addon_build.installed(root, "python3-venv"), report
        lines = first.stderr.strip().splitlines()
        lines = [line for line in lines if not any(p.match(line) for p in NOT_DEBIANS)]
        assert len(lines) == 1, report  # the one line, nothing from venv, apt-get or pip
        assert KEY_LINE.match(lines[0]), report
        assert "Traceback" not in first.stderr, report

        again = subprocess.run(
            as_root(root, binds, ".venv/bin/wyoming-realtime-text"),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert again.returncode == 2, again
        assert KEY_LINE.match(again.stderr.rstrip("\n")), again.stderr  # one line, only it
        assert again.stdout == "", again.stdout

        packaged = root / CHECKOUT.lstrip("/") / "wyoming_realtime_text/config.yaml"
        config = packaged.read_text(encoding="utf-8")
        web_on = "  enabled: true\n  host: ${WEB_HOST"
        assert config.count(web_on) == 1
        (packaged.parent.parent / "no-web.yaml").write_text(
            config.replace(web_on, "  enabled: false\n  host: ${WEB_HOST")
        )
        port = free_port()
        serve = ".venv/bin/wyoming-realtime-text --simulator --config no-web.yaml --uri "
        log = tmp_path / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                as_root(root, binds, f"exec {serve}tcp://127.0.0.1:{port}"),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                info = asyncio.run(describe(port, within=60))
            finally:
                server.terminate()
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        served = log.read_text()
        (asr,) = info.asr
        (handle,) = info.handle
        assert asr.name == handle.name == "realtime-text", served
        assert f"Ready on tcp://127.0.0.1:{port}" in served, served
        assert "Traceback" not in served, served
        assert server.returncode == 0, served  # SIGTERM: a clean stop
    finally:
        addon_build.remove_root(root)
