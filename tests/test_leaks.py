"""Never leak: after 1,000 turns under random upstream faults and vanishing clients, the
server's asyncio tasks, open file descriptors, live objects and memory are back where they
were after a warm-up.

In-process, so that its tasks can be counted: the server is built in the test's event loop
from the pieces `__main__.serve` uses, the simulator runs beside it, and the clients are
Home Assistant's two flows, run-pipeline clients and clients that leave half-way. Between
the warm-up and the end nothing may remain but what the warm-up left: conversations are all
closed by a sweep (as the idle timer would), and every turn must have ended in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import random
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from harness import HomeAssistant, free_port, server_config, tone
from test_client_faults import ask_by_text, ask_by_voice, stream_audio
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.config import Settings, parse_settings
from wyoming_realtime_text.conversations import Assistant, Conversation
from wyoming_realtime_text.handler import RealtimeTextHandler, handler_factory
from wyoming_realtime_text.limits import Connections
from wyoming_realtime_text.pipeline import VoicePipeline
from wyoming_realtime_text.realtime.session import RealtimeSession
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection
from wyoming_realtime_text.turn import Turn

WARM_UP = 50
TURNS = 1000
CONCURRENCY = 8
CONVERSATIONS = 20  # more than conversation.max_conversations (8): some are evicted
RESPONSE_TIMEOUT = 1.0
TURN_SECONDS = 8.0  # a client still waiting after this has met a hang
MAX_GROWTH_BYTES = 1024 * 1024
LONG_ANSWER = " ".join(f"word{i}" for i in range(12)) + "."
UTTERANCE = tone(0.3)
# Objects one turn makes: none may outlive the turns once their conversations are closed.
COUNTED = (Turn, Conversation, RealtimeSession, RealtimeTextHandler, VoicePipeline, SimConnection)


def leak_settings(sim: RealtimeSimulator) -> Settings:
    """Fast timeouts, no warm spares, few conversations: what remains is a leak."""
    config = server_config(
        sim.url,
        "ga",
        server={"uri": f"tcp://127.0.0.1:{free_port()}", "idle_timeout": 5},
        realtime={
            "api_key": "k",
            "response_timeout": RESPONSE_TIMEOUT,
            "retry_backoff": 0.05,
            "warm_sessions": 0,
        },
        audio={"stall_seconds": 1},
        conversation={"idle_seconds": 1, "claim_seconds": 2, "max_conversations": 8},
    )
    return parse_settings(config)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Assistant]:
    """The server as `__main__.serve` builds it, on this event loop; shut down on exit."""
    assistant = Assistant(settings)
    assistant.start()
    connections = Connections(settings.server)
    await connections.listen(handler_factory(settings, assistant))
    try:
        yield assistant
    finally:
        await connections.shutdown(0)
        await assistant.close()


# -- faults -----------------------------------------------------------------------------


def random_scenario(rng: random.Random) -> Scenario:
    """Mostly a good upstream; else one fault, for the next response or for all."""
    once = rng.choice([1, None])
    return rng.choice(
        [
            Scenario(),
            Scenario(),
            Scenario(reply=LONG_ANSWER, delta_delay=0.02),
            Scenario(disconnect_after=rng.choice([0, 1, 3]), fail_first=once),
            Scenario(session_expired_after=rng.choice([0, 1]), fail_first=once),
            Scenario(
                error_code=rng.choice(["rate_limit_exceeded", "server_error"]),
                error_delivery=rng.choice(["event", "response_failed"]),
                fail_first=once,
            ),
            rng.choice([Scenario(silent=True), Scenario(first_token_delay=2 * RESPONSE_TIMEOUT)]),
        ]
    )


def faults(scenario: Scenario) -> str:
    """The scenario's fields that differ from a good upstream's, for a failure message."""
    good = Scenario()
    changed = (f for f in dataclasses.fields(Scenario) if f.init)
    return ", ".join(
        f"{f.name}={getattr(scenario, f.name)!r}"
        for f in changed
        if getattr(scenario, f.name) != getattr(good, f.name)
    )


# -- clients ----------------------------------------------------------------------------


def conversation_id(rng: random.Random) -> str | None:
    """A follow-up in one of more conversations than the server keeps, or a new one."""
    return rng.choice([f"conversation-{rng.randrange(CONVERSATIONS)}", None])


async def typed(uri: str, rng: random.Random) -> None:
    """Home Assistant's agent request."""
    await HomeAssistant(uri).ask(f"typed {uuid.uuid4().hex[:6]}", conversation_id(rng))


async def spoken(uri: str, rng: random.Random) -> None:
    """Home Assistant's STT request, then the agent request claiming its answer (the
    simulator hears "Turn on the kitchen light.": its answer is an intent)."""
    ha = HomeAssistant(uri)
    transcript, _ = await ha.stt(UTTERANCE)
    if transcript.text:
        await ha.ask(transcript.text, conversation_id(rng))  # a command: intents, as HA reads


async def pipeline(uri: str, rng: random.Random) -> None:
    """A run-pipeline client: the utterance at once, read until the answer or an error."""
    async with AsyncTcpClient.from_uri(uri) as client:
        stage = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
        await client.write_event(stage.event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=1, audio=UTTERANCE).event()
        )
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if event.type in ("handled-stop", "error"):
                return


async def leaves_mid_utterance(uri: str, rng: random.Random) -> None:
    """An STT or run-pipeline client that is gone before its audio ends."""
    async with AsyncTcpClient.from_uri(uri) as client:
        if rng.random() < 0.5:
            await client.write_event(Transcribe(language="en").event())
        else:
            stage = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
            await client.write_event(stage.event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await stream_audio(client, 0.2)


async def leaves_mid_answer(uri: str, rng: random.Random) -> None:
    """A typed or spoken request whose client is gone once the answer streams."""
    async with AsyncTcpClient.from_uri(uri) as client:
        await rng.choice([ask_by_text, ask_by_voice])(client)
        while (event := await client.read_event()) is not None:
            if event.type in ("handled-chunk", "error"):  # no speech heard: an error
                return


Client = Callable[[str, random.Random], Awaitable[None]]
CLIENTS: list[Client] = [
    typed,
    typed,
    spoken,
    spoken,
    pipeline,
    leaves_mid_utterance,
    leaves_mid_answer,
]


async def run_turns(uri: str, sim: RealtimeSimulator, count: int, rng: random.Random) -> None:
    """`count` turns, CONCURRENCY at a time, each with a fault picked as it starts."""
    turns = iter(range(count))
    problems: Counter[str] = Counter()

    async def worker() -> None:
        for _ in turns:
            client, scenario = rng.choice(CLIENTS), random_scenario(rng)
            sim.scenario = scenario
            try:
                async with asyncio.timeout(TURN_SECONDS):
                    await client(uri, rng)
            except Exception as err:
                problems[f"{client.__name__} ({faults(scenario)}): {err!r}"] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert not problems, f"clients that hung or failed: {dict(problems)}"


# -- measuring --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Footprint:
    tasks: tuple[str, ...]  # every task but the test's own, by coroutine
    fds: int
    objects: tuple[tuple[str, int], ...]  # live instances of COUNTED, by class
    memory: int  # bytes traced by tracemalloc

    def within(self, other: Footprint) -> bool:
        """No more tasks and descriptors than `other`."""
        return len(self.tasks) <= len(other.tasks) and self.fds <= other.fds


def footprint() -> Footprint:
    gc.collect()
    current = asyncio.current_task()
    tasks = sorted(
        task.get_coro().__qualname__ for task in asyncio.all_tasks() if task is not current
    )
    counts = Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, COUNTED))
    return Footprint(
        tasks=tuple(tasks),
        fds=len(os.listdir("/proc/self/fd")),
        objects=tuple(sorted(counts.items())),
        memory=tracemalloc.get_traced_memory()[0],
    )


async def quiesce(
    assistant: Assistant, sim: RealtimeSimulator, baseline: Footprint | None = None
) -> Footprint:
    """Every conversation closed (as idle_seconds would), the closing done: the footprint
    once its tasks and descriptors stop changing, or are down to `baseline` (5 s at most)."""
    last = None
    for _ in range(50):
        await assistant.sweep(time.monotonic() + 3600)
        await asyncio.sleep(0.1)
        sim.connections[:] = [c for c in sim.connections if not c.closed]  # its own records
        now = footprint()
        if baseline is not None and now.within(baseline):
            return now
        if baseline is None and last is not None and now.within(last) and last.within(now):
            return now
        last = now
    return footprint()


@pytest.mark.timeout(300)
async def test_a_thousand_faulty_turns_leave_nothing_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "wyoming_realtime_text")  # thousands of warnings unkept
    rng = random.Random(6)
    async with RealtimeSimulator(record_limit=20) as sim:
        settings = leak_settings(sim)
        uri = settings.server.uri
        async with serving(settings) as assistant:
            await run_turns(uri, sim, WARM_UP, rng)
            tracemalloc.start()
            try:
                before = await quiesce(assistant, sim)
                await run_turns(uri, sim, TURNS, rng)
                after = await quiesce(assistant, sim, before)
            finally:
                tracemalloc.stop()
    left = Counter(after.tasks) - Counter(before.tasks)
    assert not left, f"tasks left running: {dict(left)}"
    assert after.fds <= before.fds, f"descriptors (sockets) left open: {before.fds} → {after.fds}"
    assert after.objects == before.objects, f"objects left: {before.objects} → {after.objects}"
    grown = after.memory - before.memory
    assert grown < MAX_GROWTH_BYTES, f"memory grew by {grown} bytes"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
