"""What each dialect sends, and how both dialects' events are read."""

from __future__ import annotations

import dataclasses

import pytest

from wyoming_realtime_text.config import RealtimeSettings
from wyoming_realtime_text.realtime.dialect import BETA, GA, parse
from wyoming_realtime_text.realtime.events import (
    InputTranscriptDone,
    ResponseDone,
    SessionUpdated,
    TextDelta,
    UpstreamError,
    Usage,
)
from wyoming_realtime_text.realtime.models import estimated_cost


def settings(**changes: object) -> RealtimeSettings:
    return dataclasses.replace(RealtimeSettings(instructions="be brief"), **changes)


def test_session_update_is_text_only_in_each_dialect() -> None:
    beta = BETA.session_update(
        settings(transcription_model="whisper-1", max_output_tokens=200), "ja", ("ja", "en")
    )["session"]
    assert beta["modalities"] == ["text"]
    assert beta["turn_detection"] is None
    assert beta["input_audio_transcription"] == {"model": "whisper-1", "language": "ja"}
    assert beta["max_response_output_tokens"] == 200
    assert "type" not in beta and "output_modalities" not in beta and "reasoning" not in beta

    ga = GA.session_update(settings(max_output_tokens=None), None)["session"]
    assert ga["type"] == "realtime"
    assert ga["output_modalities"] == ["text"]
    assert ga["audio"]["input"]["turn_detection"] is None
    assert ga["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert ga["max_output_tokens"] == "inf"
    assert "modalities" not in ga


def test_reasoning_effort_goes_to_the_reasoning_models_only() -> None:
    for model in ("gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"):
        session = GA.session_update(settings(model=model, reasoning_effort="low"), "en")
        assert session["session"]["reasoning"] == {"effort": "low"}, model
    for model in ("gpt-realtime", "gpt-realtime-2025-08-28", "my-azure-deployment"):
        session = GA.session_update(settings(model=model, reasoning_effort="low"), "en")
        assert "reasoning" not in session["session"], model
    unset = GA.session_update(settings(model="gpt-realtime-2.1", reasoning_effort=None), "en")
    assert "reasoning" not in unset["session"]
    assert settings().reasoning_effort == "minimal"  # the default: the fastest first word


def test_possible_languages_go_to_the_models_that_take_them() -> None:
    for model in ("gpt-live-transcribe", "gpt-transcribe"):
        session = GA.session_update(settings(transcription_model=model), "de", ("en", "de"))
        transcription = session["session"]["audio"]["input"]["transcription"]
        assert transcription == {"model": model, "language": "de", "languages": ["en", "de"]}
        update = GA.transcription_update(model, "en", ("en", "de"))
        assert update["session"]["audio"]["input"]["transcription"]["languages"] == ["en", "de"]
    older = GA.session_update(settings(transcription_model="gpt-4o-transcribe"), None, ("en",))
    assert older["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    assert BETA.transcription_update("gpt-live-transcribe", "en", ("en",))["session"] == {
        "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"}
    }


def test_response_create_repeats_text_only() -> None:
    assert BETA.response_create(100)["response"] == {
        "modalities": ["text"],
        "max_response_output_tokens": 100,
    }
    assert GA.response_create(None)["response"] == {"output_modalities": ["text"]}
    assert BETA.headers == {"OpenAI-Beta": "realtime=v1"} and GA.headers == {}


def test_parse_reads_both_spellings() -> None:
    for kind in ("response.text.delta", "response.output_text.delta"):
        assert parse({"type": kind, "response_id": "r", "delta": "hi"}) == TextDelta(
            "r", "hi", False
        )
    for kind in ("response.audio_transcript.delta", "response.output_audio_transcript.delta"):
        assert parse({"type": kind, "response_id": "r", "delta": "hi"}) == TextDelta(
            "r", "hi", True
        )
    assert parse({"type": "session.updated", "session": {"output_modalities": ["text"]}}) == (
        SessionUpdated(("text",))
    )
    assert not parse(
        {"type": "session.updated", "session": {"modalities": ["text", "audio"]}}
    ).text_only
    done = parse(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "i",
            "transcript": "hello\n",
        }
    )
    assert done == InputTranscriptDone("i", "hello\n")
    assert parse({"type": "rate_limits.updated"}) is None


def test_parse_response_done_keeps_incomplete_text() -> None:
    event = parse(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "incomplete",
                "status_details": {"type": "incomplete", "reason": "content_filter"},
                "output": [
                    {"id": "item_9", "content": [{"type": "audio", "transcript": "partial"}]}
                ],
            },
        }
    )
    assert event == ResponseDone("resp_1", "incomplete", "content_filter", "partial", ("item_9",))


def test_parse_error_and_fatality() -> None:
    error = parse(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad"},
        }
    )
    assert error == UpstreamError("invalid_api_key", "bad")
    assert error.fatal
    assert not UpstreamError("rate_limit_exceeded", "").fatal


def test_response_done_usage_is_read_by_kind() -> None:
    usage = {
        "total_tokens": 190,
        "input_tokens": 150,
        "output_tokens": 40,
        "input_token_details": {"text_tokens": 50, "audio_tokens": 100, "cached_tokens": 30},
        "output_token_details": {"text_tokens": 35, "audio_tokens": 5},
    }
    event = parse({"type": "response.done", "response": {"id": "r", "usage": usage}})
    assert isinstance(event, ResponseDone)
    assert event.usage == Usage(
        input_text=50, input_audio=100, input_cached=30, output_text=35, output_audio=5
    )
    totals = {"input_tokens": 12, "output_tokens": 3}  # a compatible server's, no details
    event = parse({"type": "response.done", "response": {"id": "r", "usage": totals}})
    assert isinstance(event, ResponseDone) and event.usage == Usage(input_text=12, output_text=3)
    event = parse({"type": "response.done", "response": {"id": "r"}})
    assert isinstance(event, ResponseDone) and event.usage is None


def test_a_turns_cost_is_estimated_at_list_prices() -> None:
    million = Usage(input_text=1_000_000, input_audio=1_000_000, output_text=1_000_000)
    assert estimated_cost("gpt-realtime-2.1-mini", million) == pytest.approx(0.60 + 10 + 2.40)
    assert estimated_cost("gpt-realtime-2.1-2026-10-01", million) == pytest.approx(4 + 32 + 24)
    assert estimated_cost("my-azure-deployment", million) is None
    assert estimated_cost("gpt-realtime-2.1-mini", None) is None
