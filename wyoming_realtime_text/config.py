"""config.yaml → typed, validated settings.

Errors are one line naming the key, because the usual reader is someone editing an
add-on option or a YAML file, not a Python developer reading a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import sys
import types
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import SplitResult, urlparse, urlsplit

import yaml

from .cli import valid_host
from .discovery import ZeroconfError, announced_address
from .home.hass import parse_url
from .home.intents import BY_NAME

# ${VAR} or ${VAR:-fallback}; $${VAR} is the literal text ${VAR} (as in docker compose).
ENV_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A key passed in the URL (e.g. Azure's ?api-key=), hidden wherever the URL is shown.
_SECRET_QUERY = re.compile(r"(?i)((?:api[-_]?key|key|token)=)[^&]+")


def key_help() -> str:
    """How to set the key, and how to try without one, as the user ran the server."""
    return (
        "set it with: export OPENAI_API_KEY=sk-... "
        f"(or try the server without a key: {invoked()} --simulator)"
    )


def invoked() -> str:
    """The command the user typed for the server: `wyoming-realtime-text` when that is on
    PATH, else the path they ran (`.venv/bin/wyoming-realtime-text`), else the module form,
    so the hint works as written."""
    program = sys.argv[0] if sys.argv else ""
    name = Path(program).name
    if name != "wyoming-realtime-text":
        return "python3 -m wyoming_realtime_text"
    found = shutil.which(name)
    same = found is not None and Path(found).resolve() == Path(program).resolve()
    return name if same else program


class ConfigError(ValueError):
    """A config problem, worded for the person editing the file."""


@dataclass(frozen=True)
class ServerSettings:
    uri: str = "tcp://0.0.0.0:10310"
    max_connections: int = 64
    max_frame_bytes: int = 1_048_576
    idle_timeout: float = 300.0
    shutdown_grace: float = 5.0
    zeroconf: bool = False
    zeroconf_name: str = "realtime-text"


@dataclass(frozen=True)
class RealtimeSettings:
    url: str = "wss://api.openai.com/v1/realtime"
    model: str = "gpt-realtime-2.1-mini"
    dialect: Literal["ga", "beta"] = "ga"
    api_key: str = field(default="", repr=False)
    auth: Literal["auto", "bearer", "api-key"] = "auto"
    instructions: str = ""
    transcription_model: str = "gpt-live-transcribe"
    # Sent to the reasoning models (gpt-realtime-2.x) only; None: the API's default (low).
    reasoning_effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = "minimal"
    max_output_tokens: int | None = 1024
    connect_timeout: float = 10.0
    response_timeout: float = 30.0
    warm_sessions: int = 1
    max_retries: int = 2
    retry_backoff: float = 0.5
    # The API's input noise reduction (GA audio.input.noise_reduction; beta's
    # input_audio_noise_reduction): off, or tuned for a close or a distant microphone.
    noise_reduction: Literal["off", "near_field", "far_field"] = "off"


@dataclass(frozen=True)
class AudioSettings:
    max_utterance_seconds: float = 30.0
    stall_seconds: float = 10.0


@dataclass(frozen=True)
class ConversationSettings:
    one_round_trip: bool = True
    claim_seconds: float = 2.0
    max_turns: int = 10
    idle_seconds: float = 300.0
    max_conversations: int = 50


@dataclass(frozen=True)
class TurnDetectionSettings:
    type: Literal["semantic_vad", "server_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    threshold: float = 0.5
    silence_ms: int = 500
    no_speech_seconds: float = 3.0
    # Who ends Home Assistant's STT turns: the API's turn detection (or HA's audio-stop,
    # whichever is first), or HA's audio-stop alone.
    ha_turns: Literal["api", "ha"] = "api"
    requires_external_vad: bool = True  # told to HA: keep its own VAD running too


@dataclass(frozen=True)
class TtsSettings:
    uri: str = ""
    voice: str = ""
    connect_timeout: float = 5.0
    timeout: float = 15.0


@dataclass(frozen=True)
class WakeSettings:
    uri: str = ""
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SatelliteSettings:
    uri: str = ""
    name: str = ""
    area: str = ""


@dataclass(frozen=True)
class HomeControlSettings:
    enabled: bool = True
    disabled_intents: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)  # direct clients' addresses


@dataclass(frozen=True)
class HomeAssistantSettings:
    url: str = ""
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 10311


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    languages: list[str] = field(default_factory=lambda: ["en"])
    audio: AudioSettings = field(default_factory=AudioSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    turn_detection: TurnDetectionSettings = field(default_factory=TurnDetectionSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    satellites: list[SatelliteSettings] = field(default_factory=list)
    web: WebSettings = field(default_factory=WebSettings)
    home_control: HomeControlSettings = field(default_factory=HomeControlSettings)
    homeassistant: HomeAssistantSettings = field(default_factory=HomeAssistantSettings)
    fallback_text: str = "Sorry, I can't answer that right now. Please try again."
    key_error_text: str = (
        "I can't use my assistant service: it refused this server's API key or account. "
        "Please check the key and the account."
    )


def redact_url(url: str) -> str:
    """The URL as it may be shown or logged: a key passed as a query parameter is hidden."""
    return _SECRET_QUERY.sub(r"\1***", url)


def dump_settings(settings: Settings) -> str:
    """The effective settings as YAML, for troubleshooting; the API key is never in it."""
    raw = dataclasses.asdict(settings)
    realtime = raw["realtime"]
    realtime["api_key"] = "***" if realtime["api_key"] else ""
    realtime["url"] = redact_url(realtime["url"])
    hass = raw["homeassistant"]
    hass["token"] = "***" if hass["token"] else ""
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def default_config_text() -> str:
    """The packaged default config (identical to the repository's top-level config.yaml)."""
    return resources.files(__package__).joinpath("config.yaml").read_text(encoding="utf-8")


def load_settings(
    path: str | Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    need_key: bool = True,
) -> Settings:
    """Read, expand and validate a config file (the packaged default when path is None).

    A user's file is laid over the packaged one, so keys it leaves out keep the packaged
    values (the commented defaults the user read), e.g. the voice-assistant instructions.

    `overrides` ({section: {key: value}}) wins over the file: command-line flags use it, so
    `--uri` or `--simulator` apply before validation (a missing key is fine with --simulator).
    `need_key=False` lets a missing API key pass (`--print-config` shows the rest).
    """
    raw = _parse_yaml(default_config_text(), "the packaged config.yaml")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        user = _parse_yaml(text, str(path))
        if not isinstance(user, dict):
            raise ConfigError(f"{path} must be a mapping of config keys")
        raw = _merge(raw, user)
    raw = _merge(raw, overrides or {})
    return parse_settings(_expand(raw, os.environ if env is None else env), need_key=need_key)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last of duplicate keys without a word, so a second `home_control:`
    section pasted below the first would silently replace it, setting for setting.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise ConfigError(
                    f"{key!r} is given twice (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}): keep one"
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{where}") from None
    return {} if raw is None else raw


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_settings(raw: Any, *, need_key: bool = True) -> Settings:
    """Validate an already-parsed mapping into Settings."""
    settings = _build(Settings, raw, "")
    _check(settings, need_key=need_key)
    return settings


def _expand(value: Any, env: dict[str, str] | os._Environ[str]) -> Any:
    if isinstance(value, str):
        return ENV_VAR.sub(lambda m: _reference(m, env), value)
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    return value


def _reference(match: re.Match[str], env: dict[str, str] | os._Environ[str]) -> str:
    if match.group(1):
        return match.group(0)[1:]  # escaped: the text itself, one "$" fewer
    # As in the shell, ${VAR:-fallback} also applies when VAR is set but empty.
    return env.get(match.group(2)) or match.group(3) or ""


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, naming the exact key on any mistake."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping of keys")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(kind: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, {} if value is None else value, f"{key}.")
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (kind,) = [a for a in args if a is not type(None)]
        return _coerce(kind, value, key)
    if origin is Literal:
        if value not in args:
            choices = " | ".join(map(str, args))
            raise ConfigError(f"{key} must be one of {choices}, not {value!r}")
        return value
    if origin is list:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list")
        return [_coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            word = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{key} must be {word}, not {value!r}")
        if kind is int and value != int(value):
            raise ConfigError(f"{key} must be a whole number, not {value!r}")
        return kind(value)
    if kind is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be text, not {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type")  # pragma: no cover - schema bug


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key} must be greater than 0, not {value!r}")


def check_uri(key: str, value: str) -> None:
    """A Wyoming address, tcp://HOST:PORT or unix:///PATH; `key` names it in the error."""
    form = f"{key} must look like tcp://HOST:PORT or unix://PATH, not {value!r}"
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise ConfigError(form) from None
    if parts.scheme == "unix":
        if parts.netloc or not parts.path:
            raise ConfigError(
                f"{key} must name the socket by its absolute path, e.g. unix:///run/wyoming.sock, "
                f"not {value!r}"
            )
        return
    if parts.scheme != "tcp":
        raise ConfigError(form)
    port = _port(key, value, parts)
    if port is None or not parts.hostname:
        raise ConfigError(form)
    if not valid_host(parts.hostname):
        raise ConfigError(f"{key}: {parts.hostname!r} is not a host name or IP address")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ConfigError(
            f"{key} must be tcp://HOST:PORT alone (no user, path or query), not {value!r}"
        )


def _port(key: str, value: str, parts: SplitResult) -> int | None:
    """The URL's port (None: none given), 1-65535; else a ConfigError naming `key`."""
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        raise ConfigError(f"{key}: the port in {value!r} must be a number from 1 to 65535")
    return port


def _check_realtime_url(url: str) -> None:
    form = f"realtime.url must be a ws:// or wss:// URL, not {url!r}"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(form) from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(form)
    _port("realtime.url", url, parts)
    if not valid_host(parts.hostname):
        raise ConfigError(f"realtime.url: {parts.hostname!r} is not a host name or IP address")


def _check(settings: Settings, *, need_key: bool = True) -> None:
    """Cross-field and range checks that types alone cannot express."""
    rt = settings.realtime
    if need_key and not rt.api_key.strip():
        raise ConfigError(f"realtime.api_key is not set: {key_help()}")
    _check_realtime_url(rt.url)
    check_uri("server.uri", settings.server.uri)
    server = settings.server
    _positive("server.max_connections", server.max_connections)
    if server.max_frame_bytes < 65_536:
        raise ConfigError(
            f"server.max_frame_bytes must be at least 65536, not {server.max_frame_bytes}"
        )
    _positive("server.idle_timeout", server.idle_timeout)
    if server.zeroconf:
        try:
            announced_address(server.uri)
        except ZeroconfError as err:
            raise ConfigError(f"server.zeroconf: {err}") from None
        if not server.zeroconf_name.strip():
            raise ConfigError("server.zeroconf_name must not be empty")
    if server.shutdown_grace < 0:
        raise ConfigError(f"server.shutdown_grace must be 0 or more, not {server.shutdown_grace}")
    if settings.tts.uri:
        check_uri("tts.uri", settings.tts.uri)
    if settings.wake.uri:
        check_uri("wake.uri", settings.wake.uri)
    for index, satellite in enumerate(settings.satellites):
        check_uri(f"satellites[{index}].uri", satellite.uri)
    vad = settings.turn_detection
    if not 0 < vad.threshold < 1:
        raise ConfigError(f"turn_detection.threshold must be between 0 and 1, not {vad.threshold}")
    _positive("turn_detection.silence_ms", vad.silence_ms)
    _positive("turn_detection.no_speech_seconds", vad.no_speech_seconds)
    _positive("tts.connect_timeout", settings.tts.connect_timeout)
    _positive("tts.timeout", settings.tts.timeout)
    if not settings.languages:
        raise ConfigError("languages must name at least one language")
    if rt.max_output_tokens is not None and not 1 <= rt.max_output_tokens <= 4096:
        raise ConfigError("realtime.max_output_tokens must be between 1 and 4096, or null")
    if rt.warm_sessions < 0:
        raise ConfigError(f"realtime.warm_sessions must be 0 or more, not {rt.warm_sessions}")
    _positive("realtime.connect_timeout", rt.connect_timeout)
    _positive("realtime.response_timeout", rt.response_timeout)
    if not 0 <= rt.max_retries <= 5:
        raise ConfigError(f"realtime.max_retries must be between 0 and 5, not {rt.max_retries}")
    _positive("realtime.retry_backoff", rt.retry_backoff)
    _positive("audio.stall_seconds", settings.audio.stall_seconds)
    _positive("audio.max_utterance_seconds", settings.audio.max_utterance_seconds)
    conv = settings.conversation
    _positive("conversation.claim_seconds", conv.claim_seconds)
    _positive("conversation.max_turns", conv.max_turns)
    _positive("conversation.idle_seconds", conv.idle_seconds)
    _positive("conversation.max_conversations", conv.max_conversations)
    _check_web(settings.web, settings.server.uri)
    _check_homeassistant(settings.homeassistant)
    for index, name in enumerate(settings.home_control.disabled_intents):
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"home_control.disabled_intents[{index}]: {name!r} is not an intent this "
                f'server offers{hint}; README "Home control" lists them'
            )
    if not settings.fallback_text.strip():
        raise ConfigError("fallback_text must not be empty")
    if not settings.key_error_text.strip():
        raise ConfigError("key_error_text must not be empty")


def _check_homeassistant(hass: HomeAssistantSettings) -> None:
    if not hass.url.strip():
        return
    try:
        parse_url(hass.url)
    except ValueError as err:
        raise ConfigError(f"homeassistant.url: {err}") from None
    if not hass.token.strip():
        raise ConfigError(
            "homeassistant.token is not set: create a long-lived access token in Home "
            "Assistant (your profile, Security tab) and set it, e.g. token: ${HA_TOKEN}"
        )


def _check_web(web: WebSettings, server_uri: str) -> None:
    if not web.enabled:
        return
    if not 1 <= web.port <= 65535:
        raise ConfigError(f"web.port must be between 1 and 65535, not {web.port}")
    if not web.host.strip():
        raise ConfigError("web.host must not be empty (0.0.0.0: every interface)")
    if not valid_host(web.host):
        raise ConfigError(
            f"web.host must be a host name or IP address (0.0.0.0: every interface), "
            f"not {web.host!r}"
        )
    uri = urlparse(server_uri)
    if uri.scheme == "tcp" and uri.port == web.port:
        raise ConfigError(
            f"web.port must differ from the Wyoming port in server.uri ({web.port}); "
            "or set web.enabled: false"
        )
