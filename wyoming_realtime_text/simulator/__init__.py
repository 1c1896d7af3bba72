"""Simulated peers for tests and local runs: the Realtime API, the hub's TTS and satellite."""

from .satellite import SimulatedSatellite
from .scenario import Scenario
from .server import RealtimeSimulator, SimConnection
from .tts import SimulatedTts

__all__ = ["RealtimeSimulator", "Scenario", "SimConnection", "SimulatedSatellite", "SimulatedTts"]
