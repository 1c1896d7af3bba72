"""SIGTERM and SIGINT: stop accepting, let answers in progress finish within
server.shutdown_grace, close every upstream session cleanly, and exit 0 (never 143)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest
from harness import ServerProcess, read_until_closed, server_config, start_server, tone
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator import (
    RealtimeSimulator,
    Scenario,
    SimulatedSatellite,
    SimulatedTts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER = " ".join(f"word{i}" for i in range(20)) + "."  # ten deltas of two words


async def serving(sim: RealtimeSimulator, tmp_path: Path, grace: float) -> ServerProcess:
    return await start_server(
        tmp_path, server_config(sim.url, "ga", server={"shutdown_grace": grace})
    )


async def exit_code(server: ServerProcess, seconds: float = 10.0) -> int:
    try:
        return await asyncio.wait_for(server.process.wait(), seconds)
    except TimeoutError:
        server.process.kill()
        await server.process.wait()
        raise AssertionError(f"no exit within {seconds} s:\n{server.log()}") from None


async def refuses_connections(server: ServerProcess, seconds: float = 2.0) -> bool:
    """Whether the listening socket is closed (connections refused) within `seconds`."""
    for _ in range(int(seconds / 0.02)):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except (ConnectionRefusedError, ConnectionResetError):
            return True  # reset: it sat in the backlog when the listening socket closed
        writer.close()
        await asyncio.sleep(0.02)
    return False


async def read_until(client: AsyncTcpClient, kind: str, events: list[Event]) -> None:
    async with asyncio.timeout(10):
        while (event := await client.read_event()) is not None:
            events.append(event)
            if event.type == kind:
                return
    raise AssertionError(f"closed before {kind}: {[e.type for e in events]}")


def closed_cleanly(sim: RealtimeSimulator, before: int) -> bool:
    sessions = sim.connections[before:]
    return bool(sessions) and all(c.closed and c.ws.close_code == 1000 for c in sessions)


def sent_by(sim: RealtimeSimulator, before: int) -> list[str]:
    return [e["type"] for c in sim.connections[before:] for e in c.received]


async def ask_until_answering(client: AsyncTcpClient, sim: RealtimeSimulator, before: int) -> None:
    """A typed request, once its response.create has reached the simulator."""
    await client.write_event(Transcript(text=f"take your time {uuid.uuid4().hex}").event())
    for _ in range(100):
        if "response.create" in sent_by(sim, before):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no response.create")


@pytest.mark.parametrize(
    ("sig", "times"),
    [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)],
    ids=["SIGTERM", "SIGINT", "SIGTERM-delivered-twice"],
)
async def test_a_signal_lets_the_answer_in_progress_finish(
    sim: RealtimeSimulator, tmp_path: Path, sig: signal.Signals, times: int
) -> None:
    """One stop signal; delivered twice at once (`timeout`, `pkill -f` matching a wrapper)
    it is still one: the grace holds."""
    server = await serving(sim, tmp_path, grace=5)
    sim.scenario = Scenario(reply=ANSWER, delta_delay=0.1)
    before = len(sim.connections)
    loop = asyncio.get_running_loop()
    events: list[Event] = []
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(Transcript(text=f"tell me a story {uuid.uuid4().hex}").event())
        await read_until(client, "handled-chunk", events)
        signalled = loop.time()
        for _ in range(times):
            server.process.send_signal(sig)
            await asyncio.sleep(0.1)  # handled apart (at once, the kernel merges them)
        assert await refuses_connections(server), "still accepting after the signal"
        await read_until(client, "handled-stop", events)
        after, closed = await read_until_closed(client.read_event, seconds=2)
    code = await exit_code(server)
    assert code == 0, server.log()
    assert [e.data["text"] for e in events if e.type == "handled"] == [ANSWER]
    assert after == [] and closed, "closed once its answer was done"
    assert loop.time() - signalled < 4.0, "no waiting out the grace once the answer is done"
    assert closed_cleanly(sim, before)
    assert "response.cancel" not in sent_by(sim, before)


async def test_an_utterance_in_progress_may_finish_after_the_signal(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    server = await serving(sim, tmp_path, grace=5)
    said = f"still speaking {uuid.uuid4().hex}"
    sim.scenario = Scenario(transcript=said, reply="Heard you.")
    events: list[Event] = []
    async with AsyncTcpClient.from_uri(server.uri) as client:
        pipeline = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
        await client.write_event(pipeline.event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        audio = tone(1.0)
        for start in range(0, len(audio), 640):
            if start == len(audio) // 2:
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)  # the server is draining now
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=audio[start : start + 640])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        await read_until(client, "handled-stop", events)
    assert await exit_code(server) == 0, server.log()
    assert [e.data["text"] for e in events if e.type == "transcript"] == [said]
    assert [e.data["text"] for e in events if e.type == "handled"] == ["Heard you."]


async def test_an_answer_longer_than_the_grace_is_cancelled_upstream(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    grace = 0.5
    server = await serving(sim, tmp_path, grace=grace)
    sim.scenario = Scenario(silent=True)  # the response never ends until it is cancelled
    before = len(sim.connections)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await ask_until_answering(client, sim, before)
        signalled = loop.time()
        server.process.send_signal(signal.SIGTERM)
        events, closed = await read_until_closed(client.read_event, seconds=grace + 3)
    assert await exit_code(server) == 0, server.log()
    stopped = loop.time() - signalled
    assert closed and "handled" not in [e.type for e in events]
    assert grace <= stopped < grace + 2.0
    assert "response.cancel" in sent_by(sim, before)
    assert closed_cleanly(sim, before)


async def test_a_second_signal_ends_the_grace_at_once(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    server = await serving(sim, tmp_path, grace=30)
    sim.scenario = Scenario(silent=True)  # the answer would outlast any patience
    before = len(sim.connections)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await ask_until_answering(client, sim, before)
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)  # later than a repeat of the same signal (REPEAT_SECONDS)
        assert server.process.returncode is None, "the first signal waits for the answer"
        hurried = loop.time()
        server.process.send_signal(signal.SIGINT)  # Ctrl+C after a stop that takes too long
        events, closed = await read_until_closed(client.read_event, seconds=5)
    assert await exit_code(server, 5) == 0, server.log()
    assert loop.time() - hurried < 2.0
    assert closed and "handled" not in [e.type for e in events]
    assert "response.cancel" in sent_by(sim, before)
    assert closed_cleanly(sim, before)
    assert "Second signal" in server.log()


async def test_a_satellite_turn_in_progress_is_finished_before_the_hub_stops(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    """Hub mode: a satellite hearing its answer at SIGTERM hears all of it, then the hub
    disconnects and the server exits 0."""
    talker = SimulatedSatellite(name="kitchen", audio=tone(1.0), realtime=False)
    sim.scenario = Scenario(reply=ANSWER, delta_delay=0.15)  # ~1.5 s of answer
    await talker.start()
    try:
        async with SimulatedTts() as tts:
            config = server_config(sim.url, "ga", server={"shutdown_grace": 10})
            config["satellites"] = [{"uri": talker.uri, "name": talker.name}]
            config["tts"] = {"uri": tts.uri}
            server = await start_server(tmp_path, config)
            await talker.wait_connected(10)
            await talker.trigger()
            for _ in range(250):
                if talker.transcripts:
                    break
                await asyncio.sleep(0.02)
            assert talker.transcripts, "the answer is being prepared"
            server.process.send_signal(signal.SIGTERM)
            await talker.wait_played(10)
            assert await exit_code(server) == 0, server.log()
    finally:
        await talker.stop()
    assert tts.synthesized == [ANSWER], "the whole answer was spoken"
    assert "Letting 1 satellite turn(s) finish" in server.log()


async def test_idle_clients_do_not_hold_the_shutdown_up(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    server = await serving(sim, tmp_path, grace=5)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(Describe().event())
        assert (await asyncio.wait_for(client.read_event(), 5)) is not None
        signalled = loop.time()
        server.process.send_signal(signal.SIGTERM)
        events, closed = await read_until_closed(client.read_event, seconds=3)
        assert events == [] and closed
    assert await exit_code(server) == 0, server.log()
    assert loop.time() - signalled < 1.5
