"""Command-line plumbing shared by the server and the simulator: every mistake is one line.

A user's mistake (a bad flag, a port out of range, a host that cannot be one) stops the
command before it starts, with one line on stderr naming the flag, and exit code 2; that
the address cannot be listened on (a port in use, say) is one line too, exit code 1 (it
may be transient, so a supervisor may retry it).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import sys
from typing import NoReturn

USAGE = 2  # exit code: the command line or the config is wrong; nothing was started
CANNOT_START = 1  # exit code: cannot listen (e.g. the port is in use); may be transient

# A host name: dot-separated labels of letters, digits, '-' and '_' (Docker's container
# names have '_'), a label not starting or ending with '-'.
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`error: ...; see PROG --help`), exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(USAGE)


def valid_host(host: str) -> bool:
    """Whether `host` can be a host to listen on or connect to: an IP address or a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and _HOSTNAME.fullmatch(host) is not None
    return True


def host(value: str) -> str:
    """argparse type: a host name or IP address (unbracketed)."""
    if not valid_host(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a host name or IP address (e.g. 127.0.0.1, 0.0.0.0 or ::)"
        )
    return value


def listen_port(value: str) -> int:
    """argparse type: a port to listen on, 1 to 65535, or 0 for any free port."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port must be a number from 1 to 65535 (0: any free port), not {value!r}"
        )
    return port


def seconds(value: str) -> float:
    """argparse type: a duration in seconds, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {value!r}")
    return number


def reason(err: OSError) -> str:
    """An OSError's reason, e.g. "Address already in use" (asyncio's preamble dropped)."""
    text = err.strerror or str(err) or type(err).__name__
    if text.startswith("error while attempting to bind") and err.errno:
        text = os.strerror(err.errno)
    return text
