"""Hub mode against the real `wyoming-satellite` program from PyPI, not our simulated one.

wyoming-satellite 1.0.0 pins `wyoming==1.4.1` (we need >=1.10), so it is installed in a
virtual environment of its own, cached under ~/.cache/wyoming-realtime-text and keyed by
its version and Python's, once per machine. It runs as it would on a Raspberry Pi, with
a local wake word service (scripted here) so that it starts its turns at the asr stage;
its microphone command plays a recording in real time (silence, the utterance, silence,
over and over) and its speaker command appends what it plays to a file.

The real satellite never sends audio-stop (it relies on the pipeline's end-of-speech
detection): the turn is ended by the Realtime API's turn detection (here the simulator's),
which the hub turns on for satellites, after real (espeak) speech and the silence after it.
Being older than ping/pong and `played` (wyoming 1.4.1), it answers no ping and never says
it played the answer: the test waits for the speaker file instead, and ends well before
the hub's first ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import pytest
import pytest_asyncio
from harness import cache_dir, free_port, server_config, start_server, stop_server
from scripted_wake import ScriptedWake

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimulatedTts
from wyoming_realtime_text.simulator.tts import tone as tts_tone

pytestmark = pytest.mark.asyncio(loop_scope="module")

SATELLITE_VERSION = "1.0.0"
INSTALL_TIMEOUT = 600  # seconds for venv + pip on a first run
CAP_SECONDS = 10  # audio.max_utterance_seconds: far away; the API's VAD ends the turn
SAMPLES_PER_CHUNK = 1024  # the satellite's --mic-command-samples-per-chunk default
SPEECH = Path(__file__).parent / "fixtures" / "speech-kitchen.wav"
QUESTION = "What time is it?"
ANSWER = "It is noon. Time for lunch!"
SND = (22050, 2, 1)  # the speaker command's format (the satellite's defaults, explicit)

# The microphone: raw 16 kHz 16-bit mono, one chunk at a time at the pace it is "recorded".
MIC_SCRIPT = """\
import sys, time
rate, step = 16000, int(sys.argv[2]) * 2
lead, tail = (bytes(int(float(s) * rate * 2) // step * step) for s in sys.argv[3:5])
with open(sys.argv[1], "rb") as f:
    utterance = f.read()
utterance += bytes(-len(utterance) % step)
loop = lead + utterance + tail
out, start, sent = sys.stdout.buffer, time.monotonic(), 0
while True:
    for offset in range(0, len(loop), step):
        out.write(loop[offset : offset + step])
        out.flush()
        sent += 1
        time.sleep(max(0.0, start + sent * step / 2 / rate - time.monotonic()))
"""
# The speaker: whatever the satellite plays (a new process per response) is appended.
SND_SCRIPT = (
    "import shutil, sys; f = open(sys.argv[1], 'ab'); "
    "shutil.copyfileobj(sys.stdin.buffer, f); f.close()"
)


def _install_satellite(venv: Path) -> str | None:
    """Create ``venv`` with wyoming-satellite; None when done, else why it could not be."""
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", f"wyoming-satellite=={SATELLITE_VERSION}"],
    ]
    for step in steps:
        try:
            result = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{shlex.join(step)}: {err}"
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            errors = [line for line in output if not line.startswith("WARNING")] or output
            return f"{shlex.join(step)} exited {result.returncode}: {' | '.join(errors[-5:])}"
    return None


def _check(python: Path) -> str | None:
    """None when the venv runs the satellite's version, else what went wrong."""
    check = (
        "import importlib.metadata as m, wyoming_satellite.__main__; "
        f"assert m.version('wyoming-satellite') == {SATELLITE_VERSION!r}"
    )
    try:
        result = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    except OSError as err:
        return str(err)
    return None if result.returncode == 0 else result.stderr.strip()


@pytest.fixture(scope="session")
def satellite_python() -> Path:
    """The Python of a venv with the real wyoming-satellite; built once, then reused.

    Skips (with pip's own words) only when the install cannot be done, e.g. no network.
    """
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = cache_dir() / f"satellite-venv-{SATELLITE_VERSION}-{py}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Two test runs at once (or CI beside a developer) must not build it over each other.
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and _check(python) is None:
            return python
        shutil.rmtree(venv, ignore_errors=True)
        problem = _install_satellite(venv)
        if problem is not None:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"cannot install wyoming-satellite {SATELLITE_VERSION}: {problem}")
        broken = _check(python)
        if broken is not None:  # installed, yet it does not run: a failure, not a skip
            pytest.fail(f"wyoming-satellite {SATELLITE_VERSION} installed but broken: {broken}")
        marker.write_text(f"wyoming-satellite=={SATELLITE_VERSION}\n", encoding="utf-8")
    return python


def heard(pcm: bytes) -> str:
    """The simulated transcription: the question if the commit holds the spoken words."""
    return QUESTION if len(pcm) / 48000 > 1.0 else "(too short)"


class RealSatellite:
    """The wyoming-satellite process (own process group: its mic and speaker go with it)."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path, log: BinaryIO) -> None:
        self.process = process
        self.log_path = log_path
        self._log = log

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
                    break
            except TimeoutError:
                continue
        self._log.close()


async def start_satellite(
    python: Path, tmp: Path, wake_uri: str, speaker: Path
) -> tuple[RealSatellite, str]:
    port = free_port()
    utterance = tmp / "utterance.raw"
    with wave.open(str(SPEECH), "rb") as wav:
        utterance.write_bytes(wav.readframes(wav.getnframes()))
    mic_script = tmp / "mic.py"
    mic_script.write_text(MIC_SCRIPT, encoding="utf-8")
    mic = [sys.executable, str(mic_script), str(utterance), str(SAMPLES_PER_CHUNK), "1.0", "2.0"]
    snd = [sys.executable, "-c", SND_SCRIPT, str(speaker)]
    log_path = tmp / "satellite.log"
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        str(python), "-m", "wyoming_satellite",
        "--uri", f"tcp://127.0.0.1:{port}",
        "--name", "Real kitchen satellite",
        "--no-zeroconf",
        "--mic-command", shlex.join(mic),
        "--mic-command-rate", "16000",
        "--mic-command-width", "2",
        "--mic-command-channels", "1",
        "--mic-command-samples-per-chunk", str(SAMPLES_PER_CHUNK),
        "--snd-command", shlex.join(snd),
        "--snd-command-rate", str(SND[0]),
        "--snd-command-width", str(SND[1]),
        "--snd-command-channels", str(SND[2]),
        "--wake-uri", wake_uri,
        "--wake-word-name", "ok_test",
        "--debug",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    satellite = RealSatellite(process, log_path, log)
    for _ in range(200):
        if process.returncode is not None:
            raise RuntimeError(f"wyoming-satellite exited {process.returncode}:\n{satellite.log()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return satellite, f"tcp://127.0.0.1:{port}"
        except OSError:
            await asyncio.sleep(0.05)
    await satellite.stop()
    raise RuntimeError(f"wyoming-satellite did not listen:\n{satellite.log()}")


@pytest_asyncio.fixture(loop_scope="module")
async def wake() -> AsyncIterator[ScriptedWake]:
    async with ScriptedWake(name="ok_test") as service:
        yield service


async def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(INSTALL_TIMEOUT + 120)  # the first run installs the satellite
async def test_real_satellite_turn_end_to_end(
    satellite_python: Path,
    sim: RealtimeSimulator,
    wake: ScriptedWake,
    tmp_path: Path,
) -> None:
    sim.scenario = Scenario(transcript=heard, reply=ANSWER, delta_delay=0.01)
    commits_before = sum(len(c.commits) for c in sim.connections)
    speaker = tmp_path / "speaker.raw"
    async with SimulatedTts(streaming=True, rate=SND[0], width=SND[1], channels=SND[2]) as tts:
        satellite, satellite_uri = await start_satellite(
            satellite_python, tmp_path, wake.uri, speaker
        )
        server, server_exit = None, None
        try:
            await wake.wait_detects(1)  # the satellite is up and listening for its wake word
            config = server_config(
                sim.url,
                "ga",
                tts={"uri": tts.uri, "voice": "sim-voice"},
                audio={"max_utterance_seconds": CAP_SECONDS},
            )
            config["satellites"] = [{"uri": satellite_uri, "name": "real"}]
            server = await start_server(tmp_path, config)
            hub_log = server.log
            await wake.wait_detects(2)  # run-satellite from the hub: detect is sent anew
            wake.arm()
            await wake.wait_detection(10)

            def spoken() -> bool:
                return (
                    tts.synthesized != []
                    and speaker.exists()
                    and speaker.stat().st_size >= expected_bytes(tts)
                    and "satellite real: " in hub_log()
                )

            await wait_until(spoken, 20, "the answer to come out of the speaker command")
            await asyncio.sleep(0.5)  # nothing more may come (no second turn, no repeat)
        except BaseException:
            print(f"--- satellite log ---\n{satellite.log()}")
            if server is not None:
                print(f"--- server log ---\n{server.log()}")
            raise
        finally:
            if server is not None:
                server_exit = await stop_server(server)
            await satellite.stop()
    sat_log, log = satellite.log(), hub_log()
    context = f"\n--- satellite log ---\n{sat_log}\n--- server log ---\n{log}"
    assert server_exit == 0, context

    # The hub connected out to the real satellite, which took it as its server.
    assert "Satellite real connected (tcp://127.0.0.1:" in log, context
    assert "Server set:" in sat_log, context
    assert [d.names for d in wake.detects[:2]] == [["ok_test"], ["ok_test"]], context

    # The API's turn detection ended the turn after the words: one commit at 24 kHz, of
    # about the words and the silence that ended them, never the cap.
    assert "max_utterance_seconds" not in log and "no speech in" not in log, context
    commits = [pcm for c in sim.connections for pcm in c.commits][commits_before:]
    assert len(commits) == 1, context
    seconds = len(commits[0]) / (24000 * 2)
    with wave.open(str(SPEECH), "rb") as wav:
        words = wav.getnframes() / wav.getframerate()
    assert words - 0.5 <= seconds <= words + 1.5, (seconds, words)
    assert heard(commits[0]) == QUESTION

    # The satellite got the transcript (and the answer's text), as its debug log shows.
    transcripts = [line for line in sat_log.splitlines() if "type='transcript'" in line]
    assert len(transcripts) == 1 and QUESTION in transcripts[0], context
    synthesize = [line for line in sat_log.splitlines() if "type='synthesize'" in line]
    assert len(synthesize) == 1 and ANSWER in synthesize[0], context
    assert "Waiting for wake word" in sat_log.split(transcripts[0], 1)[1], context
    assert f"satellite real: {QUESTION!r} → {ANSWER!r} (completed" in log, context

    # The speaker command played exactly the TTS audio, byte for byte, in its own format.
    assert " ".join(tts.synthesized) == ANSWER
    played = speaker.read_bytes()
    assert played and played == b"".join(sentence_audio(tts)), context
    assert len(played) % (SND[1] * SND[2]) == 0

    # Nothing went wrong on either side.
    assert "Traceback" not in sat_log and "type='error'" not in sat_log, context
    assert "Satellite real unreachable" not in log, context
    assert "Satellite real disconnected" not in log, context


def sentence_audio(tts: SimulatedTts) -> list[bytes]:
    fmt = {"rate": tts.rate, "width": tts.width, "channels": tts.channels}
    return [tts_tone(tts.seconds_per_char * len(text), **fmt) for text in tts.synthesized]


def expected_bytes(tts: SimulatedTts) -> int:
    return sum(len(audio) for audio in sentence_audio(tts))
