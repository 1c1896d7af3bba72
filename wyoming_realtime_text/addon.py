"""Home Assistant add-on options → a config file for `--config`, plus the server's flags.

The Supervisor keeps the add-on's options flat in /data/options.json (what its UI can edit);
the server reads the nested config.yaml. The mapping lives here, in Python, so that it is
tested like the rest of the server instead of being pieced together as strings in bash:

    python3 -m wyoming_realtime_text.addon /data/options.json /tmp/wyoming-realtime-text.yaml

writes the config (mode 0600: it holds the API key, which is never printed) and prints the
flags for the server, one per line. An option left empty is left out, so the packaged default
applies. A bad option prints the server's own one-line config error, naming the option, and
exits 2, before the server is started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, load_settings

# Where the add-on listens: its config.yaml publishes this port and the discovery step
# announces it.
ADDON_PORT = 10310
ADDON_URI = f"tcp://0.0.0.0:{ADDON_PORT}"

# Add-on option → where it goes in our config (the add-on's schema has exactly these keys
# plus FLAG_OPTIONS; tests/test_addon.py holds them together).
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "api_key": ("realtime", "api_key"),
    "model": ("realtime", "model"),
    "dialect": ("realtime", "dialect"),
    "realtime_url": ("realtime", "url"),
    "auth": ("realtime", "auth"),
    "instructions": ("realtime", "instructions"),
    "transcription_model": ("realtime", "transcription_model"),
    "reasoning_effort": ("realtime", "reasoning_effort"),
    "warm_sessions": ("realtime", "warm_sessions"),
    "noise_reduction": ("realtime", "noise_reduction"),
    "end_of_speech": ("turn_detection", "ha_turns"),
    "eagerness": ("turn_detection", "eagerness"),
    "languages": ("languages",),
    "tts_uri": ("tts", "uri"),
    "tts_voice": ("tts", "voice"),
    "wake_uri": ("wake", "uri"),
    "satellites": ("satellites",),
    "home_control": ("home_control", "enabled"),
}
# In the add-on, Home Assistant's API is the Supervisor's proxy, with the token the Supervisor
# gives the add-on (config.yaml: homeassistant_api). Written as a reference, so the token
# itself never reaches the config file.
SUPERVISOR_CORE = {"url": "http://supervisor/core", "token": "${SUPERVISOR_TOKEN}"}
# Add-on option (a bool) → the command-line flag it turns on.
FLAG_OPTIONS: dict[str, str] = {"debug_logging": "--debug"}

KEY_MISSING = (
    "api_key is not set: enter your OpenAI API key (or your Azure OpenAI key) "
    "in the add-on's Configuration tab"
)


def _cleaned(value: Any) -> Any:
    """Trim text and drop empty entries, so that "nothing entered" is None everywhere.

    The UI leaves "" or [] behind for a field the user cleared, and pasted keys often carry
    a trailing space or newline. Text is taken literally: a "${...}" in it (a prompt, say)
    is escaped so that the config file's ${VAR} expansion leaves it as typed.
    """
    if isinstance(value, str):
        return value.strip().replace("${", "$${") or None
    if isinstance(value, list):
        items = [item for item in map(_cleaned, value) if item is not None]
        return items or None
    if isinstance(value, dict):
        fields = {key: _cleaned(item) for key, item in value.items()}
        return {key: item for key, item in fields.items() if item is not None} or None
    return value


def config_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The config mapping for these options: set options only, each at its config key."""
    if not isinstance(options, dict):
        raise ConfigError("the add-on options must be a mapping of option names")
    config: dict[str, Any] = {}
    for option, path in CONFIG_KEYS.items():
        value = _cleaned(options.get(option))
        if value is None:
            continue  # the packaged default applies
        *sections, key = path
        target = config
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
    return config


def flags_from_options(options: dict[str, Any]) -> list[str]:
    """Command-line flags for the server: where to listen, and the switches that are on."""
    flags = ["--uri", ADDON_URI]
    flags += [flag for option, flag in FLAG_OPTIONS.items() if options.get(option) is True]
    return flags


def unknown_options(options: dict[str, Any]) -> list[str]:
    """Options this version does not know (left over from an older add-on): ignored."""
    return sorted(set(options) - set(CONFIG_KEYS) - set(FLAG_OPTIONS))


def _option_names(message: str) -> str:
    """Reword a config error to name the add-on option the user can actually edit."""
    dotted = {".".join(path): option for option, path in CONFIG_KEYS.items() if len(path) > 1}
    for key in sorted(dotted, key=len, reverse=True):
        message = message.replace(key, dotted[key])
    return message


def write_config(config: dict[str, Any], path: Path) -> None:
    """Write the config readable by its owner only: it holds the API key."""
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # in case the file was already there, wider
        file.write(text)


def read_options(path: Path) -> dict[str, Any]:
    """The Supervisor's options.json, or a one-line ConfigError."""
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read the add-on options {path}: {err.strerror}") from None
    except ValueError:
        raise ConfigError(f"the add-on options {path} are not valid JSON") from None
    if not isinstance(options, dict):
        raise ConfigError(f"the add-on options {path} must be a JSON object")
    return options


def prepare(options: dict[str, Any], config_path: Path) -> list[str]:
    """Write and validate the config for these options; return the server's flags.

    Validation is the server's own (load_settings), so the add-on stops with exactly the
    error the server would give, before the server starts.
    """
    config = config_from_options(options)
    if "api_key" not in config.get("realtime", {}):
        raise ConfigError(KEY_MISSING)
    # The live page is reached through HA's ingress (behind its login), from the
    # Supervisor's network: it listens on the container's interfaces.
    config.setdefault("web", {})["host"] = "0.0.0.0"
    if os.environ.get("SUPERVISOR_TOKEN") and options.get("home_control") is not False:
        config["homeassistant"] = dict(SUPERVISOR_CORE)  # knowing the home: names, areas
    write_config(config, config_path)
    try:
        load_settings(config_path)
    except ConfigError as err:
        with contextlib.suppress(OSError):
            config_path.unlink()
        raise ConfigError(_option_names(str(err))) from None
    return flags_from_options(options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m wyoming_realtime_text.addon",
        description="Turn the add-on's options.json into a config file; print the server flags.",
    )
    parser.add_argument("options", type=Path, help="the add-on options, e.g. /data/options.json")
    parser.add_argument("config", type=Path, help="the config file to write (mode 0600)")
    args = parser.parse_args(argv)
    try:
        options = read_options(args.options)
        for option in unknown_options(options):
            print(f"warning: ignoring unknown add-on option '{option}'", file=sys.stderr)
        flags = prepare(options, args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
