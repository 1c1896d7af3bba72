"""``wyoming-realtime-simulator``: run the simulated Realtime API as a process.

For manual runs and black-box tests of the real server binary against a known,
configurable upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .scenario import DEFAULT_TRANSCRIPT, Scenario
from .server import RealtimeSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-realtime-simulator",
        description="Simulated OpenAI Realtime API (GA; beta on request) on a local WebSocket.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10312)
    parser.add_argument(
        "--scenario", choices=["obey", "audio_despite_text", "forum_replay"], default="obey"
    )
    parser.add_argument("--transcript", default=DEFAULT_TRANSCRIPT, help="what transcription hears")
    parser.add_argument("--reply", default=None, help="assistant reply (default: echo the input)")
    parser.add_argument("--first-token-delay", type=float, default=0.0, metavar="S")
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument(
        "--serve-beta",
        action="store_true",
        help="serve the beta interface (OpenAI-Beta: realtime=v1) like a compatible server; "
        "by default a beta handshake is refused, as api.openai.com does since May 2026",
    )
    parser.add_argument("--debug", action="store_true", help="log every event")
    return parser


async def _serve(args: argparse.Namespace) -> int:
    scenario = Scenario(
        mode=args.scenario,
        transcript=args.transcript,
        reply=args.reply,
        first_token_delay=args.first_token_delay,
    )
    sim = RealtimeSimulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        scenario=scenario,
        record_limit=1000,
        serve_beta=args.serve_beta,
    )
    await sim.start()
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
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(_serve(args))


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
