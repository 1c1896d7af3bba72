"""Hostile, broken, silent and vanishing clients: each gets a clear error (where it can
still read one) and is closed, its turn is dropped upstream, and nobody else notices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import pytest_asyncio
from harness import (
    HomeAssistant,
    ServerProcess,
    raw_exchange,
    read_until_closed,
    rss_kib,
    running_server,
    server_config,
    tone,
)
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_FRAME = 65_536  # the smallest server.max_frame_bytes allowed
MAX_CONNECTIONS = 2
IDLE = 1.0
STALL = 0.5
ANSWER = " ".join(f"word{i}" for i in range(20)) + "."  # ten deltas of two words


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    config = server_config(
        sim.url,
        "ga",
        server={
            "max_connections": MAX_CONNECTIONS,
            "max_frame_bytes": MAX_FRAME,
            "idle_timeout": IDLE,
        },
        audio={"stall_seconds": STALL},
        realtime={"response_timeout": 10},
    )
    async with running_server(tmp_path_factory.mktemp("faults"), config) as process:
        yield process


def codes(events: list[Event]) -> list[str | None]:
    return [e.data.get("code") for e in events if e.type == "error"]


def header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def admitted(server: ServerProcess, stack: contextlib.AsyncExitStack) -> AsyncTcpClient:
    """A client the server serves (retried while closed clients of earlier tests still count)."""
    for _ in range(50):
        client = AsyncTcpClient.from_uri(server.uri)
        await client.connect()
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 5)
        if event is not None and Info.is_type(event.type):
            stack.push_async_callback(client.disconnect)
            return client
        await client.disconnect()
        await asyncio.sleep(0.05)
    raise AssertionError("the server never admitted a client")


async def assert_others_are_served(server: ServerProcess, sim: RealtimeSimulator) -> None:
    """The server still answers describe and a normal request, from new clients."""
    async with contextlib.AsyncExitStack() as stack:
        await admitted(server, stack)
    sim.scenario = Scenario(reply="Still here.")
    handled, _ = await HomeAssistant(server.uri).converse("still there?")
    assert handled.text == "Still here."


def sent_by(sim: RealtimeSimulator, before: int) -> list[str]:
    return [e["type"] for c in sim.connections[before:] for e in c.received]


async def stream_audio(client: AsyncTcpClient, seconds: float) -> None:
    audio = tone(seconds)
    for start in range(0, len(audio), 640):
        chunk = AudioChunk(rate=16000, width=2, channels=1, audio=audio[start : start + 640])
        await client.write_event(chunk.event())


async def start_stt(client: AsyncTcpClient, seconds: float) -> None:
    """Home Assistant's STT request, `seconds` of its audio sent, no audio-stop yet."""
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    await stream_audio(client, seconds)


# -- malformed input ------------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"hello there\n", "malformed-event", id="not-json"),
    pytest.param(b"\n", "malformed-event", id="empty-line"),
    pytest.param(b"[1, 2, 3]\n", "malformed-event", id="json-array"),
    pytest.param(b'"describe"\n', "malformed-event", id="json-string"),
    pytest.param(header(data={"text": "hi"}), "malformed-event", id="no-type"),
    pytest.param(header(type="describe", data_length="ten"), "malformed-event", id="bad-length"),
    pytest.param(header(type="transcript", data_length=5) + b"nope!", "malformed-event", id="data"),
    pytest.param(header(type="audio-start"), "malformed-event", id="audio-start-without-format"),
    pytest.param(
        b'{"type": "describe", "pad": "' + b"x" * MAX_FRAME + b'"}\n',
        "event-too-large",
        id="header-line-too-long",
    ),
    pytest.param(
        header(type="transcript", data_length=MAX_FRAME + 1), "event-too-large", id="data-too-large"
    ),
    pytest.param(
        header(type="audio-chunk", data={"rate": 16000}, payload_length=MAX_FRAME + 1),
        "event-too-large",
        id="payload-too-large",
    ),
]


@pytest.mark.parametrize(("data", "code"), MALFORMED)
async def test_a_malformed_frame_gets_an_error_and_is_closed(
    server: ServerProcess, sim: RealtimeSimulator, data: bytes, code: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    events, closed = await raw_exchange(server.port, data)
    assert codes(events) == [code] and len(events) == 1
    assert closed and loop.time() - started < 2.0
    await assert_others_are_served(server, sim)


@pytest.mark.parametrize(
    ("events", "code"),
    [
        (
            [AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0" * 160).event()],
            "bad-request",
        ),
        ([AudioStart(rate=16000, width=3, channels=1).event()], "audio-format"),
        ([AudioStart(rate=0, width=2, channels=1).event()], "audio-format"),
        ([AudioStart(rate=16000, width=2, channels=0).event()], "audio-format"),
    ],
    ids=["chunk-before-start", "width-3", "rate-0", "channels-0"],
)
async def test_bad_audio_gets_its_error_code_and_is_closed(
    server: ServerProcess, sim: RealtimeSimulator, events: list[Event], code: str
) -> None:
    async with AsyncTcpClient.from_uri(server.uri) as client:
        for event in events:
            await client.write_event(event)
        received, closed = await read_until_closed(client.read_event)
    assert codes(received) == [code] and len(received) == 1 and closed
    await assert_others_are_served(server, sim)


async def test_gigabytes_announced_are_refused_without_reading_them(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    await assert_others_are_served(server, sim)  # warmed up: the baseline is steady
    before = rss_kib(server.process.pid)
    loop = asyncio.get_running_loop()
    # A raw socket: asyncio's streams would drop the answer already received once the
    # flood's own write fails (the server has closed), and the answer is what we check.
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)
    received = bytearray()

    async def flood() -> None:
        """The announced data, as fast as the server takes it (32 MiB of it at most)."""
        with contextlib.suppress(OSError):
            await loop.sock_sendall(sock, header(type="transcript", data_length=2**31))
            for _ in range(32):
                await loop.sock_sendall(sock, b"x" * 1_048_576)

    async def receive() -> None:
        with contextlib.suppress(OSError):
            while chunk := await loop.sock_recv(sock, 65_536):
                received.extend(chunk)

    started = loop.time()
    flooding = asyncio.create_task(flood())
    try:
        await asyncio.wait_for(receive(), 5)
        closed = True
    except TimeoutError:
        closed = False
    finally:
        elapsed = loop.time() - started
        await asyncio.wait_for(flooding, 5)
        sock.close()
    grown = rss_kib(server.process.pid) - before
    assert grown < 8 * 1024, f"server memory grew by {grown} KiB"
    reader = asyncio.StreamReader()
    reader.feed_data(bytes(received))
    reader.feed_eof()
    events, _ = await read_until_closed(partial(async_read_event, reader))
    assert codes(events) == ["event-too-large"] and closed
    assert "2147483648" in events[0].data["text"]
    assert elapsed < 1.5
    await assert_others_are_served(server, sim)


# -- limits ---------------------------------------------------------------------------------


async def test_one_connection_too_many_is_refused_and_the_others_go_on(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await admitted(server, stack) for _ in range(MAX_CONNECTIONS)]
        events, closed = await raw_exchange(server.port, b"")
        assert codes(events) == ["too-many-connections"] and len(events) == 1 and closed
        assert "server.max_connections" in events[0].data["text"]
        for client in clients:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 5)
            assert event is not None and Info.is_type(event.type)
    await assert_others_are_served(server, sim)


async def test_a_silent_connection_is_closed_after_the_idle_timeout(server: ServerProcess) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    events, closed = await raw_exchange(server.port, b"", seconds=IDLE + 3)
    elapsed = loop.time() - started
    assert events == [] and closed
    assert IDLE - 0.05 <= elapsed < IDLE + 1.0
    assert "server.idle_timeout" in server.log()


async def test_time_spent_answering_is_not_idleness(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    """An answer streaming for longer than the idle timeout arrives whole; idleness is
    counted from its end."""
    sim.scenario = Scenario(reply=ANSWER, delta_delay=IDLE / 5)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient.from_uri(server.uri) as client:
        started = loop.time()
        await client.write_event(Transcript(text=f"tell me more {uuid.uuid4().hex}").event())
        events = []
        while (event := await asyncio.wait_for(client.read_event(), 5)) is not None:
            events.append(event)
            if event.type == "handled-stop":
                break
        answered = loop.time()
        after, closed = await read_until_closed(client.read_event, seconds=IDLE + 3)
        idle = loop.time() - answered
    assert [e.data["text"] for e in events if e.type == "handled"] == [ANSWER]
    assert answered - started > IDLE * 1.3, "the answer took longer than the idle timeout"
    assert after == [] and closed and IDLE - 0.05 <= idle < IDLE + 1.0


async def read_or_cut(reader: asyncio.StreamReader) -> Event | None:
    """The next event; None at the end of the stream, also in the middle of an event."""
    try:
        return await async_read_event(reader)
    except asyncio.IncompleteReadError:
        return None


async def test_a_client_that_never_reads_is_dropped(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    """Our writes back up (a long answer, a tiny receive window): after the idle timeout
    without reading, the connection is dropped, not held (and its task with it) forever."""
    word = "x" * 50_000
    # ~16 MB of events to read: more than loopback's send buffer (up to 4 MB) takes.
    sim.scenario = Scenario(reply=" ".join([word] * 160))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**21)
    try:
        request = Transcript(text=f"read me a novel {uuid.uuid4().hex}").event()
        await async_write_event(request, writer)
        await asyncio.sleep(IDLE + 2.0)  # not reading: the server's buffer fills, then waits
        events, closed = await read_until_closed(partial(read_or_cut, reader), seconds=5)
    finally:
        writer.close()
    assert closed, "the connection was dropped"
    assert "handled-stop" not in [e.type for e in events], "the answer was cut off"
    assert "read nothing of our last" in server.log()
    await assert_others_are_served(server, sim)


async def test_audio_that_stops_mid_utterance_is_dropped(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    sim.scenario = Scenario(transcript="never finished")
    before = len(sim.connections)
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await start_stt(client, 0.3)
        stopped = loop.time()
        events, closed = await read_until_closed(client.read_event, seconds=STALL + 3)
        stalled = loop.time() - stopped
    assert codes(events) == ["audio-stalled"] and len(events) == 1 and closed
    assert "audio.stall_seconds" in events[0].data["text"]
    assert STALL - 0.05 <= stalled < STALL + 0.4, "the stall limit, not the (longer) idle one"
    assert await eventually(lambda: all(c.closed for c in sim.connections[before:]))
    sent = sent_by(sim, before)
    assert "input_audio_buffer.append" in sent
    assert "input_audio_buffer.commit" not in sent and "response.create" not in sent
    await assert_others_are_served(server, sim)


# -- clients that leave -----------------------------------------------------------------------


async def test_leaving_mid_utterance_drops_the_audio_upstream(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    sim.scenario = Scenario(transcript="cut off")
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await start_stt(client, 0.3)
        assert await eventually(lambda: "input_audio_buffer.append" in sent_by(sim, before))
    assert await eventually(lambda: all(c.closed for c in sim.connections[before:]))
    sent = sent_by(sim, before)
    assert "input_audio_buffer.commit" not in sent and "response.create" not in sent
    await assert_others_are_served(server, sim)


async def test_stt_client_leaving_before_its_transcript_cancels_the_answer(
    server: ServerProcess, sim: RealtimeSimulator
) -> None:
    """HA's STT request starts the answer at audio-stop (one round trip) and parks it for
    the agent request. If the STT client leaves before its transcript, no agent request can
    come: the answer is cancelled upstream now, not left running until claim_seconds."""
    sim.scenario = Scenario(
        transcript=f"never read {uuid.uuid4().hex}", transcription_delay=5.0, silent=True
    )
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await start_stt(client, 0.5)
        await client.write_event(AudioStop().event())
        assert await eventually(lambda: "response.create" in sent_by(sim, before))
    assert await eventually(lambda: "response.cancel" in sent_by(sim, before), 2.0)
    await assert_others_are_served(server, sim)


async def read_until_answer_streams(client: AsyncTcpClient) -> None:
    async with asyncio.timeout(5):
        while (event := await client.read_event()) is not None:
            if event.type == "handled-chunk":
                return
    raise AssertionError("no handled-chunk")


async def ask_by_text(client: AsyncTcpClient) -> None:
    await client.write_event(Transcript(text=f"a long story {uuid.uuid4().hex}").event())


async def ask_by_voice(client: AsyncTcpClient) -> None:
    pipeline = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE)
    await client.write_event(pipeline.event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    await stream_audio(client, 0.5)
    await client.write_event(AudioStop().event())


@pytest.mark.parametrize("ask", [ask_by_text, ask_by_voice], ids=["agent", "run-pipeline"])
async def test_leaving_mid_answer_cancels_the_response_upstream(
    server: ServerProcess, sim: RealtimeSimulator, ask: Callable[[AsyncTcpClient], Awaitable[None]]
) -> None:
    sim.scenario = Scenario(transcript=f"story {uuid.uuid4().hex}", reply=ANSWER, delta_delay=0.2)
    before = len(sim.connections)
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await ask(client)
        await read_until_answer_streams(client)
    assert await eventually(lambda: "response.cancel" in sent_by(sim, before), 2.0)
    await assert_others_are_served(server, sim)
