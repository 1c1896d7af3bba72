"""Benchmark of wyoming-realtime-text: `python3 bench/run.py` (add `--quick` for a smoke run).

Starts the real server as a subprocess against the project's Realtime simulator on
loopback, drives it with Wyoming clients, and prints one Markdown table on stdout
(progress goes to stderr). See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import conversion
import endofspeech
import ha
import home
import latency
import memory
import turns
from clients import load_speech
from measure import Row, progress, render
from rig import REPO, raise_fd_limit

import wyoming_realtime_text

SECTIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


def machine() -> str:
    """nproc, CPU model, Python, kernel and the commit measured."""
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (
        f"Machine: nproc {len(os.sched_getaffinity(0))}, {model}, "
        f"Python {platform.python_version()}, Linux {platform.release()}; commit {commit}"
    )


def check_package() -> None:
    """The server always runs this checkout (rig sets PYTHONPATH); say so if the simulator
    in this process comes from another copy (an install elsewhere: run with PYTHONPATH=.)."""
    here = Path(wyoming_realtime_text.__file__).resolve()
    if not here.is_relative_to(REPO):
        progress(f"warning: the simulator is {here.parent}, not this checkout's; PYTHONPATH=.")


async def run(sections: set[int], quick: bool, workdir: Path) -> list[Row]:
    kitchen, bedroom = load_speech("kitchen"), load_speech("bedroom")
    rows: list[Row] = []
    if 1 in sections:
        rows += await latency.section(workdir / "1", quick, [kitchen, bedroom])
    if sections & {2, 3}:
        rows += [
            r
            for r in await turns.sections_2_and_3(workdir / "2", quick, kitchen)
            if int(r.section) in sections
        ]
    if 4 in sections:
        rows += await turns.section_4(workdir / "4", quick, kitchen)
    if 5 in sections:
        rows += conversion.section(quick)
    if 6 in sections:
        rows += await memory.section(workdir / "6", quick, kitchen)
    if 7 in sections:
        rows += await ha.section(workdir / "7", quick, [kitchen, bedroom])
    if 8 in sections:
        rows += await home.section(workdir / "8", quick, [kitchen, bedroom])
    if 9 in sections:
        rows += await endofspeech.section(workdir / "9", quick, kitchen)
    return rows


NOTES = """\
Notes:
- Latencies are medians (p50) and 99th percentiles over n samples; with n < 100 the p99 is
  close to the maximum. Every timestamp is time.monotonic() in this process (clients and
  simulator), taken just before a write or just after a read.
- Section 1: (a) uses the simulator's conn.log, which stamps an event when the simulator
  handles it (after the events before it); (a′) stamps it when it reaches the simulator's
  socket. "bench loop lag" is how late this process's own event loop woke up meanwhile:
  the instrument's error.
- Section 2-3: the simulator accepts a connection after 150 ms and sends the first token
  300 ms after the response starts; end of speech = the client's audio-stop (or a typed
  message sent), first text = the first handled-chunk.
- Section 4 figures reflect the simulator's VAD model (wyoming_realtime_text/simulator/vad.py),
  not OpenAI's: semantic_vad ends a turn after 800 ms of silence, server_vad after silence_ms.
- Section 7: Home Assistant's framing (10 ms STT chunks) against 20 ms chunks, the same
  requests otherwise; an unclaimed answer's tokens are the simulator's modelled usage (a
  fixed input, one output token per delta): the mechanism and the ratio, not OpenAI's bill.
- Section 8: end of speech = the STT request's audio-stop; the same simulated model for every
  row (first delta 50 ms after the response starts, one every 20 ms, arguments as text);
  "model" = response.create at the simulator -> the event the answer waits for sent
  (response.done, or the first text delta), "the rest" = the server's part and loopback.
- Section 9: end of speech = the chunk with the last speech sample sent; HA streams the words
  and 1.3 s of silence (its VAD) before audio-stop; the API's end of turn is the simulator's
  semantic_vad model (800 ms of silence), not OpenAI's, which judges the words.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run, e.g. 1,5 (default: all of 1-9)",
    )
    parser.add_argument("--keep", type=Path, help="keep server configs and logs in this folder")
    args = parser.parse_args()
    sections = {int(s) for s in args.only.split(",") if s.strip()} or set(SECTIONS)
    if not sections <= set(SECTIONS):
        parser.error(f"--only takes sections from {SECTIONS}")
    raise_fd_limit()
    check_package()
    started = time.monotonic()
    progress(machine())
    with tempfile.TemporaryDirectory(prefix="wrt-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        rows = asyncio.run(run(sections, args.quick, workdir))
    elapsed = time.monotonic() - started
    print(f"wyoming-realtime-text benchmark ({'quick' if args.quick else 'full'} run)")
    print(machine())
    print()
    print(render(rows))
    print()
    print(NOTES, end="")
    print(f"\nRun time: {elapsed // 60:.0f} min {elapsed % 60:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
