"""The simulator accepts every client event the SDK's models describe and refuses the rest.

For each client event of each dialect, tests/sdk_samples.py makes valid events from the
SDK's model (every union member and Literal value appears in one) and, from each, events
broken in one place (an unknown key in any object, a value outside a Literal, a required
field left out). The simulator must take every valid one without a validation error,
answer every broken one with the API's error for it (``unknown_parameter``,
``invalid_value`` or ``missing_required_parameter``, naming the broken ``param``), and
what it sends back meanwhile (every setting echoed, every item announced) must fit the
SDK's server events.

Refused although the SDK's types allow them (`refused_anyway`): what the simulator does
not play, a GA session.update to a transcription session (``session.type:
"transcription"``) and beta's ``transcription_session.update``; and what the API documents
it refuses, beta ``modalities: ["audio"]`` (``["text"]`` or ``["audio", "text"]`` only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sdk_oracle import connection_errors, event_models
from sdk_samples import STRING, Mutation, mutations, samples
from sim_client import DIALECTS, ITEM_ADDED, MODEL, Client, client

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.timeout(60)

VALIDATION_CODES = {
    "unknown_parameter",
    "missing_required_parameter",
    "invalid_type",
    "invalid_value",
    "integer_below_min_value",
    "integer_above_max_value",
    "decimal_below_min_value",
    "decimal_above_max_value",
}
EXPECTED_CODE = {
    "unknown": "unknown_parameter",
    "invalid": "invalid_value",
    "missing": "missing_required_parameter",
}
CASES = [(d, t) for d in DIALECTS for t in sorted(event_models(d, "client"))]  # type: ignore[arg-type]


def refused_anyway(dialect: str, event: dict[str, Any]) -> str | None:
    """The param the simulator must refuse in an event the SDK's types allow, else None:
    what the simulator does not play, and what the API documents it refuses."""
    if dialect == "beta" and event["type"] == "transcription_session.update":
        return "type"  # not simulated
    session = event.get("session") or {}
    if dialect == "ga" and session.get("type") not in (None, "realtime"):
        return "session.type"  # a transcription session: not simulated
    for key in ("session", "response"):
        if dialect == "beta" and (event.get(key) or {}).get("modalities") == ["audio"]:
            return f"{key}.modalities"  # beta: ["text"] or ["audio", "text"] only
    return None


def as_expected(m: Mutation, error: dict[str, Any] | None) -> bool:
    """Whether `error` is the refusal `m` deserves."""
    if error is None:
        return False
    if m.discriminator:  # no union member is the broken one: any refusal inside it
        parent = m.path.rsplit(".", 1)[0] if "." in m.path else ""
        return str(error["param"]).startswith(parent)
    return (error["code"], error["param"]) == (EXPECTED_CODE[m.kind], m.path)


@pytest.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    # Silent responses: a response.create case starts one that never competes for output.
    async with RealtimeSimulator(serve_beta=True, scenario=Scenario(silent=True)) as server:
        yield server


async def refusal(c: Client, dialect: str, event: dict[str, Any], n: int) -> dict[str, Any] | None:
    """The validation error `event` is answered with, or None when it is taken.

    Then re-creates the item with id "x" (every sample's item_id) as a marker: once it is
    announced, the simulator has handled `event`, whose validation error would be earlier.
    """
    case_id = f"case-{n}"
    await c.ws.send(json.dumps({**event, "event_id": case_id}))
    marker = f"marker-{n}"
    item = {
        "id": STRING,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": marker}],
    }
    await c.send("conversation.item.create", item=item)
    error = None
    while True:
        answer = await c.recv()
        if answer["type"] == "error" and answer["error"]["event_id"] == case_id:
            error = answer["error"]
        if answer["type"] == ITEM_ADDED[dialect] and marker in json.dumps(answer["item"]):
            break
    if error is None or error["code"] not in VALIDATION_CODES:
        return None  # taken (a semantic error, e.g. an empty commit, is not a refusal)
    return error


def broken(dialect: str, etype: str, events: list[dict[str, Any]]) -> list[Mutation]:
    """One mutation per (kind, path, model) over all `events`; the event `type` is not one
    (it picks the handler: an unknown or missing type is test_simulator's)."""
    model = event_models(dialect, "client")[etype]  # type: ignore[arg-type]
    found: dict[tuple[str, str, str], Mutation] = {}
    for event in events:
        for m in mutations(model, event):
            if m.path != "type":
                found.setdefault((m.kind, m.path, m.where), m)
    return list(found.values())


@pytest.mark.parametrize(("dialect", "etype"), CASES, ids=[f"{d}-{t}" for d, t in CASES])
async def test_what_the_sdk_accepts_is_taken_and_the_rest_refused(
    sim: RealtimeSimulator, dialect: str, etype: str
) -> None:
    events = samples(event_models(dialect, "client")[etype])  # type: ignore[arg-type]
    simulated = [e for e in events if refused_anyway(dialect, e) is None]
    problems: list[str] = []
    async with client(sim, dialect, model=MODEL[dialect]) as c:
        await refusal(c, dialect, {"type": "input_audio_buffer.clear"}, 0)  # item "x" exists
        n = 0
        for event in events:
            n += 1
            error = await refusal(c, dialect, event, n)
            expected = refused_anyway(dialect, event)
            if expected is None and error is not None:
                problems.append(f"refused {json.dumps(event)}: {error['message']}")
            elif expected is not None and (error is None or error["param"] != expected):
                problems.append(f"not refused at {expected}: {json.dumps(event)}: {error}")
        for m in broken(dialect, etype, simulated):
            n += 1
            error = await refusal(c, dialect, m.value, n)
            if not as_expected(m, error):
                got = None if error is None else (error["code"], error["param"])
                problems.append(f"{m.kind} {m.path} ({m.where}): got {got}")
    # What the simulator answered (every setting echoed, every item announced) fits too.
    problems += connection_errors(sim.connections[0], client=False)
    assert events and not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
