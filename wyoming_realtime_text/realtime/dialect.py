"""Beta vs GA Realtime API: the payloads we send and the events we read, in one place.

Sending one dialect's fields to the other is rejected and leaves the session on its audio
defaults, so every outgoing shape is built here from the configured dialect. Incoming
events are read liberally (both spellings), because compatible servers mix them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import RealtimeSettings
from .events import (
    FunctionCall,
    InputCommitted,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
    ItemAdded,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    UpstreamError,
    Usage,
)
from .models import takes_languages, takes_reasoning

# Audio that the API sends despite text-only. Matched on the raw message so that these
# events are counted and dropped without ever being parsed or decoded.
AUDIO_DELTA_TYPES = frozenset({"response.audio.delta", "response.output_audio.delta"})

_TEXT_DELTAS = {"response.text.delta", "response.output_text.delta"}
_TEXT_DONES = {"response.text.done", "response.output_text.done"}
_TRANSCRIPT_DELTAS = {"response.audio_transcript.delta", "response.output_audio_transcript.delta"}
_TRANSCRIPT_DONES = {"response.audio_transcript.done", "response.output_audio_transcript.done"}
_INPUT_PREFIX = "conversation.item.input_audio_transcription."


@dataclass(frozen=True)
class Dialect:
    """How one dialect spells the few requests we make."""

    name: str
    headers: dict[str, str]

    def session_update(
        self,
        settings: RealtimeSettings,
        language: str | None,
        languages: Sequence[str] = (),
        turn_detection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Text-only output, pcm16 24 kHz input, input transcription on, the API's noise
        reduction if configured (absent, it is off).

        Turn detection is off unless given; when on it must never create responses itself
        (`create_response: false`), or they would come with the session's defaults.
        `languages`: the languages users may speak (a hint for the models that take it).
        """
        transcription = self._transcription(settings.transcription_model, language, languages)
        if self.name == "beta":
            session: dict[str, Any] = {
                "modalities": ["text"],
                "instructions": settings.instructions,
                "input_audio_format": "pcm16",
                "input_audio_transcription": transcription,
                "turn_detection": turn_detection,
                "max_response_output_tokens": settings.max_output_tokens or "inf",
            }
        else:
            session = {
                "type": "realtime",
                "output_modalities": ["text"],
                "instructions": settings.instructions,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": transcription,
                        "turn_detection": turn_detection,
                    }
                },
                "max_output_tokens": settings.max_output_tokens or "inf",
            }
            if settings.reasoning_effort and takes_reasoning(settings.model):
                session["reasoning"] = {"effort": settings.reasoning_effort}
        if settings.noise_reduction != "off":
            noise_reduction = {"type": settings.noise_reduction}
            if self.name == "beta":
                session["input_audio_noise_reduction"] = noise_reduction
            else:
                session["audio"]["input"]["noise_reduction"] = noise_reduction
        return {"type": "session.update", "session": session}

    def transcription_update(
        self, model: str, language: str, languages: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Only the transcription settings, for a session that is already configured."""
        transcription = self._transcription(model, language, languages)
        if self.name == "beta":
            return {
                "type": "session.update",
                "session": {"input_audio_transcription": transcription},
            }
        session = {"type": "realtime", "audio": {"input": {"transcription": transcription}}}
        return {"type": "session.update", "session": session}

    def _transcription(
        self, model: str, language: str | None, languages: Sequence[str]
    ) -> dict[str, Any]:
        """The transcription object; `languages` only where the model takes it (GA only)."""
        transcription: dict[str, Any] = {"model": model}
        if language:
            transcription["language"] = language
        if languages and self.name == "ga" and takes_languages(model):
            transcription["languages"] = list(languages)
        return transcription

    def assistant_text_item(self, text: str) -> dict[str, Any]:
        """An earlier answer, re-seeded as the assistant's text message."""
        part = "text" if self.name == "beta" else "output_text"
        return {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "assistant",
                "content": [{"type": part, "text": text}],
            },
        }

    def response_create(
        self,
        max_output_tokens: int | None,
        tools: Sequence[dict[str, Any]] = (),
        instructions: str | None = None,
    ) -> dict[str, Any]:
        """Text-only again on the response itself: a response's own settings win.

        `tools`: what this response may call (none: the session's, which are none). They go
        with the response because what can work depends on who asked (see `home/intents`);
        `instructions` likewise (they replace the session's for this response).
        """
        key = "modalities" if self.name == "beta" else "output_modalities"
        response: dict[str, Any] = {key: ["text"]}
        if tools:
            response["tools"] = list(tools)
            response["tool_choice"] = "auto"
        if instructions:
            response["instructions"] = instructions
        if max_output_tokens:
            tokens_key = (
                "max_response_output_tokens" if self.name == "beta" else "max_output_tokens"
            )
            response[tokens_key] = max_output_tokens
        return {"type": "response.create", "response": response}


BETA = Dialect("beta", {"OpenAI-Beta": "realtime=v1"})
GA = Dialect("ga", {})
DIALECTS = {"beta": BETA, "ga": GA}


def turn_detection(kind: str, eagerness: str, threshold: float, silence_ms: int) -> dict[str, Any]:
    """The API's turn detection, never creating or interrupting responses on its own."""
    if kind == "semantic_vad":
        config: dict[str, Any] = {"type": kind, "eagerness": eagerness}
    else:
        config = {
            "type": kind,
            "threshold": threshold,
            "prefix_padding_ms": 300,
            "silence_duration_ms": silence_ms,
        }
    return {**config, "create_response": False, "interrupt_response": False}


def function_call_item(call: FunctionCall) -> dict[str, Any]:
    """An earlier call, re-seeded into a new session (same in both dialects)."""
    item = {
        "type": "function_call",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
    }
    return {"type": "conversation.item.create", "item": item}


def function_output_item(
    call: FunctionCall, output: str, item_id: str | None = None
) -> dict[str, Any]:
    """What became of a call, right after it in the conversation (same in both dialects)."""
    item: dict[str, Any] = {"type": "function_call_output", "call_id": call.call_id}
    if item_id:
        item["id"] = item_id
    item["output"] = output
    event: dict[str, Any] = {"type": "conversation.item.create", "item": item}
    if call.item_id:
        event["previous_item_id"] = call.item_id
    return event


def user_text_item(text: str) -> dict[str, Any]:
    """A typed user message (same shape in both dialects)."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def parse(event: dict[str, Any]) -> RealtimeEvent | None:
    """Fold one server event into our vocabulary; None for events we have no use for."""
    kind = event.get("type", "")
    if kind in _TEXT_DELTAS or kind in _TRANSCRIPT_DELTAS:
        return TextDelta(
            str(event.get("response_id", "")),
            str(event.get("delta") or ""),
            kind in _TRANSCRIPT_DELTAS,
        )
    if kind in _TEXT_DONES:
        return TextDone(str(event.get("response_id", "")), str(event.get("text") or ""), False)
    if kind in _TRANSCRIPT_DONES:
        return TextDone(str(event.get("response_id", "")), str(event.get("transcript") or ""), True)
    if kind.startswith(_INPUT_PREFIX):
        item_id = str(event.get("item_id", ""))
        stage = kind[len(_INPUT_PREFIX) :]
        if stage == "delta":
            return InputTranscriptDelta(item_id, str(event.get("delta") or ""))
        if stage == "completed":
            return InputTranscriptDone(item_id, str(event.get("transcript") or ""))
        if stage == "failed":
            error = event.get("error") or {}
            return InputTranscriptFailed(item_id, str(error.get("message") or error))
        return None
    if kind in ("conversation.item.created", "conversation.item.added"):
        item = event.get("item") or {}
        return ItemAdded(str(item.get("id", "")), str(item.get("role", "")))
    if kind == "input_audio_buffer.speech_started":
        return SpeechStarted(int(event.get("audio_start_ms") or 0))
    if kind == "input_audio_buffer.speech_stopped":
        return SpeechStopped(int(event.get("audio_end_ms") or 0))
    if kind == "input_audio_buffer.committed":
        return InputCommitted(str(event.get("item_id", "")))
    if kind == "response.created":
        return ResponseCreated(str((event.get("response") or {}).get("id", "")))
    if kind == "response.done":
        return _response_done(event.get("response") or {})
    if kind in ("session.updated", "session.created"):
        session = event.get("session") or {}
        modalities = session.get("output_modalities", session.get("modalities")) or []
        return SessionUpdated(tuple(modalities)) if kind == "session.updated" else None
    if kind == "error":
        error = event.get("error") or {}
        return UpstreamError(
            str(error.get("code") or error.get("type") or "error"),
            str(error.get("message") or ""),
        )
    return None


def _response_done(response: dict[str, Any]) -> ResponseDone:
    details = response.get("status_details") or {}
    texts, item_ids, calls = [], [], []
    for item in response.get("output") or []:
        if item.get("id"):
            item_ids.append(str(item["id"]))
        if item.get("type") == "function_call":
            calls.append(_function_call(item))
            continue
        for part in item.get("content") or []:
            texts.append(part.get("text") or part.get("transcript") or "")
    raw = details.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code = error.get("code") or error.get("type")
    return ResponseDone(
        response_id=str(response.get("id", "")),
        status=str(response.get("status", "completed")),
        reason=details.get("reason"),
        text="".join(texts),
        item_ids=tuple(item_ids),
        error=str(error.get("message") or code) if error else None,
        error_code=str(code) if code else None,
        calls=tuple(calls),
        usage=_usage(response.get("usage")),
    )


def _usage(raw: Any) -> Usage | None:
    """response.done's usage; None when the server sent none (or not an object)."""
    if not isinstance(raw, dict):
        return None
    into, out = raw.get("input_token_details") or {}, raw.get("output_token_details") or {}

    def count(details: Any, key: str) -> int:
        value = details.get(key) if isinstance(details, dict) else None
        return value if isinstance(value, int) and value >= 0 else 0

    # Without the details, the totals: input as text, output as text (what we asked for).
    return Usage(
        input_text=count(into, "text_tokens") if into else count(raw, "input_tokens"),
        input_audio=count(into, "audio_tokens"),
        input_cached=count(into, "cached_tokens"),
        output_text=count(out, "text_tokens") if out else count(raw, "output_tokens"),
        output_audio=count(out, "audio_tokens"),
    )


def _function_call(item: dict[str, Any]) -> FunctionCall:
    arguments = item.get("arguments")
    return FunctionCall(
        item_id=str(item.get("id") or ""),
        call_id=str(item.get("call_id") or ""),
        name=str(item.get("name") or ""),
        arguments=arguments if isinstance(arguments, str) else "",
    )
