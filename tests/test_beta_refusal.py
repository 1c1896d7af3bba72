"""`dialect: beta` against an API that refuses beta (api.openai.com since May 2026).

The simulator by default refuses a beta handshake exactly as the real API does: one error
event `beta_api_shape_disabled`, then close 4000. The server must not retry in beta (a retry
storm of fallbacks, a warm pool reconnecting every few seconds): it switches to GA at once,
says so once, and answers every turn, the first one included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness import FALLBACK, HomeAssistant, running_server, server_config, tone
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from wyoming_realtime_text.realtime.events import BETA_REFUSED
from wyoming_realtime_text.realtime.session import _closed_error
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

WARNING = "refused the beta interface"


async def test_beta_refused_switches_to_ga_once_and_answers(tmp_path: Path) -> None:
    async with RealtimeSimulator(scenario=Scenario(transcript="Where are my keys?")) as sim:
        # Warm sessions on, in two pools (ha_turns: ha gives HA's turns sessions of their
        # own): two sessions open at start-up, at the same moment.
        config = server_config(
            sim.url, "beta", realtime={"warm_sessions": 1}, turn_detection={"ha_turns": "ha"}
        )
        async with running_server(tmp_path, config) as server:
            ha = HomeAssistant(server.uri)
            typed, _ = await ha.converse("What time is it?")
            transcript, _ = await ha.stt(tone(1.0))
            spoken, _ = await ha.converse(transcript.text)
            await asyncio.sleep(0.5)  # the pools refill: still no beta handshake
        log = server.log()
    assert typed.text == "You said: What time is it."
    assert transcript.text == "Where are my keys?"
    assert spoken.text == "You said: Where are my keys."
    assert FALLBACK not in (typed.text, spoken.text)
    dialects = [conn.dialect for conn in sim.connections]
    assert dialects.count("beta") == 1, dialects  # one refused handshake, however many opened
    assert sim.handshakes == len(sim.connections)
    assert log.count(WARNING) == 1, log
    assert "realtime.dialect: ga" in log
    assert "retrying" not in log, log  # no turn was retried in beta
    ga = [conn for conn in sim.connections if conn.dialect == "ga"]
    updates = [e["session"] for c in ga for e in c.received if e["type"] == "session.update"]
    assert not [u for u in updates if "modalities" in u]  # GA's spelling only
    full = [u for u in updates if "instructions" in u]  # not the language-only updates
    assert full and all(u["output_modalities"] == ["text"] for u in full)


async def test_beta_refused_by_close_code_alone_is_recognised() -> None:
    """A proxy may pass on the close 4000 but not the error event before it."""
    reason = "invalid_request_error.beta_api_shape_disabled"
    err = _closed_error(ConnectionClosedError(Close(4000, reason), None))
    assert err.code == BETA_REFUSED
    other = _closed_error(ConnectionClosedError(Close(4000, "something else"), None))
    assert other.code == "closed"
