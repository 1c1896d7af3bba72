"""Real Home Assistant with our server as its STT and agent: the rig of test_real_ha*.py.

`booted` starts the Realtime simulator, a simulated Wyoming TTS, our server (behind a
`WyomingTap`, a recording proxy, so that what HA sends us can be read) and HA core through
`ha_driver.py`, which adds our server and the TTS through HA's real Wyoming config flow and
makes a preferred Assist pipeline of our STT and agent and that TTS. `Rig.speak` streams a
WAV through that pipeline as a satellite would and returns a `Turn`: HA's pipeline events
with their times, and what reached the simulator and the tap meanwhile (a `Window`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ha_window import Window
from harness import FIXTURES, ServerProcess, free_port, running_server, server_config
from real_ha import HaProcess
from real_ha_env import HaEnv, HaSpec
from wyoming_tap import Connection, WyomingTap

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimConnection, SimulatedTts

KITCHEN, BEDROOM = FIXTURES / "speech-kitchen.wav", FIXTURES / "speech-bedroom.wav"
OUR_TITLE, TTS_TITLE = "realtime-text", "simulated-tts"  # the entries' titles: program names


def answer_to(text: str) -> str:
    """What the simulated model answers: one sentence, so the TTS speaks it in one piece."""
    return f"Realtime answer to {text.strip().rstrip('.?!')}."


@dataclass
class Rig:
    spec: HaSpec
    env: HaEnv
    sim: RealtimeSimulator
    tts: SimulatedTts
    server: ServerProcess
    tap: WyomingTap
    ha: HaProcess

    @contextlib.asynccontextmanager
    async def window(self) -> AsyncIterator[Window]:
        window = Window.open(self.sim, self.tap)
        yield window
        await window.close()

    def context(self) -> str:
        """What to show when a check fails: both sides' logs."""
        ours = self.server.log()[-6000:]
        return f"\n--- our server's log ---\n{ours}\n--- HA's log ---\n{self.ha.log()}"

    async def speak(self, wav: Path, heard: str, **options: Any) -> Turn:
        """One spoken request through HA's Assist pipeline, and what reached us for it."""
        self.sim.scenario = Scenario(transcript=heard, reply=answer_to)
        async with self.window() as window:
            result = await self.ha.call("pipeline", wav=wav.name, **options)
        turn = Turn(result, window)
        # Shown with -s, or when a check fails.
        print(f"{self.spec.label}: {heard!r}: {turn.timeline()}; upstream {upstream(turn)}")
        return turn

    async def type(self, text: str, conversation_id: str | None = None) -> dict[str, Any]:
        self.sim.scenario = Scenario(reply=answer_to)
        return await self.ha.call(
            "converse", text=text, conversation_id=conversation_id, agent_title=OUR_TITLE
        )


@contextlib.asynccontextmanager
async def booted(
    spec: HaSpec,
    env: HaEnv,
    tmp: Path,
    config: dict[str, Any] | None = None,
    wavs: Sequence[Path] = (KITCHEN, BEDROOM),
) -> AsyncIterator[Rig]:
    """One HA with our server (`config`: extra sections of its config) and the TTS."""
    async with (
        RealtimeSimulator(host="127.0.0.1", port=0) as sim,
        SimulatedTts() as tts,
        running_server(tmp, server_config(sim.url, "ga", **(config or {}))) as server,
        WyomingTap(server.port) as tap,
    ):
        settings = {
            "http_port": free_port(),
            "wyoming": [["127.0.0.1", tap.port], ["127.0.0.1", tts.port]],
            "agent_title": OUR_TITLE,
            "tts_title": TTS_TITLE,
        }
        ha = await HaProcess.start(env, tmp / "ha", settings, list(wavs))
        try:
            yield Rig(spec, env, sim, tts, server, tap, ha)
        finally:
            code = await ha.stop()
            shutil.rmtree(tmp / "ha", ignore_errors=True)
        assert code == 0, f"HA exited {code}"


@dataclass
class Turn:
    """A spoken request's pipeline result, and what reached our server and the simulator."""

    result: dict[str, Any]
    window: Window

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.result["events"] if e["type"] == event_type]

    def event(self, event_type: str) -> dict[str, Any]:
        found = self.events(event_type)
        assert len(found) == 1, (event_type, self.result["events"])
        return found[0]

    @property
    def stt_text(self) -> str:
        return self.event("stt-end")["data"]["stt_output"]["text"]

    @property
    def intent_output(self) -> dict[str, Any]:
        return self.event("intent-end")["data"]["intent_output"]

    @property
    def speech(self) -> str:
        return self.intent_output["response"]["speech"]["plain"]["speech"]

    @property
    def conversation_id(self) -> str:
        return self.intent_output["conversation_id"]

    def timeline(self) -> str:
        """When each pipeline stage ended, in seconds from the first audio sent."""
        stages = ["stt-vad-start", "stt-vad-end", "stt-end", "intent-end", "tts-end"]
        times = {e["type"]: e["t"] for e in self.result["events"] if e["type"] in stages}
        steps = ", ".join(f"{name} {t:.3f}" for name, t in times.items())
        return f"speech ended {self.result['speech_end']:.3f}: {steps}"

    def agent_requests(self) -> list[Connection]:
        return self.window.tap_connections("agent")

    def commit_connection(self) -> SimConnection:
        """The Realtime session that heard this request's audio."""
        return self.window.heard()


def upstream(turn: Turn) -> dict[str, list[str]]:
    """What our server sent upstream for ``turn``, per session, without the audio appends."""
    sessions: dict[str, list[str]] = {}
    for conn, event in turn.window.sim_events():
        if event["type"] != "input_audio_buffer.append":
            name = f"session {turn.window.sim.connections.index(conn)}"
            sessions.setdefault(name, []).append(event["type"])
    return sessions
