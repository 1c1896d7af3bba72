"""``wyoming-realtime-simulator``: run the simulated Realtime API as a process.

For manual runs and black-box tests of the real server binary against a known,
configurable upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ..cli import CANNOT_START, USAGE, OneLineParser, host, listen_port, reason, seconds
from ..config import redact_url
from .scenario import DEFAULT_TRANSCRIPT, Scenario
from .server import RealtimeSimulator

SECRET_HEADERS = ("authorization", "api-key")  # a client's key: never logged, even at DEBUG


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="wyoming-realtime-simulator",
        description="Simulated OpenAI Realtime API (GA; beta on request) on a local WebSocket.",
    )
    parser.add_argument("--host", type=host, default="127.0.0.1")
    parser.add_argument(
        "--port", type=listen_port, default=10312, help="0: any free port (default 10312)"
    )
    parser.add_argument(
        "--scenario", choices=["obey", "audio_despite_text", "forum_replay"], default="obey"
    )
    parser.add_argument("--transcript", default=DEFAULT_TRANSCRIPT, help="what transcription hears")
    parser.add_argument("--reply", default=None, help="assistant reply (default: echo the input)")
    parser.add_argument(
        "--first-token-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="seconds before the first text delta of each answer",
    )
    parser.add_argument(
        "--delta-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="seconds between text deltas (two words each), e.g. 0.04 for a model's pace",
    )
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument(
        "--serve-beta",
        action="store_true",
        help="serve the beta interface (OpenAI-Beta: realtime=v1) like a compatible server; "
        "by default a beta handshake is refused, as api.openai.com does since May 2026",
    )
    parser.add_argument(
        "--debug", action="store_true", help="log every event (never a client's key)"
    )
    return parser


class _HideKeys(logging.Filter):
    """Masks a client's key in websockets' DEBUG lines: its headers and the request's query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("websockets"):
            return True
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], "***")
        elif "?" in (message := record.getMessage()):
            record.msg, record.args = redact_url(message), None
        return True


async def _serve(args: argparse.Namespace) -> int:
    scenario = Scenario(
        mode=args.scenario,
        transcript=args.transcript,
        reply=args.reply,
        first_token_delay=args.first_token_delay,
        delta_delay=args.delta_delay,
    )
    sim = RealtimeSimulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        scenario=scenario,
        record_limit=1000,
        serve_beta=args.serve_beta,
    )
    try:
        await sim.start()
    except OSError as err:
        print(
            f"error: cannot listen on {args.host}:{args.port} (--host, --port): {reason(err)}",
            file=sys.stderr,
        )
        return CANNOT_START
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"Simulated Realtime API listening on ws://{args.host}:{sim.port}/v1/realtime", flush=True
    )
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, serve until SIGINT/SIGTERM, return the exit code."""
    args = _parser().parse_args(argv)
    if args.api_key == "":
        print(
            "error: --api-key must not be empty (leave it out to accept any key)", file=sys.stderr
        )
        return USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_HideKeys())
    return asyncio.run(_serve(args))


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
