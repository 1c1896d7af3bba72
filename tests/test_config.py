"""Config loading: defaults, ${VAR} expansion, and one-line errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_realtime_text.config import (
    ConfigError,
    default_config_text,
    load_settings,
    parse_settings,
)

REPO = Path(__file__).resolve().parent.parent
KEY = {"OPENAI_API_KEY": "sk-test-123"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_default_is_the_top_level_config() -> None:
    assert default_config_text() == (REPO / "config.yaml").read_text(encoding="utf-8")


def test_packaged_default_loads_with_key_from_environment() -> None:
    settings = load_settings(env=KEY)
    assert settings.realtime.api_key == "sk-test-123"
    assert settings.realtime.dialect == "ga"
    assert settings.server.uri == "tcp://0.0.0.0:10310"
    assert "en" in settings.languages
    assert settings.realtime.instructions.startswith("You are a friendly voice assistant")


def test_env_fallback_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "realtime:\n  api_key: ${MY_KEY:-sk-fallback}\n")
    assert load_settings(path, env={}).realtime.api_key == "sk-fallback"
    assert load_settings(path, env={"MY_KEY": "sk-env"}).realtime.api_key == "sk-env"


def test_a_doubled_dollar_keeps_a_reference_as_text(tmp_path: Path) -> None:
    text = "realtime:\n  api_key: k\n  instructions: Call me $${NAME}, not ${NAME}.\n"
    settings = load_settings(write(tmp_path, text), env={"NAME": "Ada"})
    assert settings.realtime.instructions == "Call me ${NAME}, not Ada."


def test_overrides_win_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  uri: tcp://0.0.0.0:1234\nrealtime:\n  api_key: k\n")
    settings = load_settings(path, env={}, overrides={"server": {"uri": "tcp://127.0.0.1:9"}})
    assert settings.server.uri == "tcp://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "realtime:\n  api_key: k\n  modle: x\n",
            "unknown config key 'realtime.modle' (did you mean 'realtime.model'?)",
        ),
        ("realtime:\n  api_key: k\nspeaker: 1\n", "unknown config key 'speaker'"),
        ("realtime:\n  api_key: k\n  dialect: v2\n", "realtime.dialect must be one of ga | beta"),
        (
            "realtime:\n  api_key: k\n  response_timeout: soon\n",
            "realtime.response_timeout must be a number",
        ),
        (
            "realtime:\n  api_key: k\n  response_timeout: 0\n",
            "realtime.response_timeout must be greater than 0",
        ),
        (
            "realtime:\n  api_key: k\naudio:\n  max_utterance_seconds: true\n",
            "audio.max_utterance_seconds must be a number",
        ),
        (
            "realtime:\n  api_key: k\nconversation:\n  max_turns: 2.5\n",
            "conversation.max_turns must be a whole number",
        ),
        (
            "realtime:\n  api_key: k\nconversation:\n  one_round_trip: yes please\n",
            "conversation.one_round_trip must be true or false",
        ),
        (
            "realtime:\n  api_key: k\n  url: https://api.openai.com\n",
            "realtime.url must be a ws:// or wss:// URL",
        ),
        (
            "realtime:\n  api_key: k\nserver:\n  uri: 10310\n",
            "server.uri must look like tcp://HOST:PORT",
        ),
        ("realtime: [1, 2]\n", "realtime must be a mapping of keys"),
        ("- just a list\n", "must be a mapping of config keys"),
        ("realtime:\n  api_key: k\nlanguages: []\n", "languages must name at least one language"),
        ("realtime:\n  api_key: ''\n", "realtime.api_key is not set"),
        ("realtime: {api_key: k\n", "is not valid YAML at line"),
        (
            "realtime:\n  api_key: k\n"
            "home_control:\n  enabled: false\nhome_control:\n  clients: []\n",
            "'home_control' is given twice (lines 3 and 5): keep one",
        ),
        (
            "realtime:\n  api_key: k\n  model: a\n  model: b\n",
            "'model' is given twice (lines 3 and 4)",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_key_message_says_how_to_fix() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={})
    assert "export OPENAI_API_KEY" in str(err.value)
    assert "--simulator" in str(err.value)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wyoming_realtime_text", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_cli_without_key_exits_2_with_one_line() -> None:
    result = run_cli()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "OPENAI_API_KEY" in lines[0] and "--simulator" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_bad_config_key_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "realtime:\n  api_key: k\n  temprature: 1\n")
    result = run_cli("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown config key 'realtime.temprature'"


def test_cli_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip()


def test_a_partial_file_keeps_the_packaged_values(tmp_path: Path) -> None:
    packaged = load_settings(env=KEY)
    partial = load_settings(write(tmp_path, "realtime:\n  model: my-model\n"), env=KEY)
    assert partial.realtime.model == "my-model"
    assert partial.realtime.instructions == packaged.realtime.instructions
    assert partial.languages == packaged.languages
    assert partial.realtime.api_key == "sk-test-123"


def test_empty_variable_takes_the_fallback(tmp_path: Path) -> None:
    path = write(tmp_path, "realtime:\n  api_key: ${MY_KEY:-sk-fallback}\n")
    assert load_settings(path, env={"MY_KEY": ""}).realtime.api_key == "sk-fallback"


def test_print_config_hides_the_key_and_loads_back(tmp_path: Path) -> None:
    secret = "sk-test-PRINTED-NEVER-0123"
    config = write(
        tmp_path,
        "realtime:\n"
        "  url: wss://example.openai.azure.com/openai/realtime?deployment=d&api-key=AZURE-SECRET\n"
        "  dialect: beta\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "wyoming_realtime_text", "--config", str(config), "--print-config"],
        capture_output=True,
        text=True,
        env={"OPENAI_API_KEY": secret, "PATH": ""},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout and "AZURE-SECRET" not in done.stdout
    assert "api_key: '***'" in done.stdout
    dumped = write(tmp_path, done.stdout.replace("'***'", "${OPENAI_API_KEY}"))
    settings = load_settings(dumped, env={"OPENAI_API_KEY": secret})
    assert settings.realtime.dialect == "beta"
    assert settings.realtime.url.endswith("?deployment=d&api-key=***")


@pytest.mark.parametrize(
    ("argv0", "hint"),
    [
        (".venv/bin/wyoming-realtime-text", ".venv/bin/wyoming-realtime-text --simulator"),
        ("/x/wyoming_realtime_text/__main__.py", "python3 -m wyoming_realtime_text --simulator"),
    ],
)
def test_the_no_key_line_names_the_command_as_the_user_ran_it(
    monkeypatch: pytest.MonkeyPatch, argv0: str, hint: str
) -> None:
    monkeypatch.setattr("sys.argv", [argv0])
    with pytest.raises(ConfigError) as err:
        parse_settings({})
    assert hint in str(err.value)
