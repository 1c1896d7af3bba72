"""Section 6: the server's resident memory per idle session, and over many utterances.

RSS is the server process's VmRSS from /proc. Idle sessions are conversations opened by
typed turns with distinct conversation ids: each keeps its Realtime session (and one turn
of history) until `conversation.idle_seconds`. The soak runs utterances as Home Assistant
sends them (a new connection per request), mixing follow-ups in 30 recurring conversations
(their history trimmed at `max_turns`), new typed conversations and spoken turns from 8
Home Assistants, each continuing its satellite's conversation (started in it, claimed by
the agent request: one round trip) or, every other round, starting a new one (the server's
guess undone, the answer asked again), so new conversations push old ones out at
`max_conversations`: every lifecycle path runs hundreds or thousands of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clients import Connection, HomeAssistant, Speech, new_conversation_id, pipeline_turn
from measure import Row, fmt_mib, progress, verdict
from rig import FALLBACK, Server, serving

from wyoming_realtime_text.simulator import Scenario

SESSION_GOAL = 2 * 2**20  # bytes per idle session
GROWTH_GOAL = 2 * 2**20  # bytes between the first checkpoint and the end
WORKERS = 16
RECURRING = 30  # conversations that get follow-ups
SPEAKERS = 8  # Home Assistants whose satellites speak in the soak
SETTLE = 0.5  # seconds before reading RSS: closing conversations finish meanwhile


def _signed_mib(size: int) -> str:
    return ("+" if size >= 0 else "−") + fmt_mib(abs(size))


async def _settle(server: Server) -> int:
    """RSS once background closing and freeing has had a moment."""
    await asyncio.sleep(SETTLE)
    return server.rss_bytes()


async def idle_sessions(workdir: Path, count: int) -> tuple[float, int]:
    """(RSS bytes per idle session, sessions open at the simulator)."""
    conversation = {"max_conversations": count + 20, "idle_seconds": 3600}
    async with serving(workdir, Scenario(), conversation=conversation) as (sim, server):
        ha = HomeAssistant(server.uri)
        for i in range(5):  # warm-up: every code path of a typed turn has run once
            await ha.converse(f"Warm-up {i}.", f"warm-up-{i}")
        before = await _settle(server)
        limit = asyncio.Semaphore(10)

        async def open_one(i: int) -> None:
            async with limit:
                await ha.converse(f"Hello number {i}.", f"idle-{i}")

        await asyncio.gather(*(open_one(i) for i in range(count)))
        after = await _settle(server)
        open_sessions = sum(not c.closed for c in sim.connections)
    return (after - before) / count, open_sessions


async def connected_satellites(workdir: Path, count: int, speech: Speech) -> float:
    """RSS bytes per connected direct client (a satellite's shape: run-pipeline, one spoken
    turn, the connection kept open), its conversation and session included."""
    conversation = {"max_conversations": count + 20, "idle_seconds": 3600}
    async with (
        serving(workdir, Scenario(), conversation=conversation) as (_, server),
        contextlib.AsyncExitStack() as stack,
    ):
        for _ in range(3):  # warm-up: every code path of a spoken turn has run once
            warm = await stack.enter_async_context(Connection(server.uri))
            await pipeline_turn(warm, speech, realtime=False)
        before = await _settle(server)
        for _ in range(count):
            conn = await stack.enter_async_context(Connection(server.uri))
            turn = await pipeline_turn(conn, speech, realtime=False)
            if turn.error is not None:
                raise RuntimeError(f"a spoken turn failed: {turn.error}")
        after = await _settle(server)
    return (after - before) / count


@dataclass
class Soak:
    checkpoints: list[tuple[int, int]] = field(default_factory=list)  # (utterances, RSS)
    failures: int = 0
    seconds: float = 0.0


@dataclass
class _Speaker:
    """A Home Assistant with a satellite, and the conversation that satellite is in."""

    ha: HomeAssistant
    conversation_id: str = field(default_factory=new_conversation_id)


@dataclass
class _Mix:
    typist: HomeAssistant  # the Assist dialog: typed messages
    speakers: list[_Speaker]
    speech: Speech

    async def utterance(self, index: int) -> bool:
        """One utterance of the soak's mix; False if it got no real answer."""
        if index % 10 != 9:  # a follow-up in one of the recurring conversations
            text, conversation_id = f"Follow-up {index}.", f"recurring-{index % RECURRING}"
            reply = await self.typist.converse(text, conversation_id)
        elif index % 20 == 19:  # a spoken turn: STT, then the agent request
            spoken = index // 20
            speaker = self.speakers[spoken % SPEAKERS]
            if spoken // SPEAKERS % 2:  # a new conversation, right after the last one
                speaker.conversation_id = new_conversation_id()
            _, reply = await speaker.ha.voice_turn(
                self.speech, speaker.conversation_id, realtime=False
            )
        else:  # a typed message in a new conversation
            reply = await self.typist.converse(f"New question {index}.", f"new-{index}")
        return bool(reply.text.strip()) and FALLBACK not in reply.text


async def _run(mix: _Mix, indices: Iterator[int], soak: Soak) -> None:
    for index in indices:  # shared by all workers: each takes the next index
        try:
            ok = await mix.utterance(index)
        except (RuntimeError, OSError, TimeoutError, EOFError):
            ok = False
        soak.failures += not ok


async def soak(workdir: Path, first: int, total: int, step: int, speech: Speech) -> Soak:
    heard = itertools.count(1)
    scenario = Scenario(transcript=lambda _pcm: f"Spoken utterance {next(heard)}.")
    result = Soak()
    async with serving(workdir, scenario) as (_, server):
        speakers = [_Speaker(HomeAssistant(server.uri)) for _ in range(SPEAKERS)]
        mix = _Mix(HomeAssistant(server.uri), speakers, speech)
        start = time.monotonic()
        done = 0
        for stop in [first, *range(first + step, total + 1, step)]:
            indices = iter(range(done, stop))
            await asyncio.gather(*(_run(mix, indices, result) for _ in range(WORKERS)))
            done = stop
            result.checkpoints.append((done, await _settle(server)))
            progress(f"   {done:,} utterances: RSS {fmt_mib(result.checkpoints[-1][1])}")
        result.seconds = time.monotonic() - start - SETTLE * len(result.checkpoints)
    return result


def _per_session(label: str, count: int, size: float, note: str) -> Row:
    """A row held to the goal for what one open session may cost."""
    goal, met = f"< {fmt_mib(SESSION_GOAL)}", verdict(size < SESSION_GOAL)
    return Row("6", label, str(count), fmt_mib(size), goal=goal, met=met, note=note)


async def section(workdir: Path, quick: bool, speech: Speech) -> list[Row]:
    count = 20 if quick else 50
    first, total, step = (300, 900, 300) if quick else (1000, 10000, 1000)
    progress(f"6: RSS per idle session ({count} conversations)")
    per_session, open_sessions = await idle_sessions(workdir / "idle", count)
    progress(f"6: RSS per connected satellite-like client ({count} connections)")
    per_client = await connected_satellites(workdir / "clients", count, speech)
    progress(f"6: RSS over {total:,} utterances")
    result = await soak(workdir / "soak", first, total, step, speech)
    (n1, rss1), (n2, rss2) = result.checkpoints[0], result.checkpoints[-1]
    growth = rss2 - rss1
    peak = max(rss for _, rss in result.checkpoints)
    # The second half alone: growth that stops (garbage awaiting collection) vs a leak.
    half, rss_half = min(result.checkpoints, key=lambda c: abs(c[0] - n2 / 2))
    return [
        _per_session(
            "server RSS per connected idle session (typed turns, distinct conversation ids)",
            count,
            per_session,
            f"{open_sessions} sessions open at the simulator",
        ),
        _per_session(
            "server RSS per connected direct client after a spoken turn (run-pipeline)",
            count,
            per_client,
            "connection, conversation and session kept open; a satellite's shape",
        ),
        Row("6", f"server RSS after the first {n1:,} utterances", str(n1), fmt_mib(rss1)),
        Row(
            "6",
            f"server RSS after {n2:,} utterances (growth since {n1:,})",
            str(n2),
            f"{fmt_mib(rss2)} ({_signed_mib(growth)})",
            goal=f"flat: < {fmt_mib(GROWTH_GOAL)} growth",
            met=verdict(growth < GROWTH_GOAL),
            note=(
                f"{half:,} → {n2:,}: {_signed_mib(rss2 - rss_half)}; peak {fmt_mib(peak)}; "
                f"{n2 / result.seconds:,.0f} utterances/s; {result.failures} without an answer"
            ),
        ),
    ]
