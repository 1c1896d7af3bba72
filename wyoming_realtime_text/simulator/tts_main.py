"""``wyoming-realtime-simulated-tts``: the simulated Wyoming TTS as a process of its own.

A stand-in for wyoming-piper when trying the server without a voice model: it answers
`synthesize` (and the streaming variant) with a quiet tone as long as the text, so
`tts.uri`, `ask --speak` and satellites in hub mode can be tried with nothing installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from .tts import SimulatedTts

_LOGGER = logging.getLogger("wyoming_realtime_text.simulator.tts")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-realtime-simulated-tts",
        description="Simulated Wyoming TTS: a quiet tone as long as the text (like piper).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10201, help="default 10201 (piper: 10200)")
    parser.add_argument("--rate", type=int, default=22050, help="sample rate of its audio")
    parser.add_argument(
        "--no-streaming", action="store_true", help="announce no synthesize streaming"
    )
    return parser


def _problem(args: argparse.Namespace) -> str | None:
    """One line for a bad option (argparse's own errors add a usage block)."""
    if not 0 <= args.port <= 65535:
        return f"--port must be between 0 and 65535, not {args.port}"
    if not 8000 <= args.rate <= 48000:
        return f"--rate must be between 8000 and 48000, not {args.rate}"
    return None


async def _serve(args: argparse.Namespace) -> int:
    tts = SimulatedTts(
        streaming=not args.no_streaming,
        rate=args.rate,
        host=args.host,
        port=args.port,
        record_limit=1000,
    )
    try:
        await tts.start()
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port}: {err.strerror}", file=sys.stderr)
        return 2
    _LOGGER.info("Simulated TTS on %s", tts.uri)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await tts.stop()
    return 0


def run() -> None:
    args = _parser().parse_args()
    if (problem := _problem(args)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(_serve(args)))


if __name__ == "__main__":
    run()
