"""The Home Assistant add-on: its files, the options → config mapping, the health check.

The Supervisor silently skips an add-on whose config.yaml it cannot read, and shows a raw key
for an option without a translation, so the add-on's files are checked here the way it reads
them: options against their own schema (a checker for the schema mini-language we use), every
option mapped, translated and documented. The options → config mapping and the health check
run against the real server and the simulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
import pytest_asyncio
from addon_files import ADDON, REPO, check_options, load_yaml
from harness import ServerProcess, free_port, running_server

from wyoming_realtime_text import addon
from wyoming_realtime_text.config import ConfigError, RealtimeSettings, Settings, load_settings
from wyoming_realtime_text.simulator import RealtimeSimulator

KEY = "sk-addon-SECRET-0123456789"


@pytest.fixture(scope="module")
def addon_config() -> dict[str, Any]:
    return load_yaml(ADDON / "config.yaml")


@pytest.fixture(scope="module")
def schema(addon_config: dict[str, Any]) -> dict[str, Any]:
    return addon_config["schema"]


@pytest.mark.parametrize(
    ("schema", "options", "problem"),
    [
        ({"a": "int(0,4)?"}, {"a": 5}, "outside"),
        ({"a": "list(ga|beta)"}, {"a": "gamma"}, "not one of"),
        ({"a": "bool"}, {"a": "yes"}, "not a bool"),
        ({"a": "str"}, {}, "required but missing"),
        ({"a": "str?"}, {"a": "x"}, "optional but given a default"),
        ({"a": ["str"]}, {"a": "x"}, "not a list"),
        ({"a": [{"uri": "str"}]}, {"a": [{}]}, "a[0].uri: required but missing"),
        ({"a": "text"}, {"a": "x"}, "not one the Supervisor knows"),
        ({}, {"a": 1}, "option without a schema entry"),
    ],
)
def test_schema_checker_finds_problems(
    schema: dict[str, Any], options: dict[str, Any], problem: str
) -> None:
    assert any(problem in line for line in check_options(schema, options))


# --- The add-on's files ---


def test_addon_options_validate_against_their_schema(addon_config: dict[str, Any]) -> None:
    assert check_options(addon_config["schema"], addon_config["options"]) == []


def test_user_options_validate_too(schema: dict[str, Any]) -> None:
    """Options as a user fills them in everywhere pass the same schema."""
    assert check_options(schema, full_options(), defaults=False) == []


def test_required_addon_fields(addon_config: dict[str, Any]) -> None:
    for key in ("name", "version", "slug", "description", "arch", "url"):
        assert addon_config.get(key), key
    assert addon_config["slug"] == ADDON.name
    assert addon_config["init"] is False  # s6-overlay v3 is the init
    assert addon_config["discovery"] == ["wyoming"]
    web = Settings().web.port  # the live page, at the server's default port
    # Through ingress, behind HA's login; the port itself is not published by default.
    ports = {f"{addon.ADDON_PORT}/tcp": addon.ADDON_PORT, f"{web}/tcp": None}
    assert addon_config["ports"] == ports
    assert addon_config["ingress"] is True and addon_config["ingress_port"] == web
    assert "webui" not in addon_config, "ingress is the Web UI"
    assert addon_config["watchdog"] == f"tcp://[HOST]:[PORT:{addon.ADDON_PORT}]"
    assert set(addon_config["arch"]) <= {"amd64", "aarch64", "armv7", "armhf", "i386"}
    assert load_yaml(ADDON.parent / "repository.yaml")["name"]


def test_version_matches_the_package_and_changelog(addon_config: dict[str, Any]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert addon_config["version"] == pyproject["project"]["version"]
    changelog = (ADDON / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {addon_config['version']}" in changelog


def test_every_option_is_mapped_and_nothing_else(schema: dict[str, Any]) -> None:
    assert set(schema) == set(addon.CONFIG_KEYS) | set(addon.FLAG_OPTIONS)
    assert not set(addon.CONFIG_KEYS) & set(addon.FLAG_OPTIONS)
    for option in addon.FLAG_OPTIONS:
        assert schema[option] == "bool"


def test_every_option_has_a_translation_and_docs(
    addon_config: dict[str, Any], schema: dict[str, Any]
) -> None:
    translations = load_yaml(ADDON / "translations" / "en.yaml")
    configuration = translations["configuration"]
    assert set(configuration) == set(schema)
    for key, entry in schema.items():
        assert configuration[key]["name"] and configuration[key]["description"], key
        if isinstance(entry, list) and isinstance(entry[0], dict):
            fields = configuration[key]["fields"]
            assert set(fields) == set(entry[0]), key
            assert all(field["name"] and field["description"] for field in fields.values())
    assert set(translations["network"]) == set(addon_config["ports"])
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    for key in schema:
        assert f"### Option: `{key}`" in docs, key


def test_addon_defaults_and_choices_follow_the_server(
    addon_config: dict[str, Any], schema: dict[str, Any]
) -> None:
    """The add-on shows the packaged defaults, and offers exactly the server's choices."""
    packaged = load_settings(env={"OPENAI_API_KEY": "k"})
    options = addon_config["options"]
    assert options["model"] == packaged.realtime.model
    assert options["dialect"] == packaged.realtime.dialect
    assert options["languages"] == packaged.languages
    hints = get_type_hints(RealtimeSettings)
    for option, field in (("dialect", "dialect"), ("auth", "auth")):
        choices = re.fullmatch(r"list\((.*)\)\??", schema[option])[1].split("|")
        assert choices == list(get_args(hints[field])), option


# --- Options → config ---


def full_options() -> dict[str, Any]:
    """Every option set, as the Supervisor writes them to /data/options.json."""
    return {
        "api_key": KEY,
        "model": "gpt-4o-realtime-preview",
        "dialect": "beta",
        "realtime_url": "wss://example.openai.azure.com/openai/v1/realtime",
        "auth": "bearer",
        "instructions": "Answer briefly.",
        "transcription_model": "whisper-1",
        "languages": ["en", "de"],
        "warm_sessions": 2,
        "tts_uri": "tcp://core-piper:10200",
        "tts_voice": "en_US-lessac-medium",
        "wake_uri": "tcp://core-openwakeword:10400",
        "satellites": [
            {"uri": "tcp://kitchen.local:10700", "name": "Kitchen", "area": "kitchen"},
            {"uri": "tcp://bedroom.local:10700"},
        ],
        "home_control": False,
        "debug_logging": True,
    }


def test_each_option_lands_at_its_config_key() -> None:
    assert addon.config_from_options(full_options()) == {
        "realtime": {
            "api_key": KEY,
            "model": "gpt-4o-realtime-preview",
            "dialect": "beta",
            "url": "wss://example.openai.azure.com/openai/v1/realtime",
            "auth": "bearer",
            "instructions": "Answer briefly.",
            "transcription_model": "whisper-1",
            "warm_sessions": 2,
        },
        "languages": ["en", "de"],
        "tts": {"uri": "tcp://core-piper:10200", "voice": "en_US-lessac-medium"},
        "wake": {"uri": "tcp://core-openwakeword:10400"},
        "satellites": [
            {"uri": "tcp://kitchen.local:10700", "name": "Kitchen", "area": "kitchen"},
            {"uri": "tcp://bedroom.local:10700"},
        ],
        "home_control": {"enabled": False},
    }
    assert addon.flags_from_options(full_options()) == [
        "--uri",
        f"tcp://0.0.0.0:{addon.ADDON_PORT}",
        "--debug",
    ]


@pytest.mark.parametrize("home_control", [True, False])
def test_in_the_supervisor_the_home_is_read_through_its_api_never_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home_control: bool
) -> None:
    monkeypatch.setenv("SUPERVISOR_TOKEN", "supervisor-secret-token")
    path = tmp_path / "config.yaml"
    addon.prepare({**full_options(), "home_control": home_control}, path)
    assert "supervisor-secret-token" not in path.read_text()
    settings = load_settings(path)
    if home_control:
        assert settings.homeassistant.url == "http://supervisor/core"
        assert settings.homeassistant.token == "supervisor-secret-token"
    else:
        assert settings.homeassistant.url == "" and not settings.home_control.enabled


def test_the_generated_file_loads_with_every_option(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    addon.prepare(full_options(), path)
    settings = load_settings(path, env={})
    assert settings.realtime.api_key == KEY
    assert settings.realtime.url == "wss://example.openai.azure.com/openai/v1/realtime"
    assert (settings.realtime.model, settings.realtime.dialect) == (
        "gpt-4o-realtime-preview",
        "beta",
    )
    assert (settings.realtime.auth, settings.realtime.warm_sessions) == ("bearer", 2)
    assert settings.realtime.instructions == "Answer briefly."
    assert settings.realtime.transcription_model == "whisper-1"
    assert settings.languages == ["en", "de"]
    assert (settings.tts.uri, settings.tts.voice) == (
        "tcp://core-piper:10200",
        "en_US-lessac-medium",
    )
    assert settings.wake.uri == "tcp://core-openwakeword:10400"
    assert [(s.uri, s.name, s.area) for s in settings.satellites] == [
        ("tcp://kitchen.local:10700", "Kitchen", "kitchen"),
        ("tcp://bedroom.local:10700", "", ""),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_option_text_is_taken_literally(tmp_path: Path) -> None:
    """A prompt that happens to contain ${...} is not an environment variable reference."""
    path = tmp_path / "config.yaml"
    options = {**full_options(), "instructions": "Greet as ${persona}; cost in $USD."}
    addon.prepare(options, path)
    settings = load_settings(path, env={"persona": "Ada"})
    assert settings.realtime.instructions == "Greet as ${persona}; cost in $USD."
    assert settings.realtime.api_key == KEY


def test_empty_optional_options_keep_the_packaged_defaults(tmp_path: Path) -> None:
    options = {
        "api_key": f"  {KEY}\n",  # pasted with a trailing newline
        "model": "",
        "dialect": "ga",
        "realtime_url": "",
        "instructions": "   ",
        "transcription_model": None,
        "languages": [],
        "tts_uri": "",
        "tts_voice": "",
        "wake_uri": "",
        "satellites": [],
        "debug_logging": False,
    }
    assert addon.config_from_options(options) == {"realtime": {"api_key": KEY, "dialect": "ga"}}
    assert addon.flags_from_options(options) == ["--uri", f"tcp://0.0.0.0:{addon.ADDON_PORT}"]
    path = tmp_path / "config.yaml"
    addon.prepare(options, path)
    packaged = load_settings(env={"OPENAI_API_KEY": KEY})
    settings = load_settings(path, env={})
    # ... but the live page, which the add-on serves through HA's ingress (behind its login).
    assert (packaged.web.host, settings.web.host) == ("127.0.0.1", "0.0.0.0")
    assert dataclasses.replace(settings, web=packaged.web) == packaged


def test_a_satellite_without_optional_fields_keeps_only_its_uri() -> None:
    options = {"api_key": KEY, "satellites": [{"uri": "tcp://a:10700", "name": "", "area": ""}]}
    assert addon.config_from_options(options)["satellites"] == [{"uri": "tcp://a:10700"}]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("dialect", "gamma", "dialect must be one of ga | beta, not 'gamma'"),
        ("realtime_url", "https://api.openai.com", "realtime_url must be a ws:// or wss:// URL"),
        ("tts_uri", "core-piper:10200", "tts_uri must look like tcp://HOST:PORT"),
        ("wake_uri", "http://x", "wake_uri must look like tcp://HOST:PORT"),
        ("warm_sessions", -1, "warm_sessions must be 0 or more"),
        ("satellites", [{"uri": "kitchen"}], "satellites[0].uri must look like tcp://HOST:PORT"),
        ("satellites", [{"name": "Kitchen"}], "satellites[0].uri must look like tcp://HOST:PORT"),
        ("api_key", "", addon.KEY_MISSING),
        ("api_key", None, addon.KEY_MISSING),
    ],
)
def test_a_bad_option_gives_the_servers_one_line_error(
    tmp_path: Path, option: str, value: Any, message: str
) -> None:
    options = {**full_options(), option: value}
    path = tmp_path / "config.yaml"
    with pytest.raises(ConfigError) as caught:
        addon.prepare(options, path)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert KEY not in str(caught.value)
    assert not path.exists()  # nothing half-valid is left for the server to start from


def test_command_line_writes_config_and_prints_flags_never_the_key(tmp_path: Path) -> None:
    options_path = tmp_path / "options.json"
    options = {**full_options(), "removed_in_an_old_version": True}
    options_path.write_text(json.dumps(options), encoding="utf-8")
    config_path = tmp_path / "generated.yaml"
    done = run_module("wyoming_realtime_text.addon", str(options_path), str(config_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["--uri", f"tcp://0.0.0.0:{addon.ADDON_PORT}", "--debug"]
    assert "ignoring unknown add-on option 'removed_in_an_old_version'" in done.stderr
    assert KEY not in done.stdout + done.stderr
    assert KEY in config_path.read_text(encoding="utf-8")
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_command_line_reports_a_bad_option_in_one_line(tmp_path: Path) -> None:
    options_path = tmp_path / "options.json"
    options_path.write_text(json.dumps({**full_options(), "dialect": "v2"}), encoding="utf-8")
    done = run_module("wyoming_realtime_text.addon", str(options_path), str(tmp_path / "c.yaml"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: dialect must be one of ga | beta, not 'v2'\n"
    missing = run_module("wyoming_realtime_text.addon", str(tmp_path / "none.json"), "c.yaml")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read the add-on options")


def test_an_existing_config_file_is_narrowed_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o644)
    addon.prepare(full_options(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def run_module(module: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


# --- The health check, against the real server with the add-on's own config ---


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def addon_server(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """The real server started from the add-on's options (pointed at the simulator)."""
    tmp = tmp_path_factory.mktemp("addon-server")
    options = {**full_options(), "realtime_url": sim.url, "satellites": [], "wake_uri": ""}
    config = addon.config_from_options(options)
    config["realtime"]["warm_sessions"] = 0
    async with running_server(tmp, config, "--debug") as server:
        yield server


async def healthcheck(*args: str) -> tuple[int, str, float]:
    """Run the checker as Docker does (a new process); returns exit code, output, seconds."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_realtime_text.healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode(), time.monotonic() - started


@pytest.mark.asyncio(loop_scope="module")
async def test_healthcheck_passes_against_the_running_server(addon_server: ServerProcess) -> None:
    code, output, _ = await healthcheck(addon_server.uri)
    assert code == 0, output
    assert "asr realtime-text" in output and "handle realtime-text" in output
    assert KEY not in addon_server.log()


@pytest.mark.asyncio(loop_scope="module")
async def test_healthcheck_fails_fast_on_a_closed_port() -> None:
    code, output, seconds = await healthcheck(f"tcp://127.0.0.1:{free_port()}")
    assert code == 1, output
    assert output.startswith("unhealthy: cannot reach")
    assert seconds < 3


@pytest.mark.asyncio(loop_scope="module")
async def test_healthcheck_fails_when_nothing_answers_within_its_timeout() -> None:
    """An open port that never answers describe (a hung server) is unhealthy too."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        code, output, seconds = await healthcheck(f"tcp://127.0.0.1:{port}", "--timeout", "0.5")
    assert code == 1
    assert "no info from" in output
    assert seconds < 3


@pytest.mark.asyncio(loop_scope="module")
async def test_healthcheck_fails_cleanly_against_something_else() -> None:
    """Not a Wyoming server on that port (here an HTTP one): exit 1, one line, no traceback."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        code, output, _ = await healthcheck(f"tcp://127.0.0.1:{port}")
    assert code == 1
    assert output.startswith("unhealthy: ") and output.count("\n") == 1, output


@pytest.mark.asyncio(loop_scope="module")
async def test_healthcheck_of_a_server_started_with_the_generated_file(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    """The file `addon.py` writes (not just its mapping) starts the server, with its flags."""
    path = tmp_path / "addon.yaml"
    options = {**full_options(), "realtime_url": sim.url, "satellites": [], "wake_uri": ""}
    flags = addon.prepare(options, path)
    port = free_port()
    flags[flags.index("--uri") + 1] = f"tcp://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_realtime_text",
        "--config",
        str(path),
        *flags,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
    )
    try:
        for _ in range(100):
            code, output, _ = await healthcheck(f"tcp://127.0.0.1:{port}", "--timeout", "1")
            if code == 0 or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert code == 0, output
    finally:
        process.terminate()
        assert await process.wait() == 0
