"""Statistics, the bench's own timing error, progress lines and the result table."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np

_T0 = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (the table alone goes to stdout)."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation); NaN without values."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, with the precision the size deserves."""
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    if abs(value) < 10:
        return f"{value:.2f} ms"
    if abs(value) < 100:
        return f"{value:.1f} ms"
    return f"{value:,.0f} ms"


def fmt_mib(size: float) -> str:
    return f"{size / 2**20:.2f} MiB"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**NO**"


@dataclass
class Row:
    """One line of the result table."""

    section: str
    measure: str
    n: str = ""
    value: str = ""  # the median (p50), or the single figure
    p99: str = ""
    goal: str = ""
    met: str = ""
    note: str = ""


def latency_row(section: str, measure: str, values: Sequence[float], note: str = "") -> Row:
    """One row of `values` (seconds): how many, their median and their 99th percentile."""
    return Row(
        section,
        measure,
        str(len(values)),
        fmt_ms(median(values)),
        fmt_ms(percentile(values, 99)),
        note=note,
    )


HEADER = Row("#", "Measure", "n", "p50 / value", "p99", "Goal", "Met", "Note")


def render(rows: Sequence[Row]) -> str:
    """A Markdown table, padded so it also reads as plain text."""
    cells = [[str(value) for value in dataclasses.astuple(row)] for row in (HEADER, *rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    right = {2, 3, 4}  # numbers

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


class LagMonitor:
    """How late the bench's own event loop wakes up while it measures.

    Clients and the simulator share the bench process, so every timestamp it takes can be
    late by this much: it is the measuring instrument's error, printed beside the results.
    """

    PERIOD = 0.005

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LagMonitor:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.PERIOD)
            self.lags.append(max(0.0, time.monotonic() - before - self.PERIOD))

    @property
    def p99(self) -> float:
        return percentile(self.lags, 99)
