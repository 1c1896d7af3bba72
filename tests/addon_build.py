"""The add-on's image, built without Docker: its Dockerfile's steps run in a Debian chroot.

There is no Docker engine on the build machines, but the add-on's base image,
ghcr.io/home-assistant/{arch}-base-debian:bookworm, is Debian bookworm-slim plus a few
packages, s6-overlay and bashio. Its stand-in here:

- a Debian bookworm chroot (debootstrap minbase, from this machine's Debian mirror) with the
  base image's packages (bash jq tzdata curl ca-certificates xz-utils) and its environment,
  and, like it, no apt lists. Built once per machine and cached under
  ~/.cache/wyoming-realtime-text, as the HA environments are (real_ha_env.py);
- per image, a copy of it, where `dockerfile_build` runs the Dockerfile as Docker would:
  ARG (build.yaml's args), SHELL, ENV, WORKDIR, COPY from the add-on folder (the build
  context) and RUN in the chroot (with this machine's pip index settings, as in
  real_ha_env). An instruction it does not know fails the build, so the Dockerfile cannot
  grow a step this test silently skips;
- instead of s6-overlay and bashio, two small stand-ins (`/command/with-contenv`, `bashio`)
  with the bashio functions the add-on's scripts call, so that its s6 `run` scripts run
  as they are.

`start_container` then runs the add-on's services as s6 would start them (the server's
longrun, the discovery oneshot) in a network namespace of their own, so the add-on's fixed
port 10310 never meets anything on this machine, and checks them with the Dockerfile's
HEALTHCHECK command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import prebuild
from real_ha_env import (
    Build,
    EnvError,
    EnvMissing,
    cached_root,
    ensure_debootstrap,
    host_debian_mirror,
    host_pip_settings,
    in_chroot,
    mounts_under,
    pip_conf,
)

SUITE = "bookworm"
BASE_KEY = f"ha-base-debian-{SUITE}-v1"  # bump when the recipe below changes
STOCK_KEY = f"debian-{SUITE}-stock-python3-v2"  # ... and this when stock_root's does
HA_BASE_PACKAGES = ["bash", "jq", "tzdata", "curl", "ca-certificates", "xz-utils"]
# ENV of ghcr.io/home-assistant/*-base-debian (docker-base's debian/Dockerfile), and Docker's
# default PATH.
HA_BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "CURL_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "HOME": "/root",
}
HA_BASE_SHELL = ["/bin/sh", "-c"]  # Docker's default; the base image sets bash, the add-on too
STAND_INS = {  # the images this module can stand in for, by the machine's architecture
    "x86_64": f"ghcr.io/home-assistant/amd64-base-debian:{SUITE}",
}
INSIDE_WORK = "/mnt/work"

WITH_CONTENV = """#!/bin/sh
# Stand-in for s6-overlay's with-contenv: the container's environment is already this one.
exec "$@"
"""
BASHIO = """#!/bin/bash
# Stand-in for bashio: the functions the add-on's s6 scripts call, then the script itself.
bashio::log.info() { echo "[INFO] $*"; }
bashio::log.error() { echo "[ERROR] $*" >&2; }
bashio::exit.nok() { echo "[FATAL] $*" >&2; exit 1; }
bashio::var.json() {
    local out="" sep=""
    while (( $# >= 2 )); do out+="${sep}\\"$1\\": \\"$2\\""; sep=", "; shift 2; done
    echo "{${out}}"
}
bashio::discovery() { echo "$1 $2" >> "${BASHIO_DISCOVERY_LOG:-/dev/null}"; echo '{}'; }
script="$1"
shift
source "${script}" "$@"
"""


_LABEL = f"the stand-in for ha base-debian:{SUITE}"


def base_root() -> Path:
    """The cached stand-in of the base image (built from nothing when missing or broken)."""
    if os.geteuid() != 0:
        raise EnvMissing("a chroot needs root")
    for tool in ("unshare", "chroot", "ip"):
        if not shutil.which(tool):
            raise EnvMissing(f"{tool} is needed (util-linux, coreutils, iproute2)")
    return cached_root(BASE_KEY, _LABEL, lambda root: (root / "usr/bin/jq").exists(), _build_base)


_STOCK_LABEL = f"stock Debian {SUITE} with python3"


def stock_root() -> Path:
    """The cached stand-in of a fresh Debian machine: minbase, python3, no python3-venv."""
    return cached_root(STOCK_KEY, _STOCK_LABEL, _has_python3, partial(_stock, base_root()))


def _has_python3(root: Path) -> bool:
    return (root / "usr/bin/python3").exists()


def _stock(base: Path, root: Path, build: Build) -> None:
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    apt_get = ["apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    build.run(in_chroot(root, [*apt_get, "update"], env=env), "apt-get update")
    # python3, with its recommends as Debian's installer does, and apt-utils: minbase
    # lacks it, every installed Debian has it (Priority: important).
    install = [*apt_get, "install", "-y", "python3", "apt-utils"]
    build.run(in_chroot(root, install, env=env), "apt-get install python3 apt-utils")
    build.run(in_chroot(root, ["apt-get", "clean"]), "apt-get clean")
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    if installed(root, "python3-venv"):
        raise EnvError("python3-venv came with python3: not a stock machine")


def installed(root: Path, package: str) -> bool:
    query = ["dpkg-query", "-W", "-f=${Status}", package]
    done = subprocess.run(in_chroot(root, query), capture_output=True, text=True, check=False)
    return done.stdout.strip() == "install ok installed"


def _build_base(root: Path, build: Build) -> None:
    ensure_debootstrap(build)
    mirror = host_debian_mirror()
    build.run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], "debootstrap")
    # A suite's Release file may be past its Valid-Until date; apt would refuse it.
    (root / "etc/apt/apt.conf.d/99no-check-valid-until").write_text(
        'Acquire::Check-Valid-Until "false";\n'
    )
    certs = root / "usr/local/share/ca-certificates"
    certs.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, certs / cert.name)  # this machine's CAs: pip must trust its proxy
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    apt_get = ["apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    build.run(in_chroot(root, [*apt_get, "update"], env=env), "apt-get update (chroot)")
    install = [*apt_get, "install", "-y", "--no-install-recommends", *HA_BASE_PACKAGES]
    build.run(in_chroot(root, install, env=env), "apt-get install (chroot)")
    build.run(in_chroot(root, ["update-ca-certificates"]), "update-ca-certificates (chroot)")
    build.run(in_chroot(root, ["apt-get", "clean"]), "apt-get clean (chroot)")
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)


# -- the Dockerfile ------------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: continuations joined, comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            word, _, rest = text.partition(" ")
            steps.append((word.upper(), rest.strip()))
    if pending:
        raise ValueError(f"{dockerfile}: ends inside a continued line")
    return steps


def expand(text: str, variables: dict[str, str]) -> str:
    """Docker's ${NAME} and $NAME substitution (the forms the add-on uses)."""
    pattern = r"\$\{(\w+)\}|\$(\w+)"
    return re.sub(pattern, lambda m: variables.get(m[1] or m[2], ""), text)


@dataclass
class Image:
    """A built image: its root, environment, shell and health check command."""

    root: Path
    env: dict[str, str]
    shell: list[str]
    healthcheck: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # each step, with its seconds


def _copy(context: Path, root: Path, workdir: str, args: str) -> None:
    words = shlex.split(args)
    if any(word.startswith("--") for word in words):
        raise EnvError(f"COPY {args}: options are not supported by this stand-in")
    *sources, dest = words
    target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    into = target.endswith("/") or len(sources) > 1
    for source in sources:
        path = context / source
        if not path.exists():
            raise EnvError(f"COPY {source}: not in the build context {context}")
        where = root / target.lstrip("/")
        if path.is_dir():
            shutil.copytree(path, where, symlinks=True, dirs_exist_ok=True)
        else:
            where = where / path.name if into else where
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, where)


def dockerfile_build(
    context: Path, build_yaml: dict[str, Any], arch: str, root: Path, work: Path
) -> Image:
    """Run ``context/Dockerfile`` for ``arch`` in ``root`` (a copy of the base stand-in).

    ``work`` is a host directory for the RUN steps' logs. EnvError when a step fails.
    """
    args: dict[str, str] = {"BUILD_FROM": build_yaml["build_from"][arch]}
    declared: dict[str, str] = {}
    image = Image(root, dict(HA_BASE_ENV), list(HA_BASE_SHELL))
    workdir = "/"
    binds: dict[Path, str] = {}
    (root / "etc/pip.conf").write_text(pip_conf(host_pip_settings(), binds))
    for number, (word, rest) in enumerate(instructions(context / "Dockerfile"), 1):
        started = time.monotonic()
        if word == "ARG":
            name, _, default = rest.partition("=")
            value = build_yaml.get("args", {}).get(name, args.get(name, default.strip('"')))
            declared[name] = str(value)
        elif word == "FROM":
            wanted = expand(rest, declared)
            if STAND_INS.get(os.uname().machine) != wanted:
                raise EnvMissing(f"no stand-in for {wanted} on {os.uname().machine}")
            declared = {}  # ARGs before FROM are not seen after it
        elif word == "SHELL":
            image.shell = json.loads(rest)
        elif word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                image.env[name] = expand(value, image.env)
        elif word == "WORKDIR":
            workdir = rest
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            _copy(context, root, workdir, rest)
        elif word == "RUN":
            env = {**declared, **image.env}
            argv = ["/usr/bin/env", "-C", workdir, *image.shell, rest]
            command = in_chroot(root, argv, readonly=binds, env=env)
            _run(command, work / f"step{number}.log", f"RUN {rest}")
        elif word == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            if not command or "NONE" in options.split():
                raise EnvError(f"HEALTHCHECK {rest}: expected a CMD")
            command = command.strip()
            image.healthcheck = json.loads(command) if command.startswith("[") else command
        elif word in ("LABEL", "EXPOSE"):
            pass
        else:
            raise EnvError(f"{word} {rest}: an instruction this stand-in does not run")
        image.log.append(f"{word} {rest[:60]} ({time.monotonic() - started:.1f}s)")
    return image


def _run(command: list[str], log: Path, what: str, timeout: float = 600) -> None:
    with log.open("w", encoding="utf-8") as out:
        try:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise EnvError(f"{what}: timed out after {timeout:g}s (log: {log})") from err
    if done.returncode != 0:
        tail = " | ".join(log.read_text(encoding="utf-8").strip().splitlines()[-8:])
        raise EnvError(f"{what} exited {done.returncode}: {tail} (log: {log})")


def new_root(into: Path) -> Path:
    """A fresh copy of the base stand-in, to build one image in."""
    root = into / "root"
    base = prebuild.result(prebuild.ADDON_BASE, base_root)
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    (root / "command").mkdir(exist_ok=True)
    for path, text in (
        (root / "command/with-contenv", WITH_CONTENV),
        (root / "usr/bin/bashio", BASHIO),
    ):
        path.write_text(text)
        path.chmod(0o755)
    return root


def remove_root(root: Path) -> None:
    if not mounts_under(root):
        shutil.rmtree(root, ignore_errors=True)


# -- running it ------------------------------------------------------------------------------

SESSION = r"""
# The add-on's services as s6 starts them, then its health check, then a stop (SIGTERM).
out=/mnt/work
export BASHIO_DISCOVERY_LOG=$out/discovery.txt
/etc/s6-overlay/s6-rc.d/wyoming-realtime-text/run > $out/server.log 2>&1 &
server=$!
/etc/s6-overlay/s6-rc.d/discovery/run > $out/discovery.log 2>&1 &
discovery=$!
healthy=no
for _ in $(seq 1 "$TRIES"); do
    if "$@" > $out/health.txt 2>&1; then healthy=yes; break; fi
    kill -0 $server 2> /dev/null || break
    sleep 0.5
done
echo $healthy > $out/healthy.txt
if [ $healthy = yes ]; then
    python3 -c "$DESCRIBE" > $out/info.json 2>&1
    for _ in $(seq 1 20); do kill -0 $discovery 2> /dev/null || break; sleep 0.5; done
fi
kill $discovery 2> /dev/null
kill -TERM $server 2> /dev/null
wait $server
echo $? > $out/server_exit.txt
"""
DESCRIBE = (
    "import asyncio, json; from wyoming_realtime_text.healthcheck import check; "
    "print(json.dumps(asyncio.run(check()).to_dict()))"
)


@dataclass
class Run:
    healthy: bool
    server_log: str
    server_exit: int | None
    info: dict[str, Any] | None
    health_output: str
    discovery: str
    discovery_log: str


def start_container(image: Image, options: dict[str, Any], work: Path, tries: int = 60) -> Run:
    """Run the add-on's services with ``options`` as /data/options.json; what happened."""
    data = image.root / "data"
    data.mkdir(exist_ok=True)
    (data / "options.json").write_text(json.dumps(options), encoding="utf-8")
    health = image.healthcheck
    argv = [*image.shell, health] if isinstance(health, str) else list(health)
    env = {**image.env, "TRIES": str(tries), "DESCRIBE": DESCRIBE}
    inside = in_chroot(image.root, ["/bin/sh", "-c", SESSION, "session", *argv], work=work, env=env)
    # A network namespace of its own: its loopback only, so port 10310 is the add-on's.
    command = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    subprocess.run([*command, *inside], timeout=tries + 60, check=False)

    def read(name: str) -> str:
        path = work / name
        return path.read_text(encoding="utf-8") if path.exists() else ""

    info_text = read("info.json").strip()
    code = read("server_exit.txt").strip()
    return Run(
        healthy=read("healthy.txt").strip() == "yes",
        server_log=read("server.log"),
        server_exit=int(code) if code else None,
        info=json.loads(info_text) if info_text.startswith("{") else None,
        health_output=read("health.txt"),
        discovery=read("discovery.txt"),
        discovery_log=read("discovery.log"),
    )
