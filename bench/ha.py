"""Section 7: what Home Assistant's way of asking costs, in server CPU and in API tokens.

1. Framing. Home Assistant sends STT audio in 10 ms chunks: 100 Wyoming events a second,
   twice a satellite's or direct client's (20 ms). `STREAMS` Home Assistants (each with a
   satellite's conversation) run voice turns on a fresh server: STT paced in real time,
   then the agent request claims the started answer. The server's CPU time over the run,
   divided by the seconds of audio sent, with HA's chunks and with 20 ms chunks (the same
   requests otherwise), on fresh servers in alternation; the ratio is what HA's framing costs.
2. Unclaimed answers. With "prefer handling commands locally" HA answers some commands
   itself and never sends the agent request, but the server started the answer at
   audio-stop (one round trip). It gives the answer up `conversation.claim_seconds` after
   the transcript: cancelled upstream if still running, its session closed. For a short
   answer (done before the window) and a long, slowly streamed one (cut at the window): the
   tokens the simulator's `response.done` reports, and when after the transcript the
   server cancelled the response and closed the session.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients import (
    DIRECT_CHUNK_SECONDS,
    HA_CHUNK_SECONDS,
    HomeAssistant,
    Speech,
    new_conversation_id,
)
from latency import FIRST_TOKEN, TOKEN_INTERVAL
from measure import Row, fmt_ms, latency_row, median, percentile, progress
from rig import FALLBACK, CpuUse, StampedConnection, arrived_at, cpu_use, serving, session_of

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario
from wyoming_realtime_text.simulator.responses import split_deltas

STREAMS = 30  # concurrent Home Assistants: the server stays well below one core
CLAIM_SECONDS = 2.0  # conversation.claim_seconds (the default), set so the row states it
SLOW_TOKEN_INTERVAL = 0.05  # the long answer: 20 tokens a second
LONG_REPLY = " ".join(f"word{i}" for i in range(400))  # 200 deltas of two words
CANCEL = frozenset({"response.cancel"})
TEXT_DELTAS = frozenset({"response.output_text.delta", "response.text.delta"})
STAGGER = 0.25  # seconds between the unclaimed samples' starts
MODELLED = (
    "modelled usage (a fixed input, one output token per delta): the mechanism and the "
    "ratio, not OpenAI's bill"
)


# -- 1. framing -----------------------------------------------------------------------------


@dataclass
class FramingRun:
    """One run of `STREAMS` Home Assistants' voice turns with one chunk size."""

    chunk_seconds: float
    cpu: CpuUse = field(default_factory=CpuUse)
    audio_seconds: float = 0.0
    failures: int = 0

    @property
    def per_audio_second(self) -> float:
        """Server CPU seconds per second of audio sent (answers included)."""
        return self.cpu.server / self.audio_seconds


async def _speaker(
    uri: str, index: int, utterances: int, speeches: Sequence[Speech], delay: float, run: FramingRun
) -> None:
    """One Home Assistant whose satellite asks `utterances` times in one conversation."""
    rng = random.Random(index)
    await asyncio.sleep(delay)
    ha, conversation_id = HomeAssistant(uri), new_conversation_id()
    for k in range(utterances):
        speech = speeches[(index + k) % len(speeches)]
        try:
            _, reply = await ha.voice_turn(speech, conversation_id, chunk_seconds=run.chunk_seconds)
            ok = bool(reply.text.strip()) and FALLBACK not in reply.text
        except (RuntimeError, OSError, TimeoutError, EOFError):
            ok = False
        run.audio_seconds += speech.seconds
        run.failures += not ok
        await asyncio.sleep(rng.uniform(0.1, 0.3))


async def framing_run(
    workdir: Path, chunk_seconds: float, utterances: int, speeches: Sequence[Speech]
) -> FramingRun:
    """`STREAMS` Home Assistants at once, on a fresh server, STT in `chunk_seconds` chunks."""
    heard = itertools.count(1)
    scenario = Scenario(
        transcript=lambda _pcm: f"Utterance number {next(heard)}.",
        first_token_delay=FIRST_TOKEN,
        delta_delay=TOKEN_INTERVAL,
    )
    run = FramingRun(chunk_seconds)
    async with serving(workdir, scenario) as (_, server):
        warm_up = HomeAssistant(server.uri)  # lazy imports, the first session
        await warm_up.voice_turn(speeches[0], new_conversation_id(), realtime=False)
        stagger = sum(s.seconds for s in speeches) / len(speeches)
        with cpu_use(server) as run.cpu:
            await asyncio.gather(
                *(
                    _speaker(server.uri, i, utterances, speeches, stagger * i / STREAMS, run)
                    for i in range(STREAMS)
                )
            )
    return run


def _framing_rows(ha: list[FramingRun], direct: list[FramingRun]) -> list[Row]:
    rows = []
    labels = (
        f"STT in {HA_CHUNK_SECONDS * 1000:.0f} ms chunks (HA's framing)",
        f"STT in {DIRECT_CHUNK_SECONDS * 1000:.0f} ms chunks (a satellite's framing)",
    )
    for label, runs in zip(labels, (ha, direct), strict=True):
        values = [r.per_audio_second for r in runs]
        note = (
            f"server {median([r.cpu.server_cores for r in runs]):.0%}, bench "
            f"{median([r.cpu.bench_cores for r in runs]):.0%} of a core (median); "
            f"{sum(r.failures for r in runs)} failed"
        )
        measure = f"server CPU per audio second, {STREAMS} HAs' voice turns, {label}"
        rows.append(latency_row("7", measure, values, note))
    ratio = median([r.per_audio_second for r in ha]) / median([r.per_audio_second for r in direct])
    pairs = [a.per_audio_second / b.per_audio_second for a, b in zip(ha, direct, strict=True)]
    rows.append(
        Row(
            "7",
            "ratio HA's framing / 20 ms chunks (server CPU per audio second)",
            value=f"{ratio:.2f}×",
            note=(
                f"medians; run by run {min(pairs):.2f}-{max(pairs):.2f}× (fresh servers, "
                "in alternation); answers included"
            ),
        )
    )
    return rows


# -- 2. unclaimed answers -------------------------------------------------------------------


@dataclass
class Unclaimed:
    """One HA STT request whose agent request never came, as the simulator saw it."""

    status: str  # response.done's; "none" if the session closed before it was sent
    input_tokens: int  # response.done's usage (0 without one)
    output_tokens: int  # response.done's usage; without one, the text deltas sent
    cancelled_after: float | None  # transcript -> response.cancel at the simulator's socket
    closed_after: float  # transcript -> the server's close frame


async def _unclaimed(sim: RealtimeSimulator, uri: str, speech: Speech, delay: float) -> Unclaimed:
    """HA's STT request alone (HA answered the command itself); then wait for the give-up."""
    await asyncio.sleep(delay)
    stt = await HomeAssistant(uri).stt(speech)
    session = session_of(sim, stt.text)
    if session is None:
        raise RuntimeError(f"no simulated session heard {stt.text!r}")
    async with asyncio.timeout(CLAIM_SECONDS + 10):
        await session.ws.wait_closed()
    assert isinstance(session.ws, StampedConnection) and session.ws.closed_at is not None
    closed_at = session.ws.closed_at
    done = [e["response"] for e in session.sent if e["type"] == "response.done"]
    # The simulator's usage counts one output token per delta: what a response.done that
    # never went out would have said.
    deltas = sum(e["type"] in TEXT_DELTAS for e in session.sent)
    usage = (done[-1].get("usage") or {}) if done else {}
    cancelled = arrived_at(session, CANCEL, stt.transcript_at)
    return Unclaimed(
        done[-1]["status"] if done else "none",
        usage.get("input_tokens", 0),
        usage.get("output_tokens", deltas),
        None if cancelled is None else cancelled - stt.transcript_at,
        closed_at - stt.transcript_at,
    )


async def unclaimed_answers(
    workdir: Path, samples: int, speech: Speech
) -> tuple[list[Unclaimed], list[Unclaimed]]:
    """(short answers, long answers): `samples` each, started `STAGGER` apart."""
    heard = itertools.count(1)

    def scenario(reply: str | None, interval: float) -> Scenario:
        return Scenario(
            transcript=lambda _pcm: f"Unclaimed command {next(heard)}.",
            reply=reply,
            first_token_delay=FIRST_TOKEN,
            delta_delay=interval,
        )

    short = scenario(None, TOKEN_INTERVAL)
    conversation = {"claim_seconds": CLAIM_SECONDS}
    async with serving(workdir, short, conversation=conversation) as (sim, server):
        warm_up = HomeAssistant(server.uri)  # a claimed turn: lazy imports, the first session
        await warm_up.voice_turn(speech, new_conversation_id(), realtime=False)
        results = []
        for label, kind in (("short", short), ("long", scenario(LONG_REPLY, SLOW_TOKEN_INTERVAL))):
            progress(f"7: {samples} unclaimed {label} answer(s), claim window {CLAIM_SECONDS} s")
            sim.scenario = kind
            results.append(
                await asyncio.gather(
                    *(_unclaimed(sim, server.uri, speech, i * STAGGER) for i in range(samples))
                )
            )
    return results[0], results[1]


def _tokens(runs: list[Unclaimed], q: float) -> str:
    """ "in / out" from response.done's usage; "out" alone where none was sent."""
    out = f"{percentile([r.output_tokens for r in runs], q):.0f} out"
    if any(r.status == "none" for r in runs):
        return out
    return f"{percentile([r.input_tokens for r in runs], q):.0f} in / {out}"


def _statuses(runs: list[Unclaimed]) -> str:
    counts = {s: sum(r.status == s for r in runs) for s in sorted({r.status for r in runs})}
    return ", ".join(f"{n}× {s}" for s, n in counts.items())


def _seconds(values: list[float | None]) -> tuple[str, str, str]:
    known = [v for v in values if v is not None]
    return str(len(known)), fmt_ms(median(known)), fmt_ms(percentile(known, 99))


def _usage_note(runs: list[Unclaimed]) -> str:
    """What the tokens cell is made of: response.done's usage, or the deltas without one."""
    if not any(r.status == "none" for r in runs):
        return f"response.done {_statuses(runs)}"
    gaps = [r.closed_after - r.cancelled_after for r in runs if r.cancelled_after is not None]
    missing = sum(r.status == "none" for r in runs)
    return (
        f"no response.done in {missing} of {len(runs)} (the server closes the session "
        f"{fmt_ms(median(gaps))} after response.cancel, racing it): out = the text deltas "
        "sent, one token each as its usage counts; the input was spent too"
    )


def _unclaimed_rows(short: list[Unclaimed], long: list[Unclaimed]) -> list[Row]:
    whole = len(split_deltas(LONG_REPLY))
    spent = median([r.output_tokens for r in long]) / whole
    closed = [r.closed_after for r in long]
    return [
        Row(
            "7",
            "unclaimed short answer (done within the window): tokens",
            str(len(short)),
            _tokens(short, 50),
            _tokens(short, 99),
            note=f"{_usage_note(short)}: all of it spent; {MODELLED}",
        ),
        Row(
            "7",
            "unclaimed short answer: transcript → session closed",
            *_seconds([r.closed_after for r in short]),
            note=(
                f"claim_seconds {CLAIM_SECONDS:g}; "
                f"{sum(r.cancelled_after is not None for r in short)} response.cancel sent"
            ),
        ),
        Row(
            "7",
            f"unclaimed long answer ({whole} tokens at {1 / SLOW_TOKEN_INTERVAL:.0f}/s): tokens",
            str(len(long)),
            _tokens(long, 50),
            _tokens(long, 99),
            note=f"{spent:.0%} of the whole answer's {whole} output tokens; {_usage_note(long)}",
        ),
        Row(
            "7",
            "unclaimed long answer: transcript → response.cancel at the simulator",
            *_seconds([r.cancelled_after for r in long]),
            note=(
                f"session closed {fmt_ms(median(closed))} (p99 {fmt_ms(percentile(closed, 99))}) "
                "after the transcript"
            ),
        ),
    ]


async def section(workdir: Path, quick: bool, speeches: Sequence[Speech]) -> list[Row]:
    repeats, utterances, samples = (1, 1, 2) if quick else (3, 3, 10)
    ha: list[FramingRun] = []
    direct: list[FramingRun] = []
    for repeat in range(repeats):
        for chunk, runs in ((HA_CHUNK_SECONDS, ha), (DIRECT_CHUNK_SECONDS, direct)):
            ms = f"{chunk * 1000:.0f}ms"
            progress(f"7: {STREAMS} HAs x {utterances} voice turn(s), {ms} chunks ({repeat + 1})")
            run = await framing_run(workdir / f"framing-{ms}-{repeat}", chunk, utterances, speeches)
            progress(
                f"   {fmt_ms(run.per_audio_second)} CPU per audio second, server "
                f"{run.cpu.server_cores:.0%}, {run.failures} failed, {run.cpu.seconds:.1f}s"
            )
            runs.append(run)
    short, long = await unclaimed_answers(workdir / "unclaimed", samples, speeches[0])
    return _framing_rows(ha, direct) + _unclaimed_rows(short, long)
