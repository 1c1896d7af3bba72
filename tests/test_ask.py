"""`ask` as a user runs it: any WAV, its exit codes, its flags in any order, and its
conversation closed when it leaves. Black box: the command as a subprocess, the real server,
and what reached the simulator."""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from harness import (
    FALLBACK,
    HomeAssistant,
    ServerProcess,
    free_port,
    new_conversation_id,
    running_server,
    server_config,
)

from wyoming_realtime_text.config import Settings
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario
from wyoming_realtime_text.simulator.server import SimConnection

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECONDS = 1.0
FREQ = 440.0
LEVEL = 0.5  # the tone's peak, of full scale
# KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: the format tag, then this fixed GUID tail.
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    async with running_server(tmp_path_factory.mktemp("ask"), server_config(sim.url, "ga")) as s:
        yield s


async def run_ask(*args: str, stdin: bytes | None = None) -> tuple[int, list[str], list[str]]:
    """`python3 -m wyoming_realtime_text ARGS`: its exit code, stdout and stderr lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_realtime_text", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode().splitlines()


# -- WAV files as recorders write them (written here from the format's specification) -------


@dataclass(frozen=True)
class Kind:
    """One way of storing the tone: tag 1 PCM or 3 float; `extensible`: tag 0xFFFE with it
    as the subformat; `bits` stored in `container` bits; `levels`: per channel peak."""

    name: str
    tag: int = 1
    bits: int = 16
    container: int | None = None
    rate: int = 16000
    levels: tuple[float, ...] = (LEVEL,)
    extensible: bool = False

    @property
    def mono_level(self) -> float:
        return sum(self.levels) / len(self.levels)


KINDS = [
    Kind("pcm8", bits=8),
    Kind("pcm16"),
    Kind("pcm24", bits=24),
    Kind("pcm32", bits=32),
    Kind("float32", tag=3, bits=32),
    Kind("float64", tag=3, bits=64),
    Kind("sox-24-bit-extensible", bits=24, extensible=True),  # `sox in.wav -b 24 out.wav`
    Kind("extensible-float", tag=3, bits=32, extensible=True),
    Kind("extensible-20-in-24", bits=20, container=24, extensible=True),
    Kind("stereo16", levels=(0.6, 0.2)),
    Kind("stereo24-extensible-48k", bits=24, rate=48000, levels=(0.2, 0.6), extensible=True),
    Kind("quad-float-44k1", tag=3, bits=32, rate=44100, levels=(0.5, 0.3, 0.1, 0.7)),
    Kind("pcm16-8k", rate=8000),
    Kind("float32-96k", tag=3, bits=32, rate=96000),  # above 48 kHz: resampled by ask
    Kind("pcm16-6k", rate=6000),  # below 8 kHz: resampled by ask
]


def encode(kind: Kind) -> bytes:
    """The tone as `kind`'s interleaved samples."""
    t = np.arange(int(SECONDS * kind.rate)) / kind.rate
    wave = np.sin(2 * np.pi * FREQ * t)
    frames = np.stack([level * wave for level in kind.levels], axis=1).ravel()
    container = kind.container or kind.bits
    if kind.tag == 3:
        return frames.astype(f"<f{container // 8}").tobytes()
    if kind.bits == 8:
        return np.rint(frames * 127 + 128).astype(np.uint8).tobytes()
    # Signed, `bits` significant bits left-aligned in the container (the rest zero).
    ints = np.rint(frames * (2 ** (kind.bits - 1) - 1)).astype(np.int64) << (container - kind.bits)
    little = ints.astype("<i8").view(np.uint8).reshape(-1, 8)
    return little[:, : container // 8].tobytes()


def wav_file(kind: Kind) -> bytes:
    container = kind.container or kind.bits
    channels = len(kind.levels)
    block = channels * container // 8
    basic = struct.pack("<HIIHH", channels, kind.rate, kind.rate * block, block, container)
    if kind.extensible:
        mask = (1 << channels) - 1
        extension = struct.pack("<HHI", 22, kind.bits, mask) + struct.pack("<H", kind.tag)
        fmt = struct.pack("<H", 0xFFFE) + basic + extension + GUID_TAIL
    else:
        fmt = struct.pack("<H", kind.tag) + basic + (b"" if kind.tag == 1 else b"\0\0")
    samples = encode(kind)
    chunks = [
        (b"fmt ", fmt),
        (b"LIST", b"INFOISFT\x05\0\0\0sox\0\0\0"[:17]),  # odd: padded to an even length
        (b"fact", struct.pack("<I", len(samples) // block)),
        (b"data", samples),
    ]
    body = b"".join(
        name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
        for name, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def turn_connection(sim: RealtimeSimulator, before: int) -> SimConnection:
    """The session that heard the one turn since `before` (warm_sessions: 0, so its own)."""
    heard = [c for c in sim.connections[before:] if c.commits]
    assert len(heard) == 1, [len(c.commits) for c in sim.connections[before:]]
    return heard[0]


def level_and_pitch(pcm: bytes, rate: int = 24000) -> tuple[float, float]:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    pitch = np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)
    return float(np.sqrt(np.mean(samples**2)) * np.sqrt(2)), float(pitch)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_ask_reads_any_wav(
    sim: RealtimeSimulator, server: ServerProcess, tmp_path: Path, kind: Kind
) -> None:
    sim.scenario = Scenario()
    recording = tmp_path / f"{kind.name}.wav"
    recording.write_bytes(wav_file(kind))
    before = len(sim.connections)
    code, out, err = await run_ask("ask", str(recording), "--uri", server.uri)
    assert code == 0, err
    assert out[0] == "you: Turn on the kitchen light."
    assert out[1].startswith("assistant: ")
    heard = b"".join(turn_connection(sim, before).commits)  # 24 kHz pcm16 mono
    assert abs(len(heard) / 2 / 24000 - SECONDS) < 0.01, "all of it, at its own rate"
    level, pitch = level_and_pitch(heard)
    assert abs(pitch - FREQ) < 2, "read at its rate, channels not mixed into time"
    tolerance = 0.02 if kind.bits == 8 else 0.005
    assert abs(level - kind.mono_level) < tolerance, "its level: width and channels read right"


async def test_ask_reads_a_recording_from_stdin(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """`arecord -d 3 -f S16_LE -r 16000 | ask -`: a pipe's WAV has no data length."""
    sim.scenario = Scenario()
    streamed = bytearray(wav_file(Kind("pcm16")))
    data_size = streamed.index(b"data") + 4
    streamed[data_size : data_size + 4] = struct.pack("<I", 0x7FFFFFFF)  # arecord's placeholder
    before = len(sim.connections)
    code, out, err = await run_ask("ask", "-", "--uri", server.uri, stdin=bytes(streamed))
    assert code == 0, err
    assert out[0] == "you: Turn on the kitchen light."
    heard = b"".join(turn_connection(sim, before).commits)
    assert abs(len(heard) / 2 / 24000 - SECONDS) < 0.01


def not_wav_files() -> dict[str, bytes]:
    whole = wav_file(Kind("pcm16"))
    return {
        "text": b"Turn on the kitchen light\n",
        "empty": b"",
        "header only": whole[:20],
        "cut in the data": whole[: len(whole) // 2],
        "mp3 in a wav": whole[:20] + struct.pack("<H", 0x55) + whole[22:],
    }


async def test_a_file_that_is_not_a_wav_is_one_line_exit_1(tmp_path: Path) -> None:
    """Read before connecting: no server needed to be told."""
    for name, data in not_wav_files().items():
        path = tmp_path / "bad.wav"
        path.write_bytes(data)
        code, out, err = await run_ask("ask", str(path), "--uri", f"tcp://127.0.0.1:{free_port()}")
        assert code == 1, (name, err)
        assert len(err) == 1 and err[0].startswith(f"error: cannot read {path} as a WAV file: ")
        assert len(err[0]) > len(f"error: cannot read {path} as a WAV file: ") + 10, err
        assert not out


# -- exit codes ----------------------------------------------------------------------------


async def test_exit_3_when_the_answer_is_the_fallback(
    sim: RealtimeSimulator, server: ServerProcess, tmp_path: Path
) -> None:
    """Upstream refused: the server's fallback is printed as the answer, and exit 3 says so."""
    recording = tmp_path / "q.wav"
    recording.write_bytes(wav_file(Kind("pcm16")))
    sim.scenario = Scenario(error_code="server_error", fail_first=100)
    try:
        code, out, err = await run_ask("ask", str(recording), "--uri", server.uri)
        text_code, text_out, text_err = await run_ask(
            "ask", "--text", "How are you?", "--uri", server.uri
        )
    finally:
        sim.scenario = Scenario()
    assert code == 3, err
    assert out[-1] == f"assistant: {FALLBACK}"
    assert err == ["error: the answer is the server's fallback text (server_error)"]
    assert text_code == 3, text_err
    assert text_out == [f"assistant: {FALLBACK}"]
    assert len(text_err) == 1 and "fallback" in text_err[0]


async def test_exit_3_when_the_key_is_refused(sim: RealtimeSimulator, tmp_path: Path) -> None:
    """The key_error_text is a fallback too (a server of its own: the refusal is remembered)."""
    recording = tmp_path / "q.wav"
    recording.write_bytes(wav_file(Kind("pcm16")))
    key_error = Settings().key_error_text
    async with running_server(tmp_path, server_config(sim.url, "ga")) as refused:
        sim.scenario = Scenario(reject_handshake=401)
        try:
            code, out, err = await run_ask("ask", "--text", "Hello", "--uri", refused.uri)
            speech_code, speech_out, _ = await run_ask("ask", str(recording), "--uri", refused.uri)
        finally:
            sim.scenario = Scenario()
    assert (code, out) == (3, [f"assistant: {key_error}"]), err
    assert err == ["error: the answer is the server's fallback text (http_401)"]
    assert speech_code == 3 and speech_out[-1] == f"assistant: {key_error}"


async def test_exit_0_for_an_answer_that_merely_resembles_the_fallback(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """Exit 3 is the server's word (`fallback` on `handled`), not a guess from the text."""
    sim.scenario = Scenario(reply=FALLBACK)
    try:
        code, out, err = await run_ask("ask", "--text", "Say the fallback", "--uri", server.uri)
    finally:
        sim.scenario = Scenario()
    assert (code, out, err) == (0, [f"assistant: {FALLBACK}"], [])


async def test_exit_1_for_errors(server: ServerProcess, tmp_path: Path) -> None:
    recording = tmp_path / "q.wav"
    recording.write_bytes(wav_file(Kind("pcm16")))
    nobody = f"tcp://127.0.0.1:{free_port()}"
    for args, message in (
        ([str(recording), "--uri", nobody], "error: cannot talk to the server at "),
        (["--text", "Hello", "--uri", nobody], "error: cannot talk to the server at "),
        ([str(tmp_path / "missing.wav")], f"error: cannot read {tmp_path / 'missing.wav'}: "),
        # An error event: this server has no TTS to speak with.
        ([str(recording), "--uri", server.uri, "--speak", str(tmp_path / "a.wav")], "no TTS"),
    ):
        code, _, err = await run_ask("ask", *args)
        assert code == 1, (args, err)
        assert len(err) == 1 and message in err[0], (args, err)


async def test_exit_2_for_usage_errors(tmp_path: Path) -> None:
    recording = str(tmp_path / "q.wav")
    for args, message in (
        (["ask"], "error: ask needs a WAV recording or --text, one of the two"),
        (["ask", recording, "--text", "Hi"], "error: ask needs a WAV recording or --text"),
        (["ask", "--text", " "], "error: ask --text needs some text"),
        (["--simulator", "ask", recording], "error: --simulator is for the server, not ask"),
        (["--config", "c.yaml", "ask", recording], "error: --config is for the server, not ask"),
        (["ask", recording, "--debug"], "unrecognized arguments: --debug"),
        (
            ["ask", recording, "--uri", "tcp://127.0.0.1:99999"],
            "error: --uri tcp://127.0.0.1:99999: ",
        ),
        (["--uri", "http://host:1", "ask", "--text", "Hi"], "error: --uri http://host:1: "),
    ):
        code, out, err = await run_ask(*args)
        assert code == 2, (args, err)
        assert message in err[-1] and not out, (args, err)


async def test_help_lists_the_exit_codes() -> None:
    code, out, _ = await run_ask("ask", "--help")
    text = " ".join(" ".join(out).split())
    assert code == 0
    assert "Exit codes: 0 an answer; 1 an error" in text
    assert "3 the server's fallback answer" in text


# -- flags in any order ----------------------------------------------------------------------


async def test_uri_before_ask_is_the_servers_to_ask(
    sim: RealtimeSimulator, server: ServerProcess, tmp_path: Path
) -> None:
    sim.scenario = Scenario()
    recording = tmp_path / "q.wav"
    recording.write_bytes(wav_file(Kind("pcm16")))
    before = len(sim.connections)
    code, out, err = await run_ask("--uri", server.uri, "ask", str(recording))
    assert code == 0, err
    assert out[0] == "you: Turn on the kitchen light."
    turn_connection(sim, before)  # this server heard it
    code, out, err = await run_ask("--uri", server.uri, "ask", "--text", "Hello there")
    assert (code, err) == (0, [])
    # After `ask` wins over before it, as a later flag does.
    nobody = f"tcp://127.0.0.1:{free_port()}"
    code, _, err = await run_ask("--uri", server.uri, "ask", "--uri", nobody, str(recording))
    assert code == 1 and nobody in err[0]


# -- the conversation ends with the connection ------------------------------------------------


async def wait_closed(connection: SimConnection, seconds: float) -> bool:
    """Whether the server closes the session within `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if connection.closed:
            return True
        await asyncio.sleep(0.05)
    return connection.closed


async def test_asks_session_is_closed_when_it_disconnects(
    sim: RealtimeSimulator, server: ServerProcess, tmp_path: Path
) -> None:
    """Nobody can continue a direct client's conversation once it has left: its session is
    closed then, not after conversation.idle_seconds (300 s)."""
    sim.scenario = Scenario()
    recording = tmp_path / "q.wav"
    recording.write_bytes(wav_file(Kind("pcm16")))
    before = len(sim.connections)
    code, _, err = await run_ask("ask", str(recording), "--uri", server.uri)
    assert code == 0, err
    assert await wait_closed(turn_connection(sim, before), 3), "closed soon after ask left"


async def test_ha_conversations_outlive_the_connection(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """Home Assistant connects once per request: its conversation (and session) stays for
    the follow-up on the next connection; only a direct client's own conversation ends."""
    sim.scenario = Scenario()
    home = HomeAssistant(server.uri)
    conversation = new_conversation_id()
    before = len(sim.connections)
    await home.converse("What time is it?", conversation)
    first = sim.connections[before:]
    assert len(first) == 1
    assert not await wait_closed(first[0], 1.5), "HA's conversation is kept"
    await home.converse("And tomorrow?", conversation)
    assert len(sim.connections) == before + 1, "the follow-up is asked in the same session"
