"""Requests to real Home Assistant with OUR server as its agent, and what each one did.

The rig of the home-control tests that put our server (through a `WyomingTap`, with the
Realtime simulator behind it) into `ha_home.home_assistant`'s home: `Rig.speak` says a WAV
to the Kitchen satellite through HA's whole pipeline, `Rig.type` types into the Assist
dialog; each resets the home first and returns a `Seen`: HA's answer, the home after it,
and the `Window` of what reached the simulator and the tap for it (the instructions and
tools a response was offered, the agent events our server answered with).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ha_home import SATELLITE_ID, HomeAfter, HomeHa
from ha_rig import KITCHEN
from ha_window import Window
from harness import ServerProcess
from real_ha_env import HaSpec
from wyoming_tap import WyomingTap

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, SimulatedTts

WAV = KITCHEN  # 1.7 s of speech; the simulator decides what is heard
UNLOCK_CALL = ("HassTurnOff", json.dumps({"name": "front door", "domain": ["lock"]}))


def unlocks(said: str) -> list[tuple[str, str]]:
    """The model (`Scenario.calls`): unlocks when asked to, and calls again once the user
    said yes (it was told the user was asked)."""
    words = said.strip().lower()
    return [UNLOCK_CALL] if "unlock" in words or words.startswith("yes") else []


@dataclass
class Seen(HomeAfter):
    """One request: HA's answer, the home after it, and what reached us for it."""

    result: dict[str, Any]
    home: dict[str, Any]
    window: Window
    spoken: bool

    @property
    def speech(self) -> str | None:
        return self.result.get("speech")

    @property
    def conversation_id(self) -> str | None:
        return self.result.get("conversation_id")

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.result.get("events", []) if e["type"] == event_type]

    @property
    def heard(self) -> str:
        [end] = self.events("stt-end")
        return end["data"]["stt_output"]["text"]

    @property
    def tts_input(self) -> str:
        """What HA handed its TTS to speak."""
        [start] = self.events("tts-start")
        return start["data"]["tts_input"]

    def answered(self) -> list[str]:
        """The events our server answered HA's agent request with (HA hangs up after its
        last one), without the streamed text HA skips."""
        [agent] = self.window.tap_connections("agent")
        skipped = ("handled-start", "handled-chunk", "handled-stop")
        return [e.type for e in agent.answered if e.type not in skipped]

    def __str__(self) -> str:
        answer = {k: self.result.get(k) for k in ("speech", "response_type", "error_code")}
        return (
            f"{self.result.get('elapsed')} s: {answer}; changed {self.changed()}"
            f"; calls {self.called()}; timers {self.timers()}; upstream {self.window.upstream()}"
        )


@dataclass
class Rig:
    spec: HaSpec
    sim: RealtimeSimulator
    tts: SimulatedTts
    server: ServerProcess
    tap: WyomingTap
    home: HomeHa
    # How long a request waits after the home's reset and switches, for a server that
    # follows HA's states (it knows the home) to have their state_changed events.
    state_seconds: ClassVar[float] = 0.0

    def context(self) -> str:
        """What to show when a check fails: both sides' logs."""
        ours = self.server.log()[-6000:]
        return f"\n--- our server's log ---\n{ours}\n--- HA's log ---\n{self.home.ha.log()}"

    async def fresh_home(self, before: tuple[str, ...] = ()) -> None:
        """The home reset, then ``before`` switched on: where each request starts."""
        await self.home.reset()
        for entity_id in before:
            await self.home.switch(entity_id, True)
        await asyncio.sleep(self.state_seconds)

    async def _request(
        self,
        scenario: Scenario,
        before: tuple[str, ...],
        ask: Callable[[], Awaitable[dict[str, Any]]],
        spoken: bool,
    ) -> Seen:
        await self.fresh_home(before)
        self.sim.scenario = scenario
        window = Window.open(self.sim, self.tap)
        result = await ask()
        await window.close()
        return Seen(result, await self.home.home(), window, spoken)

    async def speak(self, heard: str, scenario: Scenario, conversation_id: str | None) -> Seen:
        """Said to the Kitchen satellite: its audio through the whole pipeline (stt, intent,
        tts) in ``conversation_id``, the simulator's STT hearing ``heard``."""
        scenario.transcript = heard

        def ask() -> Awaitable[dict[str, Any]]:
            return self.home.speak(
                WAV.name,
                conversation_id=conversation_id,
                device_id=self.home.satellite,
                satellite_id=SATELLITE_ID,
            )

        return await self._request(scenario, (), ask, spoken=True)

    async def type(self, text: str, scenario: Scenario, before: tuple[str, ...] = ()) -> Seen:
        """Typed into the Assist dialog (`conversation.async_converse`), a new conversation."""
        return await self._request(scenario, before, lambda: self.home.type(text), spoken=False)
