"""Command line: argparse → settings → info → Wyoming server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

from . import __version__, logs
from .ask import (
    EXIT_ANSWER,
    EXIT_ERROR,
    EXIT_FALLBACK,
    EXIT_USAGE,
    AskError,
    ask,
    ask_text,
    uri_problem,
)
from .cli import CANNOT_START, USAGE, OneLineParser, reason
from .config import (
    ConfigError,
    Settings,
    check_uri,
    dump_settings,
    key_help,
    load_settings,
    redact_url,
)
from .conversations import Assistant
from .discovery import DEFAULT_NAME, Announcer
from .handler import handler_factory
from .limits import Connections, StopSignals
from .realtime.health import UPSTREAM
from .realtime.models import startup_warnings
from .satellites import SatelliteHub

_LOGGER = logging.getLogger("wyoming_realtime_text")
# --simulator's model: its first words after 0.3 s, then a delta every 40 ms (2 words each),
# about the pace of a realtime model, so streaming can be seen.
TRIAL_FIRST_TOKEN = 0.3
TRIAL_DELTA = 0.04
DEFAULT_ASK_URI = "tcp://127.0.0.1:10310"
# What --print-config shows as realtime.url with --simulator: the port is chosen at start.
SIMULATOR_URL = "ws://127.0.0.1:PORT/v1/realtime (the built-in simulator; PORT chosen at start)"


class CannotListen(Exception):
    """The server's address cannot be listened on (e.g. the port is in use): the reason."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="wyoming-realtime-text",
        description="Wyoming STT and conversation agent backed by a text-only OpenAI Realtime "
        "session; your own TTS does the speaking.",
    )
    parser.add_argument("--config", help="config file (default: the packaged config.yaml)")
    parser.add_argument("--uri", help="overrides server.uri, e.g. tcp://0.0.0.0:10310")
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="answer from the built-in Realtime simulator (no key; nothing leaves this machine)",
    )
    parser.add_argument(
        "--zeroconf",
        nargs="?",
        const="",
        metavar="NAME",
        help="announce the server with zeroconf so Home Assistant discovers it "
        f"(server.zeroconf; NAME defaults to server.zeroconf_name, {DEFAULT_NAME!r})",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config (files, flags and environment merged; the API key "
        "hidden) and exit",
    )
    parser.add_argument("--debug", action="store_true", help="log DEBUG messages")
    parser.add_argument(
        "--log-format",
        default=logging.BASIC_FORMAT,
        help="format for log messages (Python logging), or json: one JSON object per line",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="{ask}")
    ask_parser = commands.add_parser(
        "ask",
        help="send a WAV recording as one utterance; print the answer as it streams",
        description="Be a client of a running server: send a recording (or typed text) and "
        "print the answer as it streams.",
        epilog=f"Exit codes: {EXIT_ANSWER} an answer; {EXIT_ERROR} an error (no server, a file "
        f"that is not a WAV, an error from the server); {EXIT_USAGE} a usage error; "
        f"{EXIT_FALLBACK} the server's fallback answer (the Realtime API failed or refused the "
        "key) or not-handled. --uri may also come before ask.",
    )
    ask_parser.add_argument(
        "wav",
        type=Path,
        nargs="?",
        help="the recording: any WAV (PCM 8/16/24/32-bit or float, extensible too, any rate "
        "and channels); - reads it from stdin",
    )
    ask_parser.add_argument(
        "--text",
        metavar="TEXT",
        help="type the request instead, as Home Assistant's agent sends it; also prints the "
        "commands the answer asks Home Assistant to run (try: 'Turn on the kitchen light')",
    )
    ask_parser.add_argument(
        "--uri",
        dest="ask_uri",
        metavar="URI",
        help=f"the server (default {DEFAULT_ASK_URI})",
    )
    ask_parser.add_argument(
        "--speak", type=Path, metavar="OUT.wav", help="also ask for speech and save it here"
    )
    return parser


# Server flags that mean nothing to `ask` (given before it, they would be ignored silently).
_SERVER_ONLY = {"config": "--config", "simulator": "--simulator", "zeroconf": "--zeroconf"}


def run_ask(args: argparse.Namespace) -> int:
    """The `ask` command: errors are one line; the exit codes are in `ask --help`."""
    usage = [
        flag for dest, flag in _SERVER_ONLY.items() if getattr(args, dest) not in (None, False)
    ]
    if args.print_config:
        usage.append("--print-config")
    if usage:
        verb = "is" if len(usage) == 1 else "are"
        print(f"error: {', '.join(usage)} {verb} for the server, not ask", file=sys.stderr)
        return EXIT_USAGE
    if (args.wav is None) == (args.text is None):
        print("error: ask needs a WAV recording or --text, one of the two", file=sys.stderr)
        return EXIT_USAGE
    if args.text is not None and not args.text.strip():
        print("error: ask --text needs some text", file=sys.stderr)
        return EXIT_USAGE
    uri = args.ask_uri or args.uri or DEFAULT_ASK_URI  # `--uri` after ask, or before it
    if (problem := uri_problem(uri)) is not None:
        print(f"error: --uri {uri}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.text is not None:
            asyncio.run(ask_text(args.text, uri))
        else:
            asyncio.run(ask(args.wav, uri, args.speak))
    except AskError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return EXIT_ANSWER


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ask":
        return run_ask(args)
    try:
        logs.check_format(args.log_format)
        if args.uri:
            check_uri("--uri", args.uri)
    except ValueError as err:  # ConfigError included
        print(f"error: {err}", file=sys.stderr)
        return USAGE
    logs.configure(args.debug, args.log_format)
    overrides: dict[str, dict[str, Any]] = {}
    server: dict[str, Any] = overrides.setdefault("server", {})
    if args.uri:
        server["uri"] = args.uri
    if args.zeroconf is not None:
        server["zeroconf"] = True
        if args.zeroconf:
            server["zeroconf_name"] = args.zeroconf
    if args.simulator:
        # The simulator accepts any key; the URL is replaced once it listens.
        key = f"sim-{secrets.token_hex(8)}"
        overrides["realtime"] = {"url": "ws://127.0.0.1:1/v1/realtime", "api_key": key}
    try:
        settings = load_settings(args.config, overrides=overrides, need_key=not args.print_config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE
    if args.print_config:
        return print_config(settings, use_simulator=args.simulator)
    redact_secret(settings.realtime.api_key)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, use_simulator=args.simulator))
    except CannotListen as err:
        where = "--uri" if args.uri else "server.uri"
        print(f"error: cannot listen on {settings.server.uri} ({where}): {err}", file=sys.stderr)
        return CANNOT_START
    return 0


def print_config(settings: Settings, *, use_simulator: bool) -> int:
    """--print-config: the effective config on stdout; a missing key is said on stderr."""
    if use_simulator:
        settings = _with_url(settings, SIMULATOR_URL)
    print(dump_settings(settings), end="")
    if not settings.realtime.api_key.strip():
        print(f"warning: realtime.api_key is not set: {key_help()}", file=sys.stderr)
    return 0


async def serve(settings: Settings, *, use_simulator: bool = False) -> None:
    """Run until SIGTERM/SIGINT; then drain the connections and close every upstream session."""
    signals = StopSignals()
    signals.install()
    connections = Connections(settings.server)
    try:
        await connections.bind()  # first: a port in use stops the server before all else
    except OSError as err:
        raise CannotListen(reason(err)) from None
    for warning in startup_warnings(settings.realtime, datetime.date.today()):
        _LOGGER.warning("%s", warning)
    async with contextlib.AsyncExitStack() as stack:
        if use_simulator:
            settings = await _simulated(settings, stack)
        assistant = Assistant(settings)
        stack.push_async_callback(assistant.activity.close)
        assistant.start()
        stack.push_async_callback(assistant.close)
        await assistant.home.start()  # knowing the home, when HA's API is configured
        stack.push_async_callback(assistant.home.close)
        if settings.web.enabled:
            from .web import WebServer  # aiohttp only when serving: `ask` starts faster

            web = WebServer(settings.web, assistant.activity, UPSTREAM, settings.realtime.api_key)
            if await web.start():
                stack.push_async_callback(web.stop)
        hub = SatelliteHub(settings, assistant)
        hub.start()
        stack.push_async_callback(hub.stop)
        await connections.start_serving(handler_factory(settings, assistant))
        _LOGGER.info(
            "Ready on %s: STT and conversation agent via %s (model %s, %s dialect)",
            settings.server.uri,
            redact_url(settings.realtime.url),
            settings.realtime.model,
            settings.realtime.dialect,
        )
        if settings.server.zeroconf:
            announcer = Announcer(settings.server.zeroconf_name, settings.server.uri)
            await announcer.start()
            stack.push_async_callback(announcer.stop)
        await signals.stop.wait()
        _LOGGER.info("Stopping")
        grace = settings.server.shutdown_grace
        await asyncio.gather(
            connections.shutdown(grace, signals.hurry), hub.drain(grace, signals.hurry)
        )


async def _simulated(settings: Settings, stack: contextlib.AsyncExitStack) -> Settings:
    """--simulator: the Realtime simulator instead of the API, and a simulated TTS when none
    is configured, so that every path (speech included) can be tried without a key."""
    from .simulator import RealtimeSimulator, Scenario, SimulatedTts  # trials only

    # Bounded records (a trial may run for days); text paced as a model streams it, so the
    # live page and `ask` show it arriving.
    pace = Scenario(first_token_delay=TRIAL_FIRST_TOKEN, delta_delay=TRIAL_DELTA)
    simulator = RealtimeSimulator(record_limit=1000, scenario=pace)
    await stack.enter_async_context(simulator)
    settings = _with_url(settings, simulator.url)
    _LOGGER.info("Using the built-in Realtime simulator at %s (canned answers)", simulator.url)
    if not settings.tts.uri:
        tts = await stack.enter_async_context(SimulatedTts(record_limit=1000))
        settings = dataclasses.replace(settings, tts=dataclasses.replace(settings.tts, uri=tts.uri))
        _LOGGER.info("Using the built-in simulated TTS at %s (a tone as long as the text)", tts.uri)
    return settings


def _with_url(settings: Settings, url: str) -> Settings:
    return dataclasses.replace(settings, realtime=dataclasses.replace(settings.realtime, url=url))


class _Redact(logging.Filter):
    """Replaces the API key in every log line, whatever logger or argument carries it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        fields = getattr(record, logs.TURN_FIELDS, None)
        if fields is not None and self.secret in str(fields):
            masked = {
                k: v.replace(self.secret, "***") if isinstance(v, str) else v
                for k, v in fields.items()
            }
            setattr(record, logs.TURN_FIELDS, masked)
        return True


def redact_secret(secret: str) -> None:
    """Install the key filter on every root handler (defence in depth behind the code's care)."""
    if len(secret) >= 4:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_Redact(secret))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
