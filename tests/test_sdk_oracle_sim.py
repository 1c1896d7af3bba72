"""The simulator's vocabulary and the paths no other oracle test reaches, checked by the SDK.

test_sdk_oracle.py checks what the server provokes, test_simulator.py and
test_simulator_vad.py check every event of their simulators at teardown
(`sim_client.assert_sdk_valid`): faults, turn detection, the forum replay. Left are the
names themselves (every event the simulator can send or serve must be one the SDK has),
the refused handshakes (each with a simulator of its own), and item retrieval/truncation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sdk_oracle import event_errors, event_models
from sim_client import DIALECTS, ITEM_ADDED, MODEL, assert_sdk_valid, client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario, params
from wyoming_realtime_text.simulator import protocol as p
from wyoming_realtime_text.simulator.replay import rows

pytestmark = pytest.mark.timeout(15)
# What the SDK describes and the simulator does not serve (it answers invalid_value `type`).
NOT_SERVED = {"beta": {"transcription_session.update"}, "ga": set()}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_event_name_of_the_simulator_is_one_the_sdk_has(dialect: str) -> None:
    server = event_models(dialect, "server")  # type: ignore[arg-type]
    client_events = set(event_models(dialect, "client"))  # type: ignore[arg-type]
    assert set(p.EVENTS[dialect].values()) <= server.keys()
    logged = {r["event"]["type"] for r in rows() if "event" in r}
    replayed = logged if dialect == "beta" else {p.BETA_TO_GA.get(t, t) for t in logged}
    assert replayed <= server.keys(), "the forum replay, translated for GA"
    assert set(params.CLIENT_EVENTS[dialect]) == client_events - NOT_SERVED[dialect]


async def first_events(url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """What a connection gets before the simulator closes it, and the close code."""
    events = []
    async with connect(url, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                events.append(json.loads(await ws.recv()))
    assert closed.value.rcvd is not None
    return events, closed.value.rcvd.code


@pytest.mark.parametrize(
    ("headers", "dialect", "code"),
    [
        ({"Authorization": "Bearer sk-any", "OpenAI-Beta": "realtime=v1"}, "beta", 4000),
        ({"Authorization": "Bearer sk-wrong"}, "ga", p.AUTH_CLOSE_CODE),
        ({}, "ga", p.AUTH_CLOSE_CODE),
    ],
    ids=["beta-refused", "wrong-key", "no-key"],
)
async def test_refused_connections_get_sdk_errors(
    headers: dict[str, str], dialect: str, code: int
) -> None:
    scenario = Scenario(auth_failure="event")
    async with RealtimeSimulator(api_key="sk-any", scenario=scenario) as sim:
        events, closed = await first_events(f"{sim.url}?model={MODEL[dialect]}", headers)
    assert [e["type"] for e in events] == ["error"] and closed == code
    assert event_errors(dialect, "server", events) == []  # type: ignore[arg-type]


ITEMS = {
    "ga": [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi"}],
        },
        {"type": "function_call", "name": "lights", "arguments": "{}", "call_id": "call_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "on"},
    ],
    "beta": [
        {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi"}]},
        {"type": "function_call", "name": "lights", "arguments": "{}", "call_id": "call_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "on"},
    ],
}


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_items_created_retrieved_truncated_and_deleted(dialect: str) -> None:
    async with RealtimeSimulator(serve_beta=True) as sim:
        async with client(sim, dialect) as c:
            ids = []
            for item in ITEMS[dialect]:
                await c.send("conversation.item.create", item=item)
                ids.append((await c.until(ITEM_ADDED[dialect]))["item"]["id"])
            await c.send("conversation.item.retrieve", item_id=ids[0])
            assert (await c.until("conversation.item.retrieved"))["item"]["id"] == ids[0]
            await c.send(
                "conversation.item.truncate", item_id=ids[0], content_index=0, audio_end_ms=0
            )
            await c.until("conversation.item.truncated")
            for item_id in (*ids, "item_gone"):
                await c.send("conversation.item.delete", item_id=item_id)
            assert (await c.until("error"))["error"]["code"] == "item_not_found"
            assert len(c.of("conversation.item.deleted")) == len(ids)
        assert_sdk_valid(sim.connections)
