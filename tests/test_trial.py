"""Trying everything without a key: `--simulator` answers, paces its text and speaks through a
simulated TTS of its own; the simulated TTS also runs as a command of its own."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

import yaml
from harness import free_port, tone
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.tts import Synthesize

SERVER = [sys.executable, "-m", "wyoming_realtime_text"]


async def wait_for_line(stream: asyncio.StreamReader, needle: str, seconds: float = 15) -> str:
    """Read `stream` until a line has `needle`; the lines read so far."""
    seen = ""
    async with asyncio.timeout(seconds):
        while needle not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"ended before {needle!r}: {seen}")
            seen += line.decode()
    return seen


async def test_the_simulator_mode_streams_at_a_pace_and_speaks(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"web": {"enabled": False}}))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    server = await asyncio.create_subprocess_exec(
        *SERVER, "--simulator", "--config", str(config), "--uri", f"tcp://127.0.0.1:{port}",
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        log = await wait_for_line(server.stderr, "Ready on")
        assert "Using the built-in simulated TTS at tcp://127.0.0.1:" in log
        # The answer arrives over time, as a model streams it, not in one burst.
        times: list[float] = []
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(RunPipeline(PipelineStage.ASR, PipelineStage.HANDLE).event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioChunk(16000, 2, 1, tone(0.5)).event())
            await client.write_event(AudioStop().event())
            async with asyncio.timeout(15):
                while (event := await client.read_event()) is not None:
                    if event.type == "handled-chunk":
                        times.append(asyncio.get_running_loop().time())
                    if event.type == "handled":
                        break
        assert len(times) >= 3 and times[-1] - times[0] >= 0.08, times
        # `ask --speak` gets speech from the simulated TTS.
        recording, spoken = tmp_path / "q.wav", tmp_path / "a.wav"
        with wave.open(str(recording), "wb") as wav:
            wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000)
            wav.writeframes(tone(0.5))
        ask = await asyncio.create_subprocess_exec(
            *SERVER, "ask", str(recording), "--uri", f"tcp://127.0.0.1:{port}",
            "--speak", str(spoken),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(ask.communicate(), 30)
        assert ask.returncode == 0, err.decode()
        with wave.open(str(spoken), "rb") as wav:
            assert wav.getnframes() > 0
        assert "spoken answer saved" in out.decode()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)


async def test_the_simulated_tts_has_a_command_of_its_own() -> None:
    port = free_port()
    tts = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_realtime_text.simulator.tts_main", "--port", str(port),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert tts.stderr is not None
        await wait_for_line(tts.stderr, "Simulated TTS on")
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            info = Info.from_event(await asyncio.wait_for(client.read_event(), 5))
            assert info.tts and info.tts[0].name == "simulated-tts"
            await client.write_event(Synthesize(text="Hello there.").event())
            types = []
            async with asyncio.timeout(5):
                while (event := await client.read_event()) is not None:
                    types.append(event.type)
                    if event.type == "audio-stop":
                        break
        assert types[0] == "audio-start" and "audio-chunk" in types
    finally:
        tts.terminate()
        await asyncio.wait_for(tts.wait(), 10)


async def test_the_simulated_tts_refuses_a_bad_port_in_one_line() -> None:
    tts = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_realtime_text.simulator.tts_main", "--port", "99999",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(tts.communicate(), 10)
    assert tts.returncode == 2
    assert err.decode().strip().splitlines() == [
        "error: --port must be between 0 and 65535, not 99999"
    ]
