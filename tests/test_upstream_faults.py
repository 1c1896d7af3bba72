"""Upstream faults and retries: the real server against the simulator, in both dialects.

Before any answer text reached the user, a lost connection or an expired session is retried
once in a new session (the user's words sent again), a rate limit or server error up to
`realtime.max_retries` times with a growing wait; a refused key never is. All within
`realtime.response_timeout` (3 s here) from the end of speech. The backoff policy itself is
unit-tested in test_retry.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import (
    FALLBACK,
    RESPONSE_TIMEOUT,
    SECRET_KEY,
    HomeAssistant,
    ServerProcess,
    server_config,
    start_server,
    stop_server,
    tone,
)
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.config import Settings
from wyoming_realtime_text.realtime.retry import JITTER
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection

# The server fixtures live for the module, so do the black-box tests' event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

KEY_ERROR = Settings().key_error_text
ANSWER = "The answer, in full."
# The waits before the two retries of the default policy (retry_backoff 0.5, ±25%).
SHORTEST_TWO_WAITS = 0.5 * (1 - JITTER) + 1.0 * (1 - JITTER)


def since(sim: RealtimeSimulator, before: int) -> list[SimConnection]:
    return sim.connections[before:]


def received(connections: list[SimConnection], etype: str) -> list[dict[str, Any]]:
    return [e for c in connections for e in c.received if e["type"] == etype]


def creates_per_connection(connections: list[SimConnection]) -> list[int]:
    return [len(received([c], "response.create")) for c in connections]


def items(conn: SimConnection) -> list[tuple[str, str]]:
    """(role, text) of every conversation.item.create the server sent on `conn`."""
    return [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in conn.received
        if e["type"] == "conversation.item.create"
    ]


def new_log(server: ServerProcess, start: int) -> str:
    return server.log()[start:]


async def spoken(ha: HomeAssistant, said: str) -> tuple[str, float]:
    """HA's two requests for one utterance; the handled text and the seconds it took from
    the end of speech (audio-stop)."""
    await ha.stt(tone(1.0))
    started = ha.audio_stopped_at
    assert started is not None
    handled, _ = await ha.converse(said, conversation_id=uuid.uuid4().hex)
    return handled.text, asyncio.get_running_loop().time() - started


async def typed(ha: HomeAssistant, text: str, conversation_id: str | None = None) -> str:
    handled, _ = await ha.converse(text, conversation_id=conversation_id or uuid.uuid4().hex)
    return handled.text


async def assert_next_is_served(sim: RealtimeSimulator, ha: HomeAssistant) -> None:
    sim.scenario = Scenario(reply="Back to normal.")
    assert await typed(ha, "are you there") == "Back to normal."


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


LOST_BEFORE_TEXT = [
    pytest.param({"disconnect_after": 0}, id="disconnect"),
    pytest.param({"session_expired_after": 0}, id="session-expired"),
]


@in_module_loop
@pytest.mark.parametrize("fault", LOST_BEFORE_TEXT)
async def test_spoken_turn_lost_before_text_is_retried_with_its_audio(
    sim: RealtimeSimulator, ha: HomeAssistant, server: ServerProcess, fault: dict[str, Any]
) -> None:
    said = unique("is the oven off")
    sim.scenario = Scenario(transcript=said, reply=ANSWER, fail_first=1, **fault)
    before, log_start = len(sim.connections), len(server.log())
    text, elapsed = await spoken(ha, said)
    assert text == ANSWER, "the retry is transparent: no fallback"
    assert elapsed < RESPONSE_TIMEOUT
    first, second = since(sim, before)
    assert first.closed
    assert creates_per_connection([first, second]) == [1, 1]
    assert len(first.commits) == 1 and abs(len(first.commits[0]) - 48000) <= 96, "1 s"
    assert second.commits == first.commits, "the same audio, sent again"
    assert "retrying at once in a new session" in new_log(server, log_start)
    await assert_next_is_served(sim, ha)


@in_module_loop
@pytest.mark.parametrize("fault", LOST_BEFORE_TEXT)
async def test_typed_turn_lost_before_text_is_retried_with_its_text(
    sim: RealtimeSimulator, ha: HomeAssistant, fault: dict[str, Any]
) -> None:
    sim.scenario = Scenario(reply=lambda text: f"Echo: {text}", fail_first=1, **fault)
    before = len(sim.connections)
    assert await typed(ha, "Where are my keys?") == "Echo: Where are my keys?"
    first, second = since(sim, before)
    assert creates_per_connection([first, second]) == [1, 1]
    assert items(first) == items(second) == [("user", "Where are my keys?")]
    await assert_next_is_served(sim, ha)


@in_module_loop
async def test_follow_up_lost_before_text_is_retried_with_its_history(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    conversation = uuid.uuid4().hex
    sim.scenario = Scenario(reply="Nice to meet you, Ada.")
    before = len(sim.connections)
    assert await typed(ha, "My name is Ada.", conversation) == "Nice to meet you, Ada."
    sim.scenario = Scenario(reply="Your name is Ada.", disconnect_after=0, fail_first=1)
    assert await typed(ha, "What is my name?", conversation) == "Your name is Ada."
    first, second = since(sim, before)
    assert items(second) == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    assert creates_per_connection([first, second]) == [2, 1]


async def pipeline_utterance(client: AsyncTcpClient, audio: bytes, pace: float = 0.0) -> str:
    """One run-pipeline utterance on an open connection, in 100 ms chunks `pace` s apart."""
    pipeline = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
    await client.write_event(pipeline.event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    for start in range(0, len(audio), 3200):
        chunk = AudioChunk(rate=16000, width=2, channels=1, audio=audio[start : start + 3200])
        await client.write_event(chunk.event())
        await asyncio.sleep(pace)
    await client.write_event(AudioStop().event())
    async with asyncio.timeout(RESPONSE_TIMEOUT + 5):
        while (event := await client.read_event()) is not None:
            if event.type == "handled":
                return event.data["text"]
    raise AssertionError("the connection closed before the answer")


@in_module_loop
async def test_a_voice_request_lost_before_its_transcript_gets_the_fallback(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """Lost twice before even the transcript came: the user did speak and the service
    failed, so the answer is the fallback, not an stt-no-text-recognized error."""
    sim.scenario = Scenario(
        transcript="never heard", transcription_delay=10, disconnect_after=0, fail_first=2
    )
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        assert await pipeline_utterance(client, tone(1.0)) == FALLBACK
    assert len(since(sim, before)) == 2, "one retry in a new session, then the fallback"


ADA_HISTORY = [("user", "Call me Ada."), ("assistant", "Hello Ada.")]


async def introduce_ada(sim: RealtimeSimulator, client: AsyncTcpClient) -> None:
    """The conversation's first spoken turn: the history a new session gets re-seeded with."""
    sim.scenario = Scenario(transcript="Call me Ada.", reply="Hello Ada.")
    assert await pipeline_utterance(client, tone(1.0)) == "Hello Ada."


@in_module_loop
async def test_spoken_follow_up_lost_before_text_commits_its_audio_after_the_history(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """The re-seeded history's items must not pass for the user's (their audio uncommitted)."""
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await introduce_ada(sim, client)
        sim.scenario = Scenario(
            transcript="Who am I?", reply="You are Ada.", disconnect_after=0, fail_first=1
        )
        assert await pipeline_utterance(client, tone(0.8, freq=330.0)) == "You are Ada."
    first, second = since(sim, before)
    assert items(second) == ADA_HISTORY
    assert second.commits == first.commits[1:], "the second utterance's audio, once"
    assert abs(len(second.commits[0]) - 0.8 * 48000) <= 96


@in_module_loop
async def test_spoken_turn_after_a_lost_session_commits_its_audio_after_the_history(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """Streamed while the new session confirms the re-seeded items: still committed."""
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await introduce_ada(sim, client)
        sim.scenario = Scenario(reply="Alpha beta gamma.", session_expired_after=1)
        assert await pipeline_utterance(client, tone(1.0)) == f"Alpha beta {FALLBACK}"
        sim.scenario = Scenario(transcript="Who am I?", reply=lambda text: f"Heard: {text}")
        assert await pipeline_utterance(client, tone(0.5), pace=0.05) == "Heard: Who am I?"
    _, second = since(sim, before)
    assert items(second) == ADA_HISTORY
    assert len(second.commits) == 1


@in_module_loop
@pytest.mark.parametrize(
    ("fault", "partial"),
    [
        pytest.param({"disconnect_after": 2}, "Alpha beta gamma delta", id="disconnect-after-text"),
        pytest.param({"session_expired_after": 1}, "Alpha beta", id="expired-after-text"),
    ],
)
async def test_lost_after_text_gives_that_text_and_the_fallback(
    sim: RealtimeSimulator, ha: HomeAssistant, fault: dict[str, Any], partial: str
) -> None:
    said = unique("count")
    sim.scenario = Scenario(transcript=said, reply="Alpha beta gamma delta epsilon.", **fault)
    before = len(sim.connections)
    text, _ = await spoken(ha, said)
    assert text == f"{partial} {FALLBACK}"
    assert creates_per_connection(since(sim, before)) == [1], "no retry"
    await assert_next_is_served(sim, ha)


ERRORS = [
    pytest.param("rate_limit_exceeded", "event", id="rate-limit-event"),
    pytest.param("rate_limit_exceeded", "response_failed", id="rate-limit-failed-response"),
    pytest.param("server_error", "event", id="server-error-event"),
    pytest.param("server_error", "response_failed", id="server-error-failed-response"),
]


@in_module_loop
@pytest.mark.parametrize(("code", "delivery"), ERRORS)
async def test_error_on_every_attempt_gives_the_fallback_within_the_timeout(
    sim: RealtimeSimulator, ha: HomeAssistant, server: ServerProcess, code: str, delivery: str
) -> None:
    said = unique("what is the news")
    sim.scenario = Scenario(transcript=said, error_code=code, error_delivery=delivery)
    before, log_start = len(sim.connections), len(server.log())
    text, elapsed = await spoken(ha, said)
    assert text == FALLBACK
    assert SHORTEST_TWO_WAITS <= elapsed < RESPONSE_TIMEOUT
    (conn,) = since(sim, before)
    assert creates_per_connection([conn]) == [3], "max_retries (2) + 1 attempts"
    assert len(conn.commits) == 1, "a retry in the same session does not send the audio again"
    log = new_log(server, log_start)
    retries = [line for line in log.splitlines() if "retrying in" in line]
    assert len(retries) == 2 and all(code in line for line in retries)
    assert "(attempt 1); retrying in 0." in retries[0] and "(attempt 2)" in retries[1]
    assert f"Realtime API error {code}" in log and "(after 3 attempts)" in log
    assert SECRET_KEY not in server.log()
    await assert_next_is_served(sim, ha)


@in_module_loop
@pytest.mark.parametrize(("code", "delivery"), ERRORS)
async def test_error_once_then_the_normal_answer(
    sim: RealtimeSimulator, ha: HomeAssistant, code: str, delivery: str
) -> None:
    said = unique("what is the time")
    sim.scenario = Scenario(
        transcript=said, reply=ANSWER, error_code=code, error_delivery=delivery, fail_first=1
    )
    before = len(sim.connections)
    text, elapsed = await spoken(ha, said)
    assert text == ANSWER
    assert 0.5 * (1 - JITTER) <= elapsed < RESPONSE_TIMEOUT
    assert creates_per_connection(since(sim, before)) == [2]
    await assert_next_is_served(sim, ha)


@in_module_loop
@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(Scenario(reject_handshake=401), id="http-401"),
        pytest.param(Scenario(reject_handshake=403), id="http-403"),
        pytest.param(Scenario(error_code="invalid_api_key"), id="invalid-key"),
        pytest.param(Scenario(error_code="account_deactivated"), id="account-deactivated"),
        pytest.param(
            Scenario(error_code="insufficient_quota", error_delivery="response_failed"),
            id="no-quota-failed-response",
        ),
    ],
)
async def test_refused_key_or_account_is_never_retried(
    sim: RealtimeSimulator, ha: HomeAssistant, server: ServerProcess, scenario: Scenario
) -> None:
    sim.scenario = scenario
    before, handshakes, log_start = len(sim.connections), sim.handshakes, len(server.log())
    assert await typed(ha, "hello?") == KEY_ERROR
    assert sim.handshakes == handshakes + 1, "one connection attempt"
    assert sum(creates_per_connection(since(sim, before))) == (
        0 if scenario.reject_handshake else 1
    )
    log = new_log(server, log_start)
    assert log.count("not retrying") == 1 and "retrying in" not in log
    await assert_next_is_served(sim, ha)


@in_module_loop
async def test_slow_upstream_is_cancelled_at_the_timeout_and_not_retried(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    said = unique("think hard")
    sim.scenario = Scenario(transcript=said, first_token_delay=60)
    before = len(sim.connections)
    text, elapsed = await spoken(ha, said)
    assert text == FALLBACK
    assert RESPONSE_TIMEOUT - 0.5 <= elapsed < RESPONSE_TIMEOUT + 1.0
    (conn,) = since(sim, before)
    assert creates_per_connection([conn]) == [1]
    for _ in range(50):
        if received([conn], "response.cancel"):
            break
        await asyncio.sleep(0.02)
    assert received([conn], "response.cancel")
    await assert_next_is_served(sim, ha)


@in_module_loop
async def test_after_a_timeout_the_same_conversation_is_served(
    sim: RealtimeSimulator, ha: HomeAssistant
) -> None:
    """The cancelled response's late events must not end the conversation's next turn."""
    conversation = uuid.uuid4().hex
    sim.scenario = Scenario(first_token_delay=60)
    before = len(sim.connections)
    assert await typed(ha, "Think hard.", conversation) == FALLBACK
    sim.scenario = Scenario(reply="Here I am.")
    assert await typed(ha, "Still there?", conversation) == "Here I am."
    (conn,) = since(sim, before)
    assert creates_per_connection([conn]) == [2]


@in_module_loop
async def test_retries_never_outlast_the_response_timeout(
    sim: RealtimeSimulator, dialect: str, tmp_path: Path
) -> None:
    """Five retries of 0.5, 1, 2, 4, 8 s would take 15 s: the deadline cuts them short."""
    config = server_config(sim.url, dialect, realtime={"max_retries": 5})
    patient = await start_server(tmp_path, config)
    try:
        said = unique("are you busy")
        sim.scenario = Scenario(transcript=said, error_code="rate_limit_exceeded")
        before = len(sim.connections)
        text, elapsed = await spoken(HomeAssistant(patient.uri), said)
    finally:
        await stop_server(patient)
    assert text == FALLBACK
    assert elapsed < RESPONSE_TIMEOUT, "given up before the deadline, not cancelled at it"
    assert 3 <= sum(creates_per_connection(since(sim, before))) < 6


@in_module_loop
async def test_max_retries_zero_never_retries(
    sim: RealtimeSimulator, dialect: str, tmp_path: Path
) -> None:
    config = server_config(sim.url, dialect, realtime={"max_retries": 0})
    strict = await start_server(tmp_path, config)
    try:
        ha = HomeAssistant(strict.uri)
        before = len(sim.connections)
        sim.scenario = Scenario(disconnect_after=0, fail_first=1)
        assert await typed(ha, "one") == FALLBACK
        sim.scenario = Scenario(error_code="rate_limit_exceeded", fail_first=1)
        assert await typed(ha, "two") == FALLBACK
        assert creates_per_connection(since(sim, before)) == [1, 1]
    finally:
        await stop_server(strict)


class FlakyFront:
    """A TCP front for the simulator that cuts the first `cuts` connections at once (a
    network hiccup, a restarting proxy) and pipes the others through."""

    def __init__(self, target_port: int, cuts: int) -> None:
        self.target_port = target_port
        self.cuts = cuts
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.accepted <= self.cuts:
            writer.transport.abort()  # a reset before the upgrade
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()


@in_module_loop
async def test_a_connection_cut_before_the_upgrade_is_retried(
    sim: RealtimeSimulator, dialect: str, tmp_path: Path
) -> None:
    """connect_failed (reset, refused) is retried with backoff; the user gets the answer."""
    sim_port = int(sim.url.split(":")[2].split("/")[0])
    async with FlakyFront(sim_port, cuts=1) as port:
        url = sim.url.replace(f":{sim_port}/", f":{port}/")
        config = server_config(url, dialect, realtime={"warm_sessions": 0})
        flaky = await start_server(tmp_path, config)
        try:
            sim.scenario = Scenario(reply=ANSWER)
            assert await typed(HomeAssistant(flaky.uri), "are you there?") == ANSWER
        finally:
            await stop_server(flaky)
    log = flaky.log()
    assert "Realtime API error connect_failed" in log and "(attempt 1); retrying in" in log
    assert SECRET_KEY not in log
