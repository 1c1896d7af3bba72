"""The Docker images, compose and the add-on's s6 scripts: what can be checked without Docker
(no Docker engine on the build machine: the images themselves are never built here)."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from addon_files import ADDON, REPO, S6, SCRIPTS, load_yaml

from wyoming_realtime_text import addon
from wyoming_realtime_text.config import load_settings


@pytest.fixture(scope="module")
def addon_config() -> dict[str, Any]:
    return load_yaml(ADDON / "config.yaml")


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    return sources


@pytest.mark.parametrize(("dockerfile", "context"), [(REPO, REPO), (ADDON, ADDON)])
def test_dockerfile_copies_only_what_exists_and_checks_health(
    dockerfile: Path, context: Path
) -> None:
    path = dockerfile / "Dockerfile"
    sources = _copy_sources(path)
    assert sources
    for source in sources:
        assert (context / source).exists(), f"{path}: COPY {source}"
    text = path.read_text(encoding="utf-8")
    assert re.search(r"HEALTHCHECK .*\n?.*wyoming_realtime_text\.healthcheck", text)
    assert f"127.0.0.1:{addon.ADDON_PORT}" in text


def test_top_level_image_runs_unprivileged() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert text.count("FROM python:") == 2  # build stage and a clean run stage


def test_addon_build_uses_the_debian_base_images_and_declares_its_args(
    addon_config: dict[str, Any],
) -> None:
    """HA's Debian bookworm base for every arch (manylinux wheels, Python 3.11 from Debian).

    tests/test_addon_build.py builds the amd64 image's steps in a bookworm chroot; this holds
    the other arches to the same base, so what it checks is what they get.
    """
    build = load_yaml(ADDON / "build.yaml")
    assert set(build["build_from"]) == set(addon_config["arch"])
    for arch, image in build["build_from"].items():
        assert image == f"ghcr.io/home-assistant/{arch}-base-debian:bookworm", image
    dockerfile = (ADDON / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BUILD_FROM" in dockerfile
    for arg, value in build["args"].items():
        assert not arg.startswith("PIP_"), "pip would read it as its own setting"
        assert f"ARG {arg}" in dockerfile
        assert value == "", f"{arg}: empty installs the packed source (addon/pack.py)"


def test_compose_points_tts_at_piper_and_takes_the_key_from_the_environment(
    tmp_path: Path,
) -> None:
    compose = load_yaml(REPO / "compose.yaml")
    services = compose["services"]
    ours, piper = services["realtime-text"], services["piper"]
    assert piper["image"].startswith("rhasspy/wyoming-piper")
    assert "10200:10200" in piper["ports"]
    assert f"{addon.ADDON_PORT}:{addon.ADDON_PORT}" in ours["ports"]
    assert ours["environment"]["OPENAI_API_KEY"].startswith("${OPENAI_API_KEY")
    (mount,) = ours["configs"]
    assert ours["command"][ours["command"].index("--config") + 1] == mount["target"]
    content = compose["configs"][mount["source"]]["content"]
    assert "api_key" not in content
    path = tmp_path / "compose-config.yaml"
    path.write_text(content, encoding="utf-8")
    settings = load_settings(path, env={"OPENAI_API_KEY": "sk-compose"})
    assert settings.tts.uri == "tcp://piper:10200"
    assert settings.tts.voice in piper["command"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_s6_scripts_are_executable_bash(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    assert script.read_text(encoding="utf-8").startswith("#!/command/with-contenv bashio\n")
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_s6_services_are_wired() -> None:
    """The server is a longrun; discovery a oneshot after it; both in the user bundle."""
    assert (S6 / "wyoming-realtime-text" / "type").read_text().strip() == "longrun"
    assert (S6 / "discovery" / "type").read_text().strip() == "oneshot"
    up = (S6 / "discovery" / "up").read_text().strip()
    assert (ADDON / "rootfs" / up.lstrip("/")).is_file()
    assert (S6 / "discovery" / "dependencies.d" / "wyoming-realtime-text").exists()
    assert {p.name for p in (S6 / "user" / "contents.d").iterdir()} == {
        "wyoming-realtime-text",
        "discovery",
    }
    run = (S6 / "wyoming-realtime-text" / "run").read_text(encoding="utf-8")
    assert "readonly options=/data/options.json" in run
    assert 'python3 -m wyoming_realtime_text.addon "${options}" "${config}"' in run
    assert 'exec python3 -m wyoming_realtime_text --config "${config}" "${flags[@]}"' in run
    discovery = (S6 / "discovery" / "run").read_text(encoding="utf-8")
    assert f"readonly port={addon.ADDON_PORT}" in discovery
    assert 'bashio::discovery "wyoming"' in discovery
    assert "tcp://$(hostname):${port}" in discovery
