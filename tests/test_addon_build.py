"""The add-on builds from the project's own source (no release needed) and runs.

`addon/pack.py` packs the source into the add-on folder; the add-on's Dockerfile installs it
with `install.sh` on Home Assistant's Debian base image. The slow test runs that Dockerfile
in a Debian bookworm chroot standing in for the base image (addon_build.py), then starts the
add-on's services from a stand-in options.json and asks the installed server `describe`.
The project's URL has one home, pyproject.toml; the rest must agree with it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tomllib
import zlib
from pathlib import Path
from typing import Any

import addon_build
import numpy as np
import prebuild
import pytest
from addon_files import ADDON, REPO, load_yaml
from real_ha_env import EnvError, EnvMissing

import wyoming_realtime_text
from wyoming_realtime_text import info
from wyoming_realtime_text.simulator import tts

pytestmark = pytest.mark.needs_build(prebuild.ADDON_BASE)  # the base image's stand-in

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PYPROJECT["version"]
INSTALL = ADDON / "install.sh"
KEY = "sk-addon-build-SECRET-0a1b2c3d"


def _load(script: str) -> Any:
    """One of addon/'s scripts, as a module."""
    spec = importlib.util.spec_from_file_location(f"addon_{script}", REPO / "addon" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pack = _load("pack.py")
make_images = _load("make_images.py")


# --- packing -------------------------------------------------------------------------------


def test_pack_holds_what_pip_needs_and_is_reproducible(tmp_path: Path) -> None:
    first = pack.pack(folder=tmp_path / "a")
    second = pack.pack(folder=tmp_path / "b")
    assert first.name == f"wyoming_realtime_text-{VERSION}.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = tar.getnames()
    top = f"wyoming_realtime_text-{VERSION}"
    assert {n.split("/")[0] for n in names} == {top}
    inside = {name.removeprefix(f"{top}/") for name in names}
    assert {"pyproject.toml", "README.md", "wyoming_realtime_text/__init__.py"} <= inside
    assert not [n for n in inside if "__pycache__" in n or n.endswith(".pyc")]
    tracked = subprocess.run(
        ["git", "ls-files", "wyoming_realtime_text"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    if tracked:  # a git checkout: every tracked file of the package is packed
        assert set(tracked) <= inside
    # The package data setuptools installs (pyproject's package-data) is there.
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in data["package-data"]["wyoming_realtime_text"]:
        assert list((REPO / "wyoming_realtime_text").glob(pattern)), pattern
        assert any(Path(n).match(f"wyoming_realtime_text/{pattern}") for n in inside), pattern


def test_pack_replaces_an_older_archive_and_keeps_the_folders_files(tmp_path: Path) -> None:
    (tmp_path / "wyoming_realtime_text-0.0.1.tar.gz").write_bytes(b"old")
    (tmp_path / "README.md").write_text("kept")
    target = pack.pack(folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["README.md", target.name])


def test_the_packed_archive_is_never_committed_but_its_folder_is() -> None:
    """The Dockerfile's `COPY packed/` needs the folder; the archive would go stale in git."""
    folder = "addon/wyoming_realtime_text/packed"
    assert (REPO / folder / "README.md").is_file()
    if not (shutil.which("git") and (REPO / ".git").exists()):
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0

    assert ignored(f"{folder}/wyoming_realtime_text-{VERSION}.tar.gz")
    assert not ignored(f"{folder}/README.md")
    assert not ignored(f"{folder}/.gitignore")


def test_the_pack_command_prints_where_it_wrote_and_what_to_do_next() -> None:
    done = subprocess.run(
        [sys.executable, "addon/pack.py"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    written = ADDON / "packed" / f"wyoming_realtime_text-{VERSION}.tar.gz"
    assert f"addon/wyoming_realtime_text/packed/{written.name}" in done.stdout
    assert "/addons" in done.stdout
    assert written.is_file()


def test_the_docs_and_the_builds_error_name_the_one_command_to_run() -> None:
    command = "python3 addon/pack.py"
    assert (REPO / "addon" / "pack.py").is_file()
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    assert f"```sh\n     {command}\n     ```" in docs  # step 1 of the installation
    assert f"'{command}'" in INSTALL.read_text(encoding="utf-8")


# --- install.sh's first check: something to install -------------------------------------


def _install_with_stubs(tmp_path: Path, files: list[str], requirement: str) -> tuple[int, str]:
    """install.sh run on this machine, where apt-get and python3 are stubs that stop it."""
    folder = tmp_path / "context"
    folder.mkdir()
    shutil.copy2(INSTALL, folder / "install.sh")
    for name in files:
        (folder / name).write_bytes(b"")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool in ("apt-get", "python3", "pip"):
        (stubs / tool).write_text(f'#!/bin/sh\necho "stub {tool} $*" >&2\nexit 99\n')
        (stubs / tool).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "WYOMING_REALTIME_TEXT_REQUIREMENT": requirement}
    done = subprocess.run(
        ["bash", str(folder / "install.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    "files",
    [[], ["wyoming_realtime_text-0.1.0.tar.gz", "wyoming_realtime_text-0.0.9.tar.gz"]],
    ids=["none", "two"],
)
def test_install_stops_before_downloading_without_one_packed_source(
    tmp_path: Path, files: list[str]
) -> None:
    code, stderr = _install_with_stubs(tmp_path, [*files, "README.md"], requirement="")
    assert code == 1, stderr
    assert "stub" not in stderr  # nothing was installed
    assert "run 'python3 addon/pack.py'" in stderr
    assert stderr.count("\n") == 1, stderr


@pytest.mark.parametrize(
    ("files", "requirement"),
    [(["wyoming_realtime_text-0.1.0.tar.gz"], ""), ([], "wyoming-realtime-text==0.1.0")],
    ids=["packed", "release"],
)
def test_install_goes_on_with_a_packed_source_or_a_release(
    tmp_path: Path, files: list[str], requirement: str
) -> None:
    code, stderr = _install_with_stubs(tmp_path, files, requirement)
    assert (code, stderr.splitlines()[0]) == (99, "stub apt-get update")


# --- the project's URL: one place ---------------------------------------------------------


def test_the_project_url_has_one_home_and_everything_agrees() -> None:
    url = PYPROJECT["urls"]["Homepage"]
    assert url.startswith("https://")
    assert url == wyoming_realtime_text.PROJECT_URL
    assert info.ATTRIBUTION.url == url
    assert tts.ATTRIBUTION.url == url
    for path in pack.URL_FILES:
        assert load_yaml(path)["url"] == url, f"{path}: run python3 addon/pack.py"
    hard_coded = subprocess.run(
        ["grep", "-rlF", url, "wyoming_realtime_text", "addon", "--include=*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert hard_coded == [], "the URL is read from pyproject.toml, not written out again"


def test_pack_copies_the_url_into_the_addon_files(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("name: X\nurl: https://old.example\nversion: 1\n")
    other = tmp_path / "repository.yaml"
    other.write_text("url: https://new.example\n")
    assert pack.sync_url("https://new.example", (config, other)) == [config]
    assert load_yaml(config) == {"name": "X", "url": "https://new.example", "version": 1}
    config.write_text("name: X\n")
    with pytest.raises(SystemExit, match="exactly one top-level 'url:'"):
        pack.sync_url("https://new.example", (config,))


# --- the store's icon and logo ----------------------------------------------------------


def read_png(data: bytes) -> np.ndarray:
    """An 8-bit RGBA PNG's pixels (height x width x 4), its chunks' CRCs checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color, interlace) == (8, 6, 0), "8-bit RGBA, not interlaced"
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * 4
    assert len(raw) == height * (stride + 1)
    lines = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    # make_images.py writes every row unfiltered (filter 0); another tool's file would differ.
    assert not lines[:, 0].any(), "rows filtered: not make_images.py's file, run it again"
    return lines[:, 1:].reshape(height, width, 4)


@pytest.mark.parametrize(("name", "size"), [("icon.png", (128, 128)), ("logo.png", (250, 100))])
def test_the_store_images_are_committed_and_what_the_script_draws(
    name: str, size: tuple[int, int]
) -> None:
    pixels = read_png((ADDON / name).read_bytes())
    assert (pixels.shape[1], pixels.shape[0]) == size
    drawn = make_images.IMAGES[name]()
    assert np.array_equal(pixels, drawn), f"{name}: run python3 addon/make_images.py"
    alpha = pixels[..., 3]
    assert alpha[0, 0] == 0 and alpha[size[1] // 2, 20] == 255  # transparent corner, solid badge
    assert len(np.unique(pixels.reshape(-1, 4), axis=0)) > 20  # a picture, anti-aliased


def test_the_png_writer_round_trips() -> None:
    pixels = np.random.default_rng(7).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    assert np.array_equal(read_png(make_images.png(pixels)), pixels)


# --- the image, built and started --------------------------------------------------------


def addon_options(**changes: Any) -> dict[str, Any]:
    """What the Supervisor writes to /data/options.json: the defaults plus the user's key."""
    options = dict(load_yaml(ADDON / "config.yaml")["options"])
    return {**options, "api_key": KEY, **changes}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The add-on's image for this machine, from a copy of its folder (as in /addons)."""
    tmp = tmp_path_factory.mktemp("addon-image")
    context = tmp / "wyoming_realtime_text"
    shutil.copytree(ADDON, context, ignore=shutil.ignore_patterns("*.tar.gz"))
    pack.pack(folder=context / "packed")
    logs = tmp / "logs"
    logs.mkdir()
    try:
        root = addon_build.new_root(tmp)
    except EnvMissing as missing:
        pytest.skip(f"cannot build the add-on here: {missing}")
    except EnvError as err:
        pytest.fail(f"cannot build the base image's stand-in: {err}", pytrace=False)
    try:
        yield addon_build.dockerfile_build(
            context, load_yaml(context / "build.yaml"), "amd64", root, logs
        )
    except EnvMissing as missing:
        pytest.skip(f"cannot build the add-on here: {missing}")
    except EnvError as err:
        pytest.fail(f"the add-on's Dockerfile failed: {err}", pytrace=False)
    finally:
        addon_build.remove_root(root)


@pytest.mark.timeout(900)  # the first run builds the base image's stand-in (~2 minutes)
def test_the_addon_image_builds_from_source_with_debians_python(image: Any) -> None:
    root = image.root
    site = root / "opt/venv/lib/python3.11/site-packages"
    assert (site / "wyoming_realtime_text" / "live.html").is_file()
    installed = (site / f"wyoming_realtime_text-{VERSION}.dist-info").is_dir()
    assert installed, sorted(p.name for p in site.glob("wyoming_realtime_text*"))
    assert image.env["PATH"].startswith("/opt/venv/bin:")
    assert not (root / "tmp/wyoming-realtime-text").exists()
    assert [p.name for p in (root / "var/lib/apt/lists").iterdir() if p.is_file()] in ([], ["lock"])
    # The s6 scripts come from rootfs/, executable.
    run = root / "etc/s6-overlay/s6-rc.d/wyoming-realtime-text/run"
    assert os.access(run, os.X_OK)


@pytest.mark.timeout(300)
def test_the_addon_starts_from_its_options_and_answers_describe(image: Any, tmp_path: Path) -> None:
    run = addon_build.start_container(image, addon_options(), tmp_path)
    assert run.healthy, f"{run.health_output}\n{run.server_log}"
    assert "asr realtime-text" in run.health_output, run.health_output
    assert run.info is not None, run.server_log
    (asr,) = run.info["asr"]
    (handle,) = run.info["handle"]
    for program in (asr, handle):
        assert program["name"] == "realtime-text"
        assert program["version"] == VERSION
        # Installed (not a source tree): the URL comes from the package's metadata.
        assert program["attribution"]["url"] == PYPROJECT["urls"]["Homepage"]
    assert handle["models"][0]["name"] == addon_options()["model"]
    assert "Ready on tcp://0.0.0.0:10310" in run.server_log, run.server_log
    assert "Traceback" not in run.server_log
    assert KEY not in run.server_log + run.discovery_log
    assert run.discovery.startswith('wyoming {"uri": "tcp://'), run.discovery_log
    assert run.discovery.strip().endswith(':10310"}'), run.discovery
    assert run.server_exit == 0, run.server_log  # SIGTERM: a clean stop


@pytest.mark.timeout(300)
def test_the_addon_stops_on_a_bad_option_naming_it(image: Any, tmp_path: Path) -> None:
    run = addon_build.start_container(image, addon_options(api_key=""), tmp_path, tries=20)
    assert not run.healthy
    assert "api_key is not set" in run.server_log, run.server_log
    assert "Please fix the add-on option named in the error above." in run.server_log
    assert run.server_exit == 1
    assert "Traceback" not in run.server_log
