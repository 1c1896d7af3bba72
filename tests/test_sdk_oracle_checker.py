"""The strict SDK checker itself: it must reject what the SDK's models do not describe.

Without these, an oracle test passing could mean a checker that accepts anything.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sdk_oracle import check_event, event_errors, event_models

GA_UPDATE: dict[str, Any] = {
    "type": "session.update",
    "event_id": "evt_1",
    "session": {
        "type": "realtime",
        "output_modalities": ["text"],
        "reasoning": {"effort": "low"},
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-transcribe", "languages": ["en", "de"]},
                "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
            }
        },
        "max_output_tokens": "inf",
        "tool_choice": {"type": "function", "name": "lights"},
    },
}
GA_DONE: dict[str, Any] = {
    "type": "response.done",
    "event_id": "event_1",
    "response": {
        "object": "realtime.response",
        "id": "resp_1",
        "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"},
        "output": [
            {
                "id": "item_1",
                "type": "message",
                "role": "assistant",
                "status": "incomplete",
                "content": [{"type": "output_text", "text": "Hel"}],
            }
        ],
        "usage": None,
    },
}


def with_change(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `event` with the dotted `path` set to `value` (`...` deletes it)."""
    changed = copy.deepcopy(event)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    target: Any = changed
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return changed


@pytest.mark.parametrize("event", [GA_UPDATE, GA_DONE], ids=["session.update", "response.done"])
def test_valid_events_pass(event: dict[str, Any]) -> None:
    direction = "client" if event["type"] == "session.update" else "server"
    assert check_event("ga", direction, event) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("bogus", 1, "bogus: not a field of SessionUpdateEvent"),
        (
            "session.audio.input.transcription.bogus",
            1,
            "session.audio.input.transcription.bogus: not a field of AudioTranscription",
        ),
        (
            "session.audio.input.turn_detection.threshold",
            0.5,
            "session.audio.input.turn_detection.threshold: not a field of SemanticVad",
        ),
        ("session.reasoning.effort", "extreme", "session.reasoning.effort: 'extreme' is not one"),
        (
            "session.audio.input.turn_detection.eagerness",
            "eager",
            "session.audio.input.turn_detection.eagerness: 'eager' is not one of",
        ),
        ("session.type", ..., "session.type: required by RealtimeSessionCreateRequest, missing"),
        ("session.tool_choice.name", ..., "session.tool_choice.name: required by"),
        ("session.audio.input.transcription.languages", "en", "expected a list, got str"),
        ("session.audio.input.format.rate", 16000, "session.audio.input.format.rate: 16000 is"),
        ("session.output_modalities.0", "speech", "session.output_modalities[0]: 'speech' is"),
        ("session.max_output_tokens", 1.5, "session.max_output_tokens: expected int, got float"),
        ("session.instructions", 7, "session.instructions: expected str, got int"),
        ("type", "session.change", "the SDK has no ga client event 'session.change'"),
    ],
)
def test_what_the_sdk_does_not_describe_is_rejected(path: str, value: Any, expected: str) -> None:
    problems = [str(p) for p in check_event("ga", "client", with_change(GA_UPDATE, path, value))]
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("response.output.0.content.0.type", "text", "'text' is not one of"),  # beta's name
        ("response.output.0.content.0.bogus", "", "content[0].bogus: not a field of Content"),
        ("response.output.0.content", ..., "response.output[0].content: required by"),
        ("response.status_details.reason", "timeout", "status_details.reason: 'timeout' is"),
        ("response.usage", {"input_tokens": True}, "input_tokens: expected int, got bool"),
        ("event_id", ..., "event_id: required by ResponseDoneEvent, missing"),
    ],
)
def test_nested_server_event_problems_are_found(path: str, value: Any, expected: str) -> None:
    problems = [str(p) for p in check_event("ga", "server", with_change(GA_DONE, path, value))]
    assert any(expected in p for p in problems), problems


def test_a_union_that_no_member_fits_names_the_likely_one() -> None:
    """The item is an assistant message by its Literals: its problems, not the user's."""
    event = with_change(GA_DONE, "response.output.0.content.0.type", "input_text")
    (problem,) = check_event("ga", "server", event)
    assert problem.path == "response.output[0].content[0].type"
    assert "'output_text', 'output_audio'" in problem.message


def test_the_dialects_are_told_apart() -> None:
    beta_update = {"type": "session.update", "session": {"modalities": ["text"]}}
    assert check_event("beta", "client", beta_update) == []
    ga_problems = [str(p) for p in check_event("ga", "client", beta_update)]
    assert "session.modalities: not a field of RealtimeSessionCreateRequest" in ga_problems
    assert "response.output_text.delta" in event_models("ga", "server")
    assert "response.text.delta" in event_models("beta", "server")
    assert "response.text.delta" not in event_models("ga", "server")


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_the_session_resource_deviation_adds_its_identity_and_nothing_else(dialect: str) -> None:
    """session.created carries id/object/expires_at (the live API), not a free-for-all."""
    session: dict[str, Any] = {"id": "sess_1", "object": "realtime.session", "expires_at": 1}
    if dialect == "ga":
        session["type"] = "realtime"
    event = {"type": "session.created", "event_id": "event_1", "session": session}
    assert check_event(dialect, "server", event) == []
    problems = [str(p) for p in check_event(dialect, "server", with_change(event, "session.x", 1))]
    assert len(problems) == 1 and problems[0].startswith("session.x: not a field of")
    bad_object = with_change(event, "session.object", "realtime.thing")
    assert check_event(dialect, "server", bad_object) != []


def test_event_errors_name_the_event() -> None:
    errors = event_errors("ga", "server", [GA_DONE, with_change(GA_DONE, "response.id", 5)])
    assert errors == ["#1 response.done: response.id: expected str, got int"]
