"""One line for every user mistake: each bad value stops with one line naming its key or flag.

A bad value (a config key, a server flag, a simulator flag, an add-on option) exits 2 with
one line on stderr that names what to change, never a traceback; an address that cannot be
listened on (the port in use) is one line too, exit 1. The config checks run in-process; the
commands' contract (exit code, one line, no traceback) runs as subprocesses, all started at
once so that their start-up times overlap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import websockets
import yaml

from wyoming_realtime_text import addon, logs
from wyoming_realtime_text.__main__ import main as server_main
from wyoming_realtime_text.config import ConfigError, parse_settings
from wyoming_realtime_text.pipeline import log_turn
from wyoming_realtime_text.simulator import RealtimeSimulator
from wyoming_realtime_text.simulator import __main__ as simulator_cli
from wyoming_realtime_text.simulator.__main__ import _HideKeys
from wyoming_realtime_text.simulator.__main__ import main as simulator_main
from wyoming_realtime_text.turn import Outcome

KEY = {"realtime": {"api_key": "sk-test"}}

# (config, the key the error must name); each is a mistake a user can make in config.yaml.
BAD_CONFIG = [
    ({"server": {"uri": "tcp://0.0.0.0:99999"}}, "server.uri"),
    ({"server": {"uri": "tcp://0.0.0.0:abc"}}, "server.uri"),
    ({"server": {"uri": "tcp://0.0.0.0:0"}}, "server.uri"),
    ({"server": {"uri": "tcp://0.0.0.0:-1"}}, "server.uri"),
    ({"server": {"uri": "tcp://[::1:10310"}}, "server.uri"),
    ({"server": {"uri": "tcp://:10310"}}, "server.uri"),
    ({"server": {"uri": "tcp://my host:10310"}}, "server.uri"),
    ({"server": {"uri": "tcp://0.0.0.0:10310/wyoming"}}, "server.uri"),
    ({"server": {"uri": "unix://"}}, "server.uri"),
    ({"server": {"uri": "unix://relative.sock"}}, "server.uri"),
    ({"server": {"uri": "http://0.0.0.0:10310"}}, "server.uri"),
    ({"tts": {"uri": "tcp://piper:99999"}}, "tts.uri"),
    ({"tts": {"uri": "tcp://piper:port"}}, "tts.uri"),
    ({"tts": {"uri": "tcp://:10200"}}, "tts.uri"),
    ({"tts": {"uri": "piper:10200"}}, "tts.uri"),
    ({"wake": {"uri": "tcp://openwakeword:65536"}}, "wake.uri"),
    ({"wake": {"uri": "tcp://[fe80::1:10400"}}, "wake.uri"),
    ({"satellites": [{"uri": "tcp://kitchen:99999"}]}, "satellites[0].uri"),
    ({"satellites": [{"uri": "tcp://a:1"}, {"uri": "tcp://b:x"}]}, "satellites[1].uri"),
    ({"realtime": {"url": "wss://api.openai.com:99999/v1/realtime"}}, "realtime.url"),
    ({"realtime": {"url": "wss://api.openai.com:abc/v1/realtime"}}, "realtime.url"),
    ({"realtime": {"url": "ws://[::1/v1/realtime"}}, "realtime.url"),
    ({"realtime": {"url": "wss://api openai.com/v1/realtime"}}, "realtime.url"),
    ({"realtime": {"url": "https://api.openai.com/v1/realtime"}}, "realtime.url"),
    ({"homeassistant": {"url": "http://ha:99999", "token": "t"}}, "homeassistant.url"),
    ({"homeassistant": {"url": "http://ha:0", "token": "t"}}, "homeassistant.url"),
    ({"homeassistant": {"url": "http://[::1:8123", "token": "t"}}, "homeassistant.url"),
    ({"web": {"port": 99999}}, "web.port"),
    ({"web": {"port": 0}}, "web.port"),
    ({"web": {"port": "http"}}, "web.port"),
    ({"web": {"host": "0.0.0.0:10311"}}, "web.host"),
    ({"web": {"host": "[::1]"}}, "web.host"),
    ({"web": {"host": "my host"}}, "web.host"),
]

GOOD_URIS = [
    "tcp://0.0.0.0:10310",
    "tcp://[::]:10310",
    "tcp://piper_tts:10200",
    "tcp://kitchen.local:10700/",
    "unix:///run/wyoming.sock",
]


def merged(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "realtime": {**KEY["realtime"], **config.get("realtime", {})}}


@pytest.mark.parametrize(("config", "key"), BAD_CONFIG, ids=lambda v: json.dumps(v))
def test_a_bad_config_value_is_one_line_naming_its_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(merged(config))
    message = str(caught.value)
    assert message.startswith(key) and "\n" not in message, message


@pytest.mark.parametrize("uri", GOOD_URIS)
def test_good_uris_pass(uri: str) -> None:
    settings = parse_settings(
        merged({"server": {"uri": uri}, "tts": {"uri": uri}, "satellites": [{"uri": uri}]})
    )
    assert settings.server.uri == settings.tts.uri == settings.satellites[0].uri == uri


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::", "fe80::1%eth0", "live.local"])
def test_good_web_hosts_pass(host: str) -> None:
    assert parse_settings(merged({"web": {"host": host}})).web.host == host


BAD_LOG_FORMATS = ["abc", "%(foo)s", "%(message)d", "%(message)s 100%", "{message}", "%%"]


@pytest.mark.parametrize("log_format", BAD_LOG_FORMATS)
def test_a_bad_log_format_is_one_line_naming_the_flag(log_format: str) -> None:
    with pytest.raises(ValueError) as caught:
        logs.check_format(log_format)
    assert str(caught.value).startswith("--log-format") and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "log_format",
    ["json", logging.BASIC_FORMAT, logs.EXAMPLE, "%(asctime)s %(message)s", "x %(message)s"],
)
def test_good_log_formats_pass(log_format: str) -> None:
    logs.check_format(log_format)


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("tts_uri", "tcp://core-piper:99999", "tts_uri"),
        ("tts_uri", "tcp://core-piper:piper", "tts_uri"),
        ("wake_uri", "tcp://core-openwakeword:0", "wake_uri"),
        ("realtime_url", "wss://example.openai.azure.com:99999/openai/v1/realtime", "realtime_url"),
        ("satellites", [{"uri": "tcp://kitchen.local:70000"}], "satellites[0].uri"),
    ],
)
def test_an_add_on_port_error_names_the_option(
    tmp_path: Path, option: str, value: Any, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        addon.prepare({"api_key": "sk-test", option: value}, tmp_path / "config.yaml")
    message = str(caught.value)
    assert message.startswith(f"{named}: the port in ") and "\n" not in message, message


# -- the flags, in-process: everything up to the first line of output -------------------

# (argv, the flag the line must name); each stops before anything is started or logged.
BAD_SERVER_FLAGS = [
    (["--uri", "tcp://0.0.0.0:99999"], "--uri"),
    (["--uri", "tcp://0.0.0.0:abc"], "--uri"),
    (["--uri", "tcp://0.0.0.0"], "--uri"),
    (["--uri", "tcp://[::1:10310"], "--uri"),
    (["--uri", "unix://"], "--uri"),
    (["--uri"], "--uri"),
    (["--log-format", "abc"], "--log-format"),
    (["--log-format", "%(foo)s"], "--log-format"),
    (["--log-format"], "--log-format"),
    (["--urii=tcp://0.0.0.0:10310"], "--urii"),
    (["--zeroconf", "kitchen", "--debug=yes"], "--debug"),
]
BAD_SIMULATOR_FLAGS = [
    (["--port", "99999"], "--port"),
    (["--port", "-1"], "--port"),
    (["--port", "http"], "--port"),
    (["--host", "my host"], "--host"),
    (["--host", "0.0.0.0:10312"], "--host"),
    (["--first-token-delay", "-1"], "--first-token-delay"),
    (["--first-token-delay", "soon"], "--first-token-delay"),
    (["--first-token-delay", "inf"], "--first-token-delay"),
    (["--delta-delay", "-0.1"], "--delta-delay"),
    (["--scenario", "obay"], "--scenario"),
    (["--api-key", ""], "--api-key"),
]


def one_line(err: str, names: str) -> None:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and names in lines[0], lines[0]


def exit_code(main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own errors
        return cast(int, stop.code)


@pytest.mark.parametrize(("argv", "names"), BAD_SERVER_FLAGS, ids=" ".join)
def test_a_bad_server_flag_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    names: str,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # were a check missed: no server
    assert exit_code(server_main, argv) == 2
    out, err = capsys.readouterr()
    one_line(err, names)
    assert out == ""


@pytest.mark.parametrize(("argv", "names"), BAD_SIMULATOR_FLAGS, ids=" ".join)
def test_a_bad_simulator_flag_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    names: str,
) -> None:
    async def serve(args: object) -> int:  # were a check missed: it would serve, here 0
        return 0

    monkeypatch.setattr(simulator_cli, "_serve", serve)
    assert exit_code(simulator_main, argv) == 2
    out, err = capsys.readouterr()
    one_line(err, names)
    assert out == ""


# -- the commands, as subprocesses: a few, started at once ----------------------------------

SERVER = [sys.executable, "-m", "wyoming_realtime_text"]
SIMULATOR = [sys.executable, "-m", "wyoming_realtime_text.simulator"]
ADDON = [sys.executable, "-m", "wyoming_realtime_text.addon"]
TAKEN = "{taken}"  # replaced by a port something listens on

# (id, command, the flag or key the line must name, exit code)
COMMANDS: list[tuple[str, list[str], str, int]] = [
    ("uri-port-out-of-range", [*SERVER, "--uri", "tcp://0.0.0.0:99999"], "--uri", 2),
    ("log-format-unknown-field", [*SERVER, "--log-format", "%(foo)s"], "--log-format", 2),
    ("config-tts-port", [*SERVER, "--config", "{config}"], "tts.uri", 2),
    ("server-port-in-use", [*SERVER, "--uri", f"tcp://127.0.0.1:{TAKEN}"], "--uri", 1),
    ("sim-port-out-of-range", [*SIMULATOR, "--port", "99999"], "--port", 2),
    ("sim-port-in-use", [*SIMULATOR, "--port", TAKEN], "--port", 1),
    ("addon-tts-port", [*ADDON, "{options}", "{out}"], "tts_uri", 2),
]


# Run with the other commands, without a key: --print-config needs none.
PRINTS = {
    "print-config": [*SERVER, "--print-config"],
    "print-config-simulator": [*SERVER, "--simulator", "--print-config"],
}


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Every command of COMMANDS and PRINTS, started at once and run to its end."""
    tmp = tmp_path_factory.mktemp("errors")
    config = tmp / "config.yaml"
    config.write_text("tts:\n  uri: tcp://piper:99999\n", encoding="utf-8")
    options = tmp / "options.json"
    options.write_text(json.dumps({"api_key": "sk-test", "tts_uri": "tcp://piper:99999"}))
    env = {"PATH": "/usr/bin:/bin", **_pythonpath()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        values = {
            "{config}": str(config),
            "{options}": str(options),
            "{out}": str(tmp / "out.yaml"),
            TAKEN: str(taken.getsockname()[1]),
        }
        commands = [
            (name, command, {"OPENAI_API_KEY": "sk-test"}) for name, command, *_ in COMMANDS
        ]
        commands += [(name, command, {}) for name, command in PRINTS.items()]
        started = {}
        for name, command, key in commands:
            argv = [_fill(arg, values) for arg in command]
            started[name] = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env | key
            )
        results = {}
        deadline = time.monotonic() + 45
        try:
            for name, process in started.items():
                out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
                results[name] = subprocess.CompletedProcess(
                    process.args, process.returncode, out, err
                )
        finally:
            for process in started.values():
                process.kill()
                process.wait()
    yield results


def _fill(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


def _pythonpath() -> dict[str, str]:
    """The tests' PYTHONPATH (a worktree's code), for the commands to run the same code."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}


@pytest.mark.parametrize(
    ("name", "names", "code"), [(c[0], c[2], c[3]) for c in COMMANDS], ids=[c[0] for c in COMMANDS]
)
def test_a_command_line_mistake_is_one_line(
    finished: dict[str, subprocess.CompletedProcess[str]], name: str, names: str, code: int
) -> None:
    done = finished[name]
    one_line(done.stderr, names)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""


def test_print_config_needs_no_key_and_says_it_is_missing(
    finished: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    done = finished["print-config"]
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["realtime"]["api_key"] == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "realtime.api_key is not set" in lines[0], done.stderr


def test_print_config_with_the_simulator_says_its_port_is_chosen_at_start(
    finished: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    done = finished["print-config-simulator"]
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    url = yaml.safe_load(done.stdout)["realtime"]["url"]
    assert "simulator" in url and "chosen at start" in url
    assert ":1/" not in url


async def test_the_simulators_debug_log_never_shows_a_clients_key() -> None:
    secrets = ["sk-SECRET-bearer", "AZURE-SECRET", "QUERY-SECRET"]
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(_HideKeys())
    websockets_log = logging.getLogger("websockets")
    level = websockets_log.level
    websockets_log.addHandler(handler)
    websockets_log.setLevel(logging.DEBUG)
    try:
        async with RealtimeSimulator() as sim:
            headers = {"Authorization": f"Bearer {secrets[0]}", "api-key": secrets[1]}
            url = f"{sim.url}?model=m&api-key={secrets[2]}"
            async with websockets.connect(url, additional_headers=headers) as ws:
                await asyncio.wait_for(ws.recv(), 5)
    finally:
        websockets_log.removeHandler(handler)
        websockets_log.setLevel(level)
    text = "\n".join(lines)
    assert "< Authorization: ***" in text and "< api-key: ***" in text
    assert not [secret for secret in secrets if secret in text], text


def test_a_turn_line_cut_at_80_characters_ends_with_an_ellipsis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard, answer = "h" * 80, "a" * 81
    turn = SimpleNamespace(
        outcome=Outcome.COMPLETED,
        spoken=None,
        answer=SimpleNamespace(text=answer),
        reason=None,
        audio_deltas_dropped=0,
        ended_by="audio-stop",
        commands=[],
    )
    with caplog.at_level(logging.INFO, logger="wyoming_realtime_text"):
        log_turn("client", cast(Any, turn), heard, time.monotonic())
    (message,) = [r.getMessage() for r in caplog.records]
    assert repr(heard) in message  # 80: whole
    assert repr("a" * 79 + "…") in message
