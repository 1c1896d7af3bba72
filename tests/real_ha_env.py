"""Home Assistant core environments for the black-box tests: built once per machine, cached.

Each HA release runs in an environment of its own, keyed by its version and Python, under
~/.cache/wyoming-realtime-text (as the real wyoming-satellite's venv), built under a file
lock so that several pytest sessions or workers never build one over each other:

- HA 2025.x: a venv of pyenv's Python 3.13.0. 2025.5 and later declare Python >= 3.13.2
  but run on 3.13.0, so they are installed with `pip install --ignore-requires-python`.
- HA 2026.x needs Python >= 3.14.2, which this machine lacks: a Debian testing (`forky`)
  chroot has it. It is made with debootstrap from this machine's own Debian mirror, given
  this machine's CA certificates and pip index settings, and run in a private mount
  namespace (`unshare --mount`): its /proc, /dev and /sys mounts exist only for the
  process inside and vanish with it, so nothing is left mounted, whatever happens to the
  test. It shares loopback with the host.

In both, HA is installed from PyPI as `homeassistant==VERSION`, then the pip requirements
of the integrations `ha_driver.py` sets up, read from the installed HA's manifests (what HA
would install at its first start), under HA's own package constraints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness import cache_dir

DRIVER = Path(__file__).with_name("ha_driver.py")
DEBIAN_SUITE = "forky"  # Debian testing: python3.14
CHROOT_PACKAGES = [
    *("python3.14", "python3.14-venv", "python3.14-dev"),
    *("build-essential", "ca-certificates"),
]
CHROOT_PYTHON = "/opt/ha/bin/python"  # the venv inside the chroot
INSIDE_WORK = "/mnt/work"  # where a chroot sees the host directory it is given
STEP_TIMEOUT = 900  # seconds for one build step (debootstrap, apt, pip)
PIP_INDEX_KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "trusted-host",
    "timeout",
    "default-timeout",
)
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EnvError(Exception):
    """The environment could not be built or does not work: a test failure, with the why."""


class EnvMissing(Exception):
    """This machine lacks a prerequisite (not root, no pyenv 3.13.0): a reason to skip."""


@dataclass(frozen=True)
class HaSpec:
    """One Home Assistant release and the Python it runs on."""

    version: str
    python: str  # "3.13.0" (pyenv) or "3.14" (the forky chroot's)
    chroot: bool = False

    @property
    def key(self) -> str:
        where = f"{DEBIAN_SUITE}-py{self.python}" if self.chroot else f"pyenv-py{self.python}"
        return f"ha-{self.version}-{where}"

    @property
    def label(self) -> str:
        return f"HA {self.version} (Python {self.python}{', chroot' if self.chroot else ''})"


@dataclass(frozen=True)
class HaEnv:
    """A built environment: how to run a program with its Python."""

    spec: HaSpec
    path: Path  # the venv, or the chroot's root
    build_seconds: float | None  # how long it took from nothing, when this machine built it

    def command(self, workdir: Path, *args: str) -> tuple[list[str], str]:
        """The command running ``workdir/ha_driver.py *args``, and workdir as the driver sees it.

        A chroot sees ``workdir`` at INSIDE_WORK (a bind mount in its own namespace).
        """
        if self.spec.chroot:
            driver = f"{INSIDE_WORK}/{DRIVER.name}"
            argv = [CHROOT_PYTHON, driver, *args]
            return in_chroot(self.path, argv, work=workdir), INSIDE_WORK
        python = self.path / "bin" / "python"
        return [str(python), str(workdir / DRIVER.name), *args], str(workdir)


def in_chroot(
    root: Path,
    argv: list[str],
    *,
    work: Path | None = None,
    readonly: dict[Path, str] | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """``argv`` run in ``root``, with proc/dev/sys and the host's directories mounted for it.

    `unshare --mount --propagation private` gives the command a mount namespace of its own:
    every mount below is made there, invisible to the host and gone when the last process
    in it exits. ``work`` is seen writable at INSIDE_WORK, each of ``readonly`` read-only
    where it maps to; all under a tmpfs on /mnt, so the cached root stays untouched.
    """
    lines = [
        "set -e",
        'R="$1"; shift',
        'mount -t proc proc "$R/proc"',
        'mount --bind /dev "$R/dev"',
        'mount -t sysfs sysfs "$R/sys"',
        'mount -t tmpfs tmpfs "$R/mnt"',
    ]
    binds = [(work, INSIDE_WORK, False)] if work is not None else []
    binds += [(host, inside, True) for host, inside in (readonly or {}).items()]
    for host, inside, ro in binds:
        if not inside.startswith("/mnt/"):
            raise ValueError(f"binds go under /mnt: {inside}")
        target = f'"$R"{shlex.quote(inside)}'
        lines.append(f"mkdir -p {target} && mount --bind {shlex.quote(str(host))} {target}")
        if ro:
            lines.append(f"mount -o remount,bind,ro {target}")
    variables = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in variables.items())
    lines.append(f'exec chroot "$R" /usr/bin/env -i {assignments} "$@"')
    script = "\n".join(lines)
    unshare = ["unshare", "--mount", "--propagation", "private", "--"]
    return [*unshare, "sh", "-c", script, "sh", str(root), *argv]


# -- building ----------------------------------------------------------------------------


class Labelled(Protocol):
    """What a build is of, as its log and errors name it (a HaSpec, or another tree's)."""

    @property
    def label(self) -> str: ...


class Build:
    """One environment's build: each step logged to ``log``, a failure raised as EnvError."""

    def __init__(self, spec: Labelled, log: Path) -> None:
        self.spec = spec
        self.log = log
        log.write_text(f"building {spec.label}\n", encoding="utf-8")

    def run(self, argv: list[str], what: str, timeout: float = STEP_TIMEOUT) -> str:
        started = time.monotonic()
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {shlex.join(argv)}\n")
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise EnvError(f"{self.spec.label}: {what}: {err} (log: {self.log})") from err
        with self.log.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
            log.write(f"-> exit {result.returncode} in {time.monotonic() - started:.1f}s\n")
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            errors = [line for line in lines if "WARNING" not in line] or lines
            raise EnvError(
                f"{self.spec.label}: {what} exited {result.returncode}: "
                f"{' | '.join(errors[-6:])} (log: {self.log})"
            )
        return result.stdout


def host_pip_settings() -> dict[str, str]:
    """This machine's pip index settings (config files and PIP_* variables), key → value."""
    try:
        listing = subprocess.run(
            ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    settings: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line.strip())
        if match and match.group(1) in PIP_INDEX_KEYS:
            settings[match.group(1)] = match.group(2)
    return settings


def host_debian_mirror() -> str:
    """The Debian archive this machine's apt uses (not its security archive)."""
    sources: list[str] = []
    apt = Path("/etc/apt")
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]:
        if path.suffix not in (".list", ".sources") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        sources += re.findall(r"^\s*URIs:\s*(\S+)", text, re.MULTILINE)
        sources += re.findall(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
    for uri in sources:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise EnvError(f"no Debian archive in this machine's apt sources: {sources}")


def ensure_debootstrap(build: Build) -> None:
    """debootstrap is not on a fresh machine: install it from Debian, as CI does chromium."""
    if shutil.which("debootstrap"):
        return
    try:
        build.run(["apt-get", "install", "-y", "-qq", "debootstrap"], "apt-get install")
    except EnvError:
        build.run(["apt-get", "update", "-qq"], "apt-get update")
        build.run(["apt-get", "install", "-y", "-qq", "debootstrap"], "apt-get install")


def pip_conf(settings: dict[str, str], binds: dict[Path, str]) -> str:
    """The host's index settings for pip in the chroot; local paths become bind mounts.

    A local index's pages link to their files relatively (``../../files/x.whl``), so for
    an index the parent of its path is mounted; for find-links, the directory itself.
    """

    def inside(key: str, value: str) -> str:
        words = []
        for word in value.split():
            local = Path(word.removeprefix("file://"))
            if local.is_absolute() and local.exists():
                top = local if key == "find-links" else local.parent
                mount = binds.setdefault(top, f"/mnt/pip{len(binds)}")
                here = f"{mount}/{local.relative_to(top)}".removesuffix("/.")
                word = ("file://" if word.startswith("file://") else "") + here
            words.append(word)
        return " ".join(words)

    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    lines += [f"{key} = {inside(key, value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this namespace (a build must never rm them)."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def install_ha(
    spec: HaSpec, build: Build, python: list[str], driver: list[str], loose: bool
) -> None:
    """homeassistant==VERSION, then its integrations' requirements under its constraints."""
    ignore = ["--ignore-requires-python"] if loose else []
    pip = [*python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *ignore]
    build.run([*pip, f"homeassistant=={spec.version}"], "pip install homeassistant")
    needs = json.loads(build.run(driver, "reading the integrations' requirements"))
    constraints = ["-c", needs["constraints"]] if needs["constraints"] else []
    build.run([*pip, *constraints, *needs["requirements"]], "pip install the requirements")


def build_venv(spec: HaSpec, path: Path, build: Build) -> None:
    base = pyenv_python(spec.python)
    build.run([str(base), "-m", "venv", str(path)], "creating the venv")
    python = [str(path / "bin" / "python")]
    install_ha(spec, build, python, [*python, str(DRIVER), "requirements"], loose=True)


def build_chroot(spec: HaSpec, root: Path, build: Build) -> None:
    ensure_debootstrap(build)
    mirror = host_debian_mirror()
    script = "/usr/share/debootstrap/scripts/sid"  # bookworm's debootstrap has no forky one
    build.run(
        ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), mirror, script],
        "debootstrap",
    )
    # The suite's Release file may be past its Valid-Until date; apt would refuse it.
    (root / "etc/apt/apt.conf.d/99no-check-valid-until").write_text(
        'Acquire::Check-Valid-Until "false";\n'
    )
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    certs = root / "usr/local/share/ca-certificates"
    certs.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, certs / cert.name)  # this machine's CAs: pip must trust its proxy
    binds: dict[Path, str] = {}
    (root / "etc/pip.conf").write_text(pip_conf(host_pip_settings(), binds))
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    apt_get = ["apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    build.run(in_chroot(root, [*apt_get, "update"], env=apt_env), "apt-get update (chroot)")
    install = [*apt_get, "install", "-y", "--no-install-recommends", *CHROOT_PACKAGES]
    build.run(in_chroot(root, install, env=apt_env), "apt-get install python3.14 (chroot)")
    build.run(in_chroot(root, ["update-ca-certificates"]), "update-ca-certificates (chroot)")
    build.run(in_chroot(root, ["python3.14", "-m", "venv", "/opt/ha"]), "venv (chroot)")
    pip_env = {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
    binds[DRIVER.parent] = "/mnt/tests"
    python = in_chroot(root, [CHROOT_PYTHON], readonly=binds, env=pip_env)
    requirements = [CHROOT_PYTHON, f"/mnt/tests/{DRIVER.name}", "requirements"]
    driver = in_chroot(root, requirements, readonly=binds)
    install_ha(spec, build, python, driver, loose=False)
    build.run(in_chroot(root, ["apt-get", "clean"]), "apt-get clean (chroot)")
    shutil.rmtree(root / "root/.cache", ignore_errors=True)


def pyenv_python(version: str) -> Path:
    """pyenv's build of ``version`` (the machines have 3.13.0 there); EnvMissing if absent."""
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout)
    for root in filter(None, roots):
        python = Path(root.strip()) / "versions" / version / "bin" / "python3"
        if python.exists():
            return python
    raise EnvMissing(f"pyenv's Python {version} is not on this machine (looked in {roots})")


def check(env: HaEnv) -> str | None:
    """None when the environment runs its HA version, else what is wrong."""
    probe = "import homeassistant.const as c, wyoming, hassil; print(c.__version__)"
    if env.spec.chroot:
        argv = in_chroot(env.path, [CHROOT_PYTHON, "-c", probe])
    else:
        argv = [str(env.path / "bin" / "python"), "-c", probe]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if result.returncode != 0 or result.stdout.strip() != env.spec.version:
        return f"exit {result.returncode}: {result.stdout.strip()} {result.stderr.strip()[-500:]}"
    return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class _Named:
    label: str


def cached_root(
    key: str, label: str, present: Callable[[Path], bool], make: Callable[[Path, Build], None]
) -> Path:
    """A tree built once under the cache and reused while `present` finds it whole.

    Under the key's file lock (another process's build is waited for); a half-built tree is
    removed, never one with something mounted under it.
    """
    root = cache_dir() / key
    marker = root.parent / f"{key}.built.json"
    with locked(root.parent / f"{key}.lock"):
        if marker.exists() and present(root):
            return root
        if mounts := mounts_under(root):
            raise EnvError(f"mounts under {root}, not removing it: {mounts}")
        marker.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        build = Build(_Named(label), root.parent / f"{key}.build.log")
        started = time.monotonic()
        try:
            make(root, build)
        except BaseException:
            if not mounts_under(root):
                shutil.rmtree(root, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        marker.write_text(json.dumps({"key": key, "build_seconds": seconds}))
        return root


def ha_env(spec: HaSpec) -> HaEnv:
    """The environment for ``spec``: reused when cached and working, else built from nothing.

    Raises EnvMissing when this machine cannot have it at all, EnvError when a build fails
    (or builds something that does not run its HA).
    """
    if spec.chroot and os.geteuid() != 0:
        raise EnvMissing("a chroot needs root")
    if spec.chroot and not (shutil.which("unshare") and shutil.which("chroot")):
        raise EnvMissing("unshare and chroot (util-linux, coreutils) are needed")

    def works(path: Path) -> bool:
        return check(HaEnv(spec, path, None)) is None

    def make(path: Path, build: Build) -> None:
        (build_chroot if spec.chroot else build_venv)(spec, path, build)
        if (problem := check(HaEnv(spec, path, None))) is not None:
            raise EnvError(f"{spec.label} was built but does not run: {problem}")

    path = cached_root(spec.key, spec.label, works, make)
    built = json.loads((path.parent / f"{spec.key}.built.json").read_text())
    return HaEnv(spec, path, built.get("build_seconds"))
