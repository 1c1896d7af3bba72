"""Section 1: latency the server adds on the audio path, at 1, 50 and 200 concurrent clients.

Each client is a direct Wyoming client (`run-pipeline {asr -> handle}`) that streams speech
fixtures of 2-3 s in 20 ms chunks at real-time pace, sends `audio-stop` and reads the answer;
clients start staggered over one utterance, so their ends of speech are spread out.
Two hops are timed, both with clocks in this process:
  (a) the client sends `audio-stop` -> the simulator has received both
      `input_audio_buffer.commit` and `response.create` (the later of the two), as its
      `conn.log` records them: when it handles them, after every event before them;
  (a') the same, stamped when the two events reach the simulator's socket, so the
      simulator's own queueing (it handles one event at a time) is left out;
  (b) the simulator sends the first `response.output_text.delta` -> the client has the
      first `handled-chunk`. The simulated model answers at a model's pace (first token
      after 50 ms, then one every 20 ms), so (b) times the relay of a token, not a burst.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients import Connection, Speech, Utterance, pipeline_turn
from measure import LagMonitor, Row, fmt_ms, percentile, progress, verdict
from rig import FALLBACK, CpuUse, arrived_at, cpu_use, logged_at, serving, session_of

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection

TEXT_DELTAS = frozenset({"response.output_text.delta", "response.text.delta"})
COMMIT = frozenset({"input_audio_buffer.commit"})
CREATE = frozenset({"response.create"})
GOALS = {1: 0.001, 200: 0.005}  # p99 of both hops
# A model's pace: the first token comes after the transcript is out, the rest stream in.
FIRST_TOKEN = 0.05
TOKEN_INTERVAL = 0.02


@dataclass
class LoadResult:
    clients: int
    upstream: list[float] = field(default_factory=list)  # (a)
    arrival: list[float] = field(default_factory=list)  # (a')
    downstream: list[float] = field(default_factory=list)  # (b)
    failures: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)
    audio_seconds: float = 0.0  # of speech streamed by all clients
    bench_lag_p99: float = 0.0


def _record(result: LoadResult, conn: SimConnection, turn: Utterance) -> bool:
    if turn.audio_stop is None or turn.first_text_at is None:
        return False
    stop = turn.audio_stop
    commit, create = logged_at(conn, "in", COMMIT, stop), logged_at(conn, "in", CREATE, stop)
    arrived = [arrived_at(conn, COMMIT, stop), arrived_at(conn, CREATE, stop)]
    if commit is None or create is None or None in arrived:
        return False
    delta = logged_at(conn, "out", TEXT_DELTAS, create)
    if delta is None:
        return False
    result.upstream.append(max(commit, create) - stop)
    result.arrival.append(max(a for a in arrived if a is not None) - stop)
    result.downstream.append(turn.first_text_at - delta)
    return True


async def _client(
    uri: str,
    sim: RealtimeSimulator,
    index: int,
    utterances: int,
    speeches: Sequence[Speech],
    delay: float,
    result: LoadResult,
) -> None:
    rng = random.Random(index)
    await asyncio.sleep(delay)
    async with Connection(uri) as conn:
        session: SimConnection | None = None
        for k in range(utterances):
            speech = speeches[(index + k) % len(speeches)]
            turn = await pipeline_turn(conn, speech)
            result.audio_seconds += speech.seconds
            ok = turn.error is None and FALLBACK not in "".join(turn.answer)
            if ok:
                session = session or session_of(sim, turn.transcript)
            if not (ok and session is not None and _record(result, session, turn)):
                result.failures += 1
            await asyncio.sleep(rng.uniform(0.1, 0.3))


async def measure_load(
    workdir: Path, clients: int, utterances: int, speeches: Sequence[Speech]
) -> LoadResult:
    """`clients` concurrent streams of `utterances` utterances each, on a fresh server."""
    heard = itertools.count(1)
    scenario = Scenario(
        transcript=lambda _pcm: f"Utterance number {next(heard)}.",
        first_token_delay=FIRST_TOKEN,
        delta_delay=TOKEN_INTERVAL,
    )
    conversation = {"max_conversations": max(1000, 2 * clients)}
    result = LoadResult(clients)
    async with serving(workdir, scenario, conversation=conversation) as (sim, server):
        async with Connection(server.uri) as conn:  # warm-up: lazy imports, first session
            await pipeline_turn(conn, speeches[0], realtime=False)
        stagger = sum(s.seconds for s in speeches) / len(speeches)
        with cpu_use(server) as result.cpu:
            async with LagMonitor() as lag:
                await asyncio.gather(
                    *(
                        _client(
                            server.uri, sim, i, utterances, speeches, stagger * i / clients, result
                        )
                        for i in range(clients)
                    )
                )
        result.bench_lag_p99 = lag.p99
    return result


ECHO_SERVER = """
import asyncio

async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


async def loopback_floor(samples: int) -> list[float]:
    """Round trips to a trivial asyncio echo process, one every 20 ms (as audio chunks come).

    Both hops cross from this process to another and back, as (a) and (b) do, so this is
    their floor on this machine: what waking an idle process and loopback TCP cost.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_SERVER, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = int(await process.stdout.readline())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        trips = []
        for _ in range(samples):
            await asyncio.sleep(0.02)
            sent = time.monotonic()
            writer.write(b"ping\n")
            await writer.drain()
            await reader.readline()
            trips.append(time.monotonic() - sent)
        writer.close()
        await writer.wait_closed()
        return trips
    finally:
        process.kill()
        await process.wait()


def load_rows(results: Sequence[LoadResult], floor: list[float]) -> list[Row]:
    rows = [
        Row(
            "1",
            "(ref) loopback round trip to an idle asyncio echo process",
            str(len(floor)),
            fmt_ms(percentile(floor, 50)),
            fmt_ms(percentile(floor, 99)),
            note="the floor under (a) and (b) on this machine; one every 20 ms",
        )
    ]
    for r in results:
        goal = GOALS.get(r.clients)
        who = f"{r.clients} client{'s' if r.clients > 1 else ''}"
        for label, values in (
            ("(a) audio-stop → commit + response.create", r.upstream),
            ("(a′) the same, at the simulator's socket", r.arrival),
            ("(b) first text delta → first handled-chunk", r.downstream),
        ):
            p99 = percentile(values, 99)
            note = ""
            if label.startswith("(a)"):
                note = (
                    f"CPU: server {r.cpu.server_cores:.0%}, "
                    f"bench {r.cpu.bench_cores:.0%} of a core; "
                    f"bench loop lag p99 {fmt_ms(r.bench_lag_p99)}; {r.failures} failed"
                )
            elif label.startswith("(a′)") and r.audio_seconds:
                per_second = r.cpu.server / r.audio_seconds
                note = f"server CPU per audio second streamed (answers incl.): {fmt_ms(per_second)}"
            rows.append(
                Row(
                    "1",
                    f"{label}, {who}",
                    str(len(values)),
                    fmt_ms(percentile(values, 50)),
                    fmt_ms(p99),
                    f"p99 < {fmt_ms(goal)}" if goal else "",
                    verdict(p99 < goal) if goal and values else "",
                    note,
                )
            )
    return rows


async def section(workdir: Path, quick: bool, speeches: Sequence[Speech]) -> list[Row]:
    plan = [(1, 2), (50, 1), (200, 1)] if quick else [(1, 40), (50, 3), (100, 2), (200, 2)]
    progress("1: loopback floor (round trips to an idle echo process)")
    floor = await loopback_floor(50 if quick else 500)
    results = []
    for clients, utterances in plan:
        progress(f"1: {clients} client(s) x {utterances} utterance(s), real-time audio")
        result = await measure_load(workdir / f"load-{clients}", clients, utterances, speeches)
        progress(
            f"   (a) p99 {fmt_ms(percentile(result.upstream, 99))}, (b) p99 "
            f"{fmt_ms(percentile(result.downstream, 99))}, CPU server "
            f"{result.cpu.server_cores:.0%} bench {result.cpu.bench_cores:.0%}, "
            f"{result.failures} failed, {result.cpu.seconds:.1f}s"
        )
        results.append(result)
    return load_rows(results, floor)
