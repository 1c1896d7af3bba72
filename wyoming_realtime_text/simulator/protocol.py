"""Protocol facts of the two OpenAI Realtime dialects, kept apart from the server logic.

The dialect is chosen by the ``OpenAI-Beta: realtime=v1`` header, not by the model.
Everything the simulator validates or emits that differs between beta and GA lives
here, so a protocol correction is a one-line change in one place.

Sources: the OpenAI API reference (beta and GA server/client events), the forum log
packaged as ``forum_replay.jsonl`` (beta, 2024), and a public capture of live GA
traffic (2025/26: part types, event order, error bodies, close codes).
"""

from __future__ import annotations

import copy
import random
import string
import time
from typing import Any, Literal

Dialect = Literal["beta", "ga"]

SAMPLE_RATE = 24000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # pcm16 mono
MIN_COMMIT_BYTES = 100 * BYTES_PER_MS  # commits under 100 ms are rejected
PATHS = ("/v1/realtime", "/openai/v1/realtime", "/openai/realtime")  # OpenAI, Azure GA, preview
DEFAULT_MODEL: dict[Dialect, str] = {"beta": "gpt-4o-realtime-preview", "ga": "gpt-realtime"}
SESSION_MINUTES: dict[Dialect, int] = {"beta": 30, "ga": 60}
# Close code and reason the live GA server uses after an authentication error event.
AUTH_CLOSE_CODE = 3000
# A beta handshake on api.openai.com since about 2026-05-12: one error, then close 4000.
BETA_DISABLED_CODE = "beta_api_shape_disabled"
BETA_DISABLED_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
BETA_DISABLED_CLOSE_CODE = 4000

DEFAULT_INSTRUCTIONS = (
    "Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI. Act like a "
    "human, but remember that you aren't a human and that you can't do human things in the "
    "real world."
)

_ID_ALPHABET = string.ascii_letters + string.digits


_ID_RANDOM = random.Random()  # ids need to be unique, not secret: 9x cheaper than secrets


def new_id(prefix: str, length: int = 21) -> str:
    """An id shaped like the real ones (``event_``, ``item_``, ``resp_``, ``sess_`` + 21;
    call ids are ``call_`` + 16, as in public logs: ``call_I63LY4m3iJCJ6g4H``)."""
    return prefix + "_" + "".join(_ID_RANDOM.choices(_ID_ALPHABET, k=length))


# --- event names --------------------------------------------------------------------

# Logical event -> wire name. Only the names that differ are listed.
EVENTS: dict[Dialect, dict[str, str]] = {
    "beta": {
        "item_added": "conversation.item.created",
        "text_delta": "response.text.delta",
        "text_done": "response.text.done",
        "audio_delta": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
        "transcript_done": "response.audio_transcript.done",
    },
    "ga": {
        "item_added": "conversation.item.added",
        "text_delta": "response.output_text.delta",
        "text_done": "response.output_text.done",
        "audio_delta": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
        "transcript_done": "response.output_audio_transcript.done",
    },
}
BETA_TO_GA = {EVENTS["beta"][k]: EVENTS["ga"][k] for k in EVENTS["beta"]}

# Content type of an assistant *item's* content (output_item.*, conversation.item.*,
# response.done output). GA renamed these to output_text / output_audio.
ITEM_CONTENT: dict[Dialect, dict[str, str]] = {
    "beta": {"text": "text", "audio": "audio"},
    "ga": {"text": "output_text", "audio": "output_audio"},
}
# `part.type` in response.content_part.added/done: the GA reference enumerates only
# "text" | "audio" and live GA traffic sends {"type": "text"}, so both dialects agree.
PART_TYPE: dict[Dialect, dict[str, str]] = {
    "beta": {"text": "text", "audio": "audio"},
    "ga": {"text": "text", "audio": "audio"},
}

# Whether ``response.function_call_arguments.done`` names the function: the GA reference
# and SDK have ``name``; the beta reference and SDK list only item_id, call_id,
# output_index, response_id and arguments (the name is on the item either way).
ARGUMENTS_DONE_NAMES_FUNCTION: dict[Dialect, bool] = {"beta": False, "ga": True}

# Items that carry `object: "realtime.item"` and a `status`; GA's MCP items have neither.
PLAIN_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output"})

# --- settings -----------------------------------------------------------------------

MODALITY_KEY: dict[Dialect, str] = {"beta": "modalities", "ga": "output_modalities"}
# Accepted in session.update but not part of the session shown back: beta's client_secret
# sets when an ephemeral key expires (meaningless once connected; the SDK's beta session
# model has no such field).
NOT_ECHOED: dict[Dialect, frozenset[str]] = {
    "beta": frozenset({"client_secret"}),
    "ga": frozenset(),
}

VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
}
_GA_VAD_EXTRA: dict[str, Any] = {
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}


def default_session(dialect: Dialect, model: str) -> dict[str, Any]:
    """The session a fresh connection gets (echoed in ``session.created``).

    Both defaults answer with AUDIO and have server VAD on: a client that never gets
    its session.update accepted gets audio back.
    """
    expires = int(time.time()) + SESSION_MINUTES[dialect] * 60
    if dialect == "beta":
        return {
            "id": new_id("sess"),
            "object": "realtime.session",
            "model": model,
            "expires_at": expires,
            "modalities": ["text", "audio"],
            "instructions": DEFAULT_INSTRUCTIONS,
            "voice": "alloy",
            "turn_detection": dict(VAD_DEFAULTS),
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": None,
            "input_audio_noise_reduction": None,
            "tool_choice": "auto",
            "temperature": 0.8,
            "max_response_output_tokens": "inf",
            "speed": 1.0,
            "tracing": None,
            "tools": [],
        }
    pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {**VAD_DEFAULTS, **_GA_VAD_EXTRA},
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


# --- usage --------------------------------------------------------------------------


def response_usage(dialect: Dialect, text_tokens: int, audio_tokens: int) -> dict[str, Any]:
    """``response.usage`` in the dialect's shape.

    Beta's ``input_token_details`` has text/audio/cached tokens only (the forum log of 2024,
    the beta reference); GA adds ``image_tokens`` and ``cached_tokens_details``.
    """
    inp = 120
    details: dict[str, Any] = {"text_tokens": inp, "audio_tokens": 0, "cached_tokens": 0}
    if dialect == "ga":
        details["image_tokens"] = 0
        details["cached_tokens_details"] = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
    return {
        "total_tokens": inp + text_tokens + audio_tokens,
        "input_tokens": inp,
        "output_tokens": text_tokens + audio_tokens,
        "input_token_details": details,
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }


def transcription_usage(transcript: str) -> dict[str, Any]:
    """``usage`` of ``...input_audio_transcription.completed`` (required by the SDK in both
    dialects): billed by tokens, about one output token a word."""
    words = max(1, len(transcript.split()))
    return {
        "type": "tokens",
        "total_tokens": 16 + words,
        "input_tokens": 16,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 16},
        "output_tokens": words,
    }


# --- errors -------------------------------------------------------------------------


class ProtocolError(Exception):
    """A client mistake the server answers with an ``error`` event."""

    def __init__(self, code: str | None, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


# error.type per code where it differs from invalid_request_error (REST conventions;
# the Realtime reference documents only the envelope, not the type per code).
_ERROR_TYPES = {
    "server_error": "server_error",
    "insufficient_quota": "insufficient_quota",
    "rate_limit_exceeded": "requests",
}
_ERROR_MESSAGES = {
    "server_error": "The server had an error while processing your request. Sorry about that!",
    "insufficient_quota": "You exceeded your current quota, please check your plan and "
    "billing details.",
    "rate_limit_exceeded": "Rate limit reached for requests. Please try again later.",
}


def error_type(code: str | None) -> str:
    """The ``error.type`` that accompanies `code`."""
    return _ERROR_TYPES.get(code or "", "invalid_request_error")


def error_message(code: str) -> str:
    """A plausible message for a fault-injected error code."""
    return _ERROR_MESSAGES.get(code, f"Simulated error: {code}.")


def error_body(
    code: str | None, message: str, param: str | None = None, client_event_id: str | None = None
) -> dict[str, Any]:
    """The ``error`` object of an error event (the caller adds type/event_id)."""
    return {
        "type": error_type(code),
        "code": code,
        "message": message,
        "param": param,
        "event_id": client_event_id,
    }


def unknown_tool_call(call_id: str) -> ProtocolError:
    """A ``function_call_output`` whose ``call_id`` no function_call of its context has.

    Message, type and code as the live GA API sent them (livekit/agents issue #3344,
    2025-09: ``Tool call ID 'call_…' not found in conversation.``, ``invalid_request_error``,
    code ``invalid_tool_call_id``, param null; the same message on the OpenAI forum, topic
    1302944, for a ``response.create`` whose ``input`` held only the output). The beta
    reference documents the check itself ("the server will check that a function_call item
    with the same ID exists in the conversation history").
    """
    return ProtocolError(
        "invalid_tool_call_id", f"Tool call ID '{call_id}' not found in conversation."
    )


# --- merging ----------------------------------------------------------------------


def check_modalities(dialect: Dialect, value: list[str], param: str) -> None:
    """Only the combinations the dialect documents: beta text (+ audio), GA one of them."""
    if dialect == "beta":
        ok = sorted(value) in (["text"], ["audio", "text"])
    else:
        ok = value in (["text"], ["audio"])
    if not ok:
        allowed = (
            "['text'] and ['audio', 'text']" if dialect == "beta" else "['text'] and ['audio']"
        )
        raise ProtocolError(
            "invalid_value",
            f"Invalid modalities: {value!r}. Supported combinations are: {allowed}.",
            param,
        )


def _fill_turn_detection(dialect: Dialect, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    extra = _GA_VAD_EXTRA if dialect == "ga" else {}
    if value.get("type", "server_vad") == "server_vad":
        return {**VAD_DEFAULTS, **extra, **value}
    if value.get("type") == "semantic_vad":  # idle_timeout_ms is server_vad only
        extra = {k: v for k, v in extra.items() if k != "idle_timeout_ms"}
        return {"type": "semantic_vad", "eagerness": "auto", **extra, **value}
    return value


def _fill_transcription(dialect: Dialect, value: Any) -> Any:
    if dialect == "ga" and isinstance(value, dict):
        return {"language": None, "prompt": None, **value}
    return value


def merge_session(
    dialect: Dialect, current: dict[str, Any], update: dict[str, Any]
) -> dict[str, Any]:
    """The effective session after a *validated* update (only given fields change)."""
    merged = copy.deepcopy(current)
    for key, value in copy.deepcopy(update).items():
        if key in NOT_ECHOED[dialect]:
            continue
        if dialect == "ga" and key == "audio" and isinstance(value, dict):
            for sub in ("input", "output"):
                merged["audio"][sub].update(value.get(sub) or {})
        else:
            merged[key] = value
    if dialect == "beta":
        merged["turn_detection"] = _fill_turn_detection(dialect, merged.get("turn_detection"))
    else:
        audio_in = merged["audio"]["input"]
        audio_in["turn_detection"] = _fill_turn_detection(dialect, audio_in.get("turn_detection"))
        audio_in["transcription"] = _fill_transcription(dialect, audio_in.get("transcription"))
    return merged


def session_modalities(dialect: Dialect, session: dict[str, Any]) -> list[str]:
    """The session's output modalities."""
    return list(session.get(MODALITY_KEY[dialect]) or [])


def transcription_enabled(dialect: Dialect, session: dict[str, Any]) -> bool:
    """Whether input audio transcription is configured on the session."""
    if dialect == "beta":
        return bool(session.get("input_audio_transcription"))
    return bool(session["audio"]["input"].get("transcription"))


def transcription_languages(dialect: Dialect, session: dict[str, Any]) -> list[str]:
    """GA's ``transcription.languages`` (possible languages), which completed events report."""
    if dialect == "beta":
        return []
    return list((session["audio"]["input"].get("transcription") or {}).get("languages") or [])


def force_text_only(dialect: Dialect, session: dict[str, Any]) -> None:
    """Make `session` text-only in place (forum_replay confirms text-only like the log)."""
    session[MODALITY_KEY[dialect]] = ["text"]
