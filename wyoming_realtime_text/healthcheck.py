"""`python3 -m wyoming_realtime_text.healthcheck [URI]`: exit 0 if the server answers describe.

An open port is not enough: the server must read a Wyoming event and answer it, as Home
Assistant's first contact does (`describe` → `info`). Docker's HEALTHCHECK, compose and the
add-on's discovery step all use it, so it imports only the `wyoming` client (fast to start on a
small machine) and always ends within its timeout: exit 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

DEFAULT_URI = "tcp://127.0.0.1:10310"
DEFAULT_TIMEOUT = 3.0


class Unhealthy(Exception):
    """The server did not answer `describe` with `info`; the message says what happened."""


async def check(uri: str = DEFAULT_URI, seconds: float = DEFAULT_TIMEOUT) -> Info:
    """Connect, send `describe`, return the `info` answer within `seconds`, else Unhealthy."""
    try:
        client = AsyncClient.from_uri(uri)
    except ValueError as err:
        raise Unhealthy(f"bad URI {uri!r}: {err}") from None
    try:
        async with asyncio.timeout(seconds):
            async with client:
                await client.write_event(Describe().event())
                while (event := await client.read_event()) is not None:
                    if Info.is_type(event.type):
                        return Info.from_event(event)
    except TimeoutError:
        raise Unhealthy(f"no info from {uri} within {seconds:g} s") from None
    except OSError as err:
        raise Unhealthy(f"cannot reach {uri}: {err.strerror or err}") from None
    except Exception as err:  # whatever it sent, the answer is exit 1, not a traceback
        raise Unhealthy(f"{uri} does not speak Wyoming: {err!r}") from None
    raise Unhealthy(f"{uri} closed the connection without sending info")


def _programs(info: Info) -> str:
    """The installed programs, e.g. 'asr realtime-text, handle realtime-text', for the log."""
    kinds = {"asr": info.asr, "handle": info.handle, "tts": info.tts, "wake": info.wake}
    names = [
        f"{kind} {program.name}"
        for kind, programs in kinds.items()
        for program in programs
        if program.installed
    ]
    return ", ".join(names) or "no installed programs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m wyoming_realtime_text.healthcheck",
        description="Exit 0 if the Wyoming server at URI answers describe with info, else 1.",
    )
    parser.add_argument("uri", nargs="?", default=DEFAULT_URI, help=f"default {DEFAULT_URI}")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds for the whole check (default {DEFAULT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    try:
        info = asyncio.run(check(args.uri, args.timeout))
    except Unhealthy as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1
    print(f"healthy: {args.uri} answered info ({_programs(info)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
