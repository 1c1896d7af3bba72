"""Property-based fuzzing of the Wyoming side: whatever bytes a client sends, the server
stays up, answers the next client's `describe`, logs no unhandled exception and keeps its
memory bounded.

One real server process (against the simulator) takes every example: random bytes, headers
with wrong types and lengths, well-framed events in any order with odd fields, huge declared
lengths, truncated frames and non-UTF-8. Each example writes, reads for a moment and closes,
so no example waits for a server timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from harness import ServerProcess, raw_exchange, rss_kib, running_server, server_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wyoming_realtime_text.healthcheck import check
from wyoming_realtime_text.simulator import RealtimeSimulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_FRAME = 65_536  # the smallest server.max_frame_bytes allowed: huge lengths are cheap
READ_SECONDS = 0.05  # how long an example listens before it closes
MAX_GROWTH_KIB = 50 * 1024
EXAMPLES = 500
AUDIO_START = b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
UNHANDLED = re.compile(r"^(ERROR|CRITICAL):|Traceback|\w+Warning: ")

TYPES = [
    "describe",
    "ping",
    "transcribe",
    "audio-start",
    "audio-chunk",
    "audio-stop",
    "run-pipeline",
    "transcript",
    "synthesize",
    "detect",
    "no-such-event",
    "",
]
STAGES = ["asr", "handle", "intent", "tts", "wake", "bogus", "", None, 3]

# Any small JSON value: where a field of one type is expected, any of these may come.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def odd(*values: Any) -> st.SearchStrategy[Any]:
    """A field's odd values: near misses of its type and range, or any JSON."""
    return st.sampled_from(values) | json_values


lengths = st.one_of(
    st.integers(-5, 3 * MAX_FRAME),
    st.sampled_from([2**31, 2**63, 10**30, MAX_FRAME, MAX_FRAME + 1]),
    st.floats(-10, 1e12),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.none(),
)
TEXTS = ["What time is it?", "Turn on the light.", "", "  ", "é" * 40, "日本語"]
# Event data as a good client sends it, and as a broken or hostile one might.
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "audio-start": st.fixed_dictionaries(
        {
            "rate": st.sampled_from([16000, 8000, 48000]),
            "width": st.sampled_from([2, 1, 4]),
            "channels": st.sampled_from([1, 2]),
        }
    ),
    "run-pipeline": st.fixed_dictionaries(
        {"start_stage": st.just("asr"), "end_stage": st.sampled_from(["handle", "asr", "tts"])}
    ),
    "transcript": st.fixed_dictionaries(
        {"text": st.sampled_from(TEXTS)},
        optional={"context": st.fixed_dictionaries({"conversation_id": st.sampled_from("ab")})},
    ),
    "transcribe": st.fixed_dictionaries({"language": st.sampled_from(["en", "ja-JP"])}),
    "ping": st.fixed_dictionaries({"text": st.text(max_size=8)}),
}
GOOD["audio-chunk"] = GOOD["audio-start"]
audio_format = st.fixed_dictionaries(
    {
        "rate": odd(16000, 0, 7999, 48001, 16000.5, "16000"),
        "width": odd(2, 3, 0, True),
        "channels": odd(1, 0, 4),
    }
)
BAD: dict[str, st.SearchStrategy[Any]] = {
    "audio-start": audio_format,
    "audio-chunk": audio_format,
    "run-pipeline": st.fixed_dictionaries(
        {"start_stage": odd(*STAGES), "end_stage": odd(*STAGES)},
        optional={"restart_on_end": json_values, "wake_word_names": json_values},
    ),
    "transcript": st.fixed_dictionaries(
        {"text": odd(*TEXTS, "\ud800")},
        optional={
            "language": odd("en", "\udfff"),
            "context": st.fixed_dictionaries(
                {}, optional={"conversation_id": odd("a", "\ud800"), "language": json_values}
            )
            | json_values,
        },
    ),
    "transcribe": st.fixed_dictionaries({}, optional={"language": odd("en", "\ud800")}),
    "ping": st.fixed_dictionaries({}, optional={"text": json_values}),
}
# What clients really send, each in order; examples shuffle, drop and cut them.
SCRIPTS = {
    "stt": ["transcribe", "audio-start", "audio-chunk", "audio-chunk", "audio-stop"],
    "pipeline": ["run-pipeline", "audio-start", "audio-chunk", "audio-chunk", "audio-stop"],
    "agent": ["transcript"],
    "misc": ["describe", "ping", "synthesize", "no-such-event"],
}


def frame(
    kind: Any, data: Any, payload: bytes, inline: bool, header: dict[str, Any] | None = None
) -> bytes:
    """A Wyoming frame: the data inline in the header line or after it, then the payload."""
    line: dict[str, Any] = {"type": kind}
    body = b""
    if data is not None and inline:
        line["data"] = data
    elif data is not None:
        body = json.dumps(data).encode("utf-8", "surrogatepass")
        line["data_length"] = len(body)
    if payload:
        line["payload_length"] = len(payload)
    line.update(header or {})
    return json.dumps(line).encode() + b"\n" + body + payload


@st.composite
def event(draw: st.DrawFn, kind: Any = None, good: bool = False) -> bytes:
    """A well-framed event (of `kind`, else any type); unless `good`, its fields may be odd."""
    if kind is None:
        kind = draw(st.sampled_from(TYPES) | json_values)
    strategy = (GOOD if good else BAD).get(kind) if isinstance(kind, str) else None
    if strategy is None:
        strategy = st.none() if good else st.none() | json_values
    data = draw(strategy)
    payload = draw(st.binary(max_size=4000)) if kind == "audio-chunk" else b""
    if good and payload:
        frame_bytes = data["width"] * data["channels"]
        payload = payload[: len(payload) // frame_bytes * frame_bytes]
    return frame(kind, data, payload, draw(st.booleans()))


@st.composite
def bad_header(draw: st.DrawFn) -> bytes:
    """A header with lengths of any type and size, then some bytes or none."""
    fields = {"data_length": lengths, "payload_length": lengths, "data": json_values}
    keys = draw(st.lists(st.sampled_from(list(fields)), unique=True, max_size=3))
    kind = draw(st.sampled_from(TYPES) | json_values)
    header = {key: draw(fields[key]) for key in keys}
    return frame(kind, None, b"", False, header) + draw(st.binary(max_size=300))


@st.composite
def not_utf8(draw: st.DrawFn) -> bytes:
    """An event whose header or announced data carries bytes that are not UTF-8."""
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"]))
    if draw(st.booleans()):
        return b'{"type": "transcript", "data": {"text": "' + junk + b'"}}\n'
    body = b'{"text": "' + junk + b'"}'
    return frame("transcript", None, b"", False, {"data_length": len(body)}) + body


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """JSON nested deeper than the decoder's recursion limit, in the header or the data."""
    depth = draw(st.integers(500, MAX_FRAME // 2 - 100))
    nested = b"[" * depth + b"]" * depth
    if draw(st.booleans()):
        return nested + b"\n"
    body = b'{"text": ' + nested + b"}"
    return frame("transcript", None, b"", False, {"data_length": len(body)}) + body


@st.composite
def scripted(draw: st.DrawFn) -> bytes:
    """Clients' event sequences, one or two, from good or broken clients, maybe shuffled,
    thinned, spiked with garbage or cut off."""
    names = draw(st.lists(st.sampled_from(sorted(SCRIPTS)), min_size=1, max_size=2))
    kinds = [kind for name in names for kind in SCRIPTS[name]]
    good = draw(st.booleans())
    if draw(st.booleans()):
        kinds = draw(st.permutations(kinds))
    if draw(st.booleans()):
        kinds = [kind for kind in kinds if draw(st.booleans())]
    frames = [draw(event(kind, good)) for kind in kinds]
    if not draw(st.integers(0, 2)):
        spike = bad_header() | not_utf8() | st.binary(min_size=1, max_size=64)
        frames.insert(draw(st.integers(0, len(frames))), draw(spike))
    data = b"".join(frames)
    if not draw(st.integers(0, 2)):
        data = data[: draw(st.integers(1, max(1, len(data))))]
    return data


client_bytes = st.one_of(
    scripted(),
    scripted(),
    st.binary(min_size=1, max_size=2048),
    event(),
    bad_header(),
    not_utf8(),
    deeply_nested(),
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    config = server_config(
        sim.url,
        "ga",
        server={"max_frame_bytes": MAX_FRAME, "idle_timeout": 2},
        audio={"stall_seconds": 1},
        realtime={"response_timeout": 2},
    )
    async with running_server(tmp_path_factory.mktemp("fuzz"), config) as process:
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def baseline_kib(server: ServerProcess) -> int:
    """The server's memory once it has served a client (imports done, buffers sized)."""
    await check(server.uri)
    return rss_kib(server.process.pid)


def failures(log: str) -> list[str]:
    """Log lines that tell of an exception nobody handled, or of a coroutine never awaited."""
    return [line for line in log.splitlines() if UNHANDLED.search(line)]


@pytest.mark.timeout(180)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run, in CI too
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=client_bytes)
# What it found once, kept: each an unhandled exception in the server (or a warning).
@example(data=b'{"type": "transcript", "data": {"text": 5}}\n')
@example(data=b'{"type": "transcript", "data": {"text": "hi", "context": [1]}}\n')
@example(data=b'{"type": "transcript", "data": {"text": "\\ud800"}}\n')
@example(data=b'{"type": "transcribe", "data": {"language": 5}}\n' + AUDIO_START)
@example(data=b'{"type": "ping", "data": null}\n')
@example(data=b"[" * 5000 + b"\n")
@example(data=b'{"type": "transcript", "data": {"text": "hi"}}\n{"type": "transcript"}\n')
async def test_random_client_bytes_never_break_the_server(
    server: ServerProcess, baseline_kib: int, data: bytes
) -> None:
    log_start = len(server.log())
    events, _ = await raw_exchange(server.port, data, seconds=READ_SECONDS)
    assert all(e.data.get("code") for e in events if e.type == "error"), "errors say which"
    assert server.process.returncode is None, server.log()
    await check(server.uri, seconds=2.0)  # a fresh client is still served
    assert failures(server.log()[log_start:]) == []
    grown = rss_kib(server.process.pid) - baseline_kib
    assert grown < MAX_GROWTH_KIB, f"server memory grew by {grown} KiB"
