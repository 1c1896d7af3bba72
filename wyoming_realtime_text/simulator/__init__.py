"""A simulated OpenAI Realtime server (beta and GA dialects) for tests and local runs."""

from .scenario import Scenario
from .server import RealtimeSimulator, SimConnection

__all__ = ["RealtimeSimulator", "Scenario", "SimConnection"]
