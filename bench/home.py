"""Section 8: home control, end of speech → the `intent` Home Assistant runs (issue 14).

A spoken command goes through HA's two requests as any voice turn does (STT in 10 ms chunks
paced in real time, then the agent request with the transcript: one round trip, the
answer started at `audio-stop`), but the model answers with a function call and the server
answers the agent request with Wyoming `intent` events instead of `handled`. Timed from the
STT request's `audio-stop` to the event HA's agent stops reading at:

- a spoken command, calls only: the lone `intent`;
- a spoken command with the model's words beside the call: the same, its text HA speaks;
- two commands in one ("turn on A and B"): HA 2026 reads `intents-start`, two `intent`s,
  `intents-stop` (timed to `intents-stop`); HA 2025 runs the first `intent` and hangs up;
- beside them, a spoken question: the first `handled-chunk` (the first answer text, as
  sections 1-3 time it) and `handled` (the whole answer, where HA stops reading).

All on one server with the same simulated model (first token 50 ms after the response
starts, a delta every 20 ms after, for text and function-call arguments alike), HA 2026
and HA 2025.12 at once (their requests told apart by the wyoming version in the event
headers), one conversation per Home Assistant (a satellite's: each STT request starts in
it, its agent request claims the answer). Each round every Home Assistant asks the same
kind, starts staggered over one second; the kinds take turns round by round, so each sees
the same conditions. The simulator's `conn.log` splits each figure into the model's part
(`response.create` reaching the simulator → the simulator sending the event the answer
waits for: `response.done` for an intent or `handled`, the first text delta for the first
text) and the rest, which is the server's (and loopback's).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients import HomeAssistant, Speech, new_conversation_id
from latency import FIRST_TOKEN, TOKEN_INTERVAL
from measure import Row, fmt_ms, median, percentile, progress
from rig import FALLBACK, arrived_at, logged_at, serving, session_of

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection
from wyoming_realtime_text.simulator.responses import split_deltas
from wyoming_realtime_text.simulator.tools import split_arguments

VERSIONS = ((2026, 11), (2025, 12))
PER_VERSION = 3  # Home Assistants of each release asking at once (6 in all: a light load)
STAGGER = 1.0  # seconds over which a round's requests start
REPLY = "About seven minutes for a hard-boiled egg, a little less for a soft one."
CALL_TEXT = "Turning on the kitchen lamp."
DONE = frozenset({"response.done"})
CREATE = frozenset({"response.create"})
TEXT_DELTAS = frozenset({"response.output_text.delta", "response.text.delta"})
PERCENTILE_MIN = 10  # samples for a p90 worth printing


@dataclass(frozen=True)
class Kind:
    """One way of asking: what is said (`{n}`: a tag that makes each transcript unique)."""

    key: str
    said: str
    call_text: str | None = None  # the model's words beside its calls
    targets: int = 0  # devices commanded (0: a question)


QUESTION = Kind("question", "How long should I boil an egg, question {n}?")
COMMAND = Kind("command", "Turn on the kitchen lamp {n}.", targets=1)
WITH_TEXT = Kind("text", "Turn on the kitchen lamp {n}.", CALL_TEXT, targets=1)
TWO = Kind("two", "Turn on the kitchen lamp {n} and the hall lamp {n}.", targets=2)
KINDS = (QUESTION, COMMAND, WITH_TEXT, TWO)


@dataclass
class Sample:
    total: float  # audio-stop -> the event timed
    model: float  # response.create at the simulator -> what the answer waits for, sent
    after: float  # what the answer waits for, sent -> the event timed (the server's relay)


@dataclass
class Results:
    """Samples by (HA release, what is timed)."""

    samples: dict[tuple[tuple[int, int], str], list[Sample]] = field(default_factory=dict)
    failures: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, version: tuple[int, int], what: str, sample: Sample) -> None:
        self.samples.setdefault((version, what), []).append(sample)

    def get(self, version: tuple[int, int], what: str) -> list[Sample]:
        return self.samples.get((version, what), [])


def _expected(kind: Kind, ha: HomeAssistant) -> tuple[str, int]:
    """(the event HA stops at, the intents it gets) for `kind` from `ha`."""
    if not kind.targets:
        return "handled", 0
    if kind.targets > 1 and ha.runs_intent_lists:
        return "intents-stop", kind.targets
    return "intent", 1


def _session(sim: RealtimeSimulator, transcript: str) -> SimConnection:
    session = session_of(sim, transcript)
    if session is None:
        raise RuntimeError(f"no simulated session heard {transcript!r}")
    return session


async def _turn(
    sim: RealtimeSimulator,
    ha: HomeAssistant,
    conversation_id: str,
    device_id: str,
    speech: Speech,
    kind: Kind,
    delay: float,
    results: Results,
) -> None:
    """One spoken request of `kind`; its figures into `results` (a failure if not as HA
    would have it: the wrong ending, intents, or the fallback)."""
    assert ha.version is not None
    await asyncio.sleep(delay)
    try:
        stt, answer = await ha.voice_ask(speech, conversation_id, device_id)
        session = _session(sim, stt.text)
        stop = stt.audio_stop
        assert stop is not None  # read after the upload, audio-stop included
        create = arrived_at(session, CREATE, stop)
        done = logged_at(session, "out", DONE, stop)
        if create is None or done is None:
            raise RuntimeError("no response.create / response.done after audio-stop")
        ending, intents = _expected(kind, ha)
        if answer.ended_by != ending or len(answer.intents) != intents:
            raise RuntimeError(f"{kind.key}: {answer.ended_by} with {len(answer.intents)}")
        if FALLBACK in answer.text or (kind.call_text and answer.text != kind.call_text):
            raise RuntimeError(f"{kind.key}: said {answer.text!r}")
    except (RuntimeError, OSError, TimeoutError, EOFError) as err:
        progress(f"   {kind.key} from HA {ha.version[0]}: {err}")
        results.failures[ha.version] = results.failures.get(ha.version, 0) + 1
        return
    results.add(
        ha.version, kind.key, Sample(answer.ended_at - stop, done - create, answer.ended_at - done)
    )
    if kind is QUESTION:
        delta = logged_at(session, "out", TEXT_DELTAS, create)
        if answer.first_text_at is not None and delta is not None:
            first = answer.first_text_at
            results.add(ha.version, "first", Sample(first - stop, delta - create, first - delta))


async def measure(
    workdir: Path, rounds_per_kind: int, speeches: Sequence[Speech]
) -> tuple[Results, int]:
    """Every kind `rounds_per_kind` times from each Home Assistant; (results, rounds run)."""
    tags = itertools.count(1)
    current = [QUESTION]  # what this round's transcripts say

    def hear(_pcm: bytes) -> str:
        return current[0].said.format(n=f"{next(tags):03d}")

    scenario = Scenario(
        transcript=hear,
        reply=REPLY,
        first_token_delay=FIRST_TOKEN,
        delta_delay=TOKEN_INTERVAL,
    )
    results = Results()
    async with serving(workdir, scenario) as (sim, server):
        # Releases alternate in the stagger, so neither always speaks first in a round.
        has = [HomeAssistant(server.uri, v) for _ in range(PER_VERSION) for v in VERSIONS]
        conversations = [new_conversation_id() for _ in has]
        devices = [f"bench-satellite-{i}" for i in range(len(has))]
        plan = [(-1, QUESTION)]  # a warm-up round: lazy imports, each conversation's session
        plan += [(r, KINDS[r % len(KINDS)]) for r in range(rounds_per_kind * len(KINDS))]
        for number, kind in plan:
            current[0] = kind
            sim.scenario.call_text = kind.call_text
            rng = random.Random(number)
            into = Results() if number < 0 else results
            await asyncio.gather(
                *(
                    _turn(
                        sim,
                        ha,
                        conversations[i],
                        devices[i],
                        speeches[(i + number) % len(speeches)],
                        kind,
                        STAGGER * i / len(has) + rng.uniform(0, 0.02),
                        into,
                    )
                    for i, ha in enumerate(has)
                )
            )
            if number >= 0 and number % len(KINDS) == len(KINDS) - 1:
                progress(f"   {number + 1} of {len(plan) - 1} rounds")
    return results, len(plan) - 1


def _p90(values: list[float]) -> str:
    return f"p90 {fmt_ms(percentile(values, 90))}; " if len(values) >= PERCENTILE_MIN else ""


def _deltas(kind: Kind) -> str:
    """How many deltas the simulated model streams for `kind`'s answer (tag 001)."""
    said = kind.said.format(n="001")
    if not kind.targets:
        return f"{len(split_deltas(REPLY))} text deltas"
    names = said.removeprefix("Turn on the ").rstrip(".").split(" and the ")
    args = sum(len(split_arguments(f'{{"name":"{name}"}}')) for name in names)
    text = len(split_deltas(kind.call_text)) if kind.call_text else 0
    return f"{text} text + {args} argument deltas" if text else f"{args} argument deltas"


def _total(samples: list[Sample]) -> float:
    return median([s.total for s in samples])


def _rest(samples: list[Sample]) -> float:
    """The median of what is not the model's time: the server's part (and loopback's)."""
    return median([s.total - s.model for s in samples])


def _row(label: str, samples: list[Sample], model_note: str, *, first: bool = False) -> Row:
    totals = [s.total for s in samples]
    model, rest = median([s.model for s in samples]), _rest(samples)
    after = median([s.after for s in samples])
    return Row(
        "8",
        label,
        str(len(samples)),
        fmt_ms(median(totals)),
        fmt_ms(percentile(totals, 99)),
        note=(
            f"{_p90(totals)}model {fmt_ms(model)} ({model_note}), the rest {fmt_ms(rest)}, "
            f"of it {fmt_ms(after)} after {'the first delta' if first else 'response.done'}"
        ),
    )


def _ratio(
    ha: str,
    first: list[Sample],
    command: list[Sample],
    handled: list[Sample],
    failures: int,
    rounds: int,
) -> Row:
    return Row(
        "8",
        f"ratio intent (calls only) / first handled-chunk, {ha}",
        value=f"{_total(command) / _total(first):.2f}×",
        note=(
            f"medians; intent / handled {_total(command) / _total(handled):.2f}×; the rest "
            f"alone (model's time taken off) {_rest(command) / _rest(first):.2f}× / "
            f"{_rest(command) / _rest(handled):.2f}×; "
            f"{failures} of {rounds * PER_VERSION} requests failed"
        ),
    )


def rows(results: Results, rounds: int) -> list[Row]:
    out: list[Row] = []
    for version in VERSIONS:
        ha = f"HA {version[0]}"
        lists = version >= (2026, 1)
        two = "→ intents-stop (2 intents)" if lists else "→ the first intent (HA 2025 runs one)"
        lines = (
            ("first", f"spoken question: audio-stop → first handled-chunk, {ha}", "1st delta"),
            ("question", f"spoken question: audio-stop → handled, {ha}", _deltas(QUESTION)),
            ("command", f"spoken command, calls only: audio-stop → intent, {ha}", _deltas(COMMAND)),
            (
                "text",
                f"spoken command, text beside the call: audio-stop → intent, {ha}",
                _deltas(WITH_TEXT),
            ),
            ("two", f"spoken command, two devices: audio-stop {two}, {ha}", _deltas(TWO)),
        )
        for what, label, model_note in lines:
            samples = results.get(version, what)
            if samples:
                out.append(_row(label, samples, model_note, first=what == "first"))
        first = results.get(version, "first")
        command = results.get(version, "command")
        handled = results.get(version, "question")
        if first and command and handled:
            out.append(
                _ratio(ha, first, command, handled, results.failures.get(version, 0), rounds)
            )
    return out


async def section(workdir: Path, quick: bool, speeches: Sequence[Speech]) -> list[Row]:
    rounds_per_kind = 1 if quick else 8
    progress(
        f"8: {len(VERSIONS) * PER_VERSION} HAs ({PER_VERSION} each of "
        f"{', '.join(f'{v[0]}.{v[1]}' for v in VERSIONS)}) x {len(KINDS)} kinds x "
        f"{rounds_per_kind} round(s), real-time audio"
    )
    results, rounds = await measure(workdir / "home", rounds_per_kind, speeches)
    return rows(results, rounds)
