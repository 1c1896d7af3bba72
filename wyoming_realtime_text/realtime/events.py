"""The small vocabulary the rest of the server hears from a Realtime session.

Both dialects (and compatible servers) are folded into these events by `dialect.parse`, so
nothing above `realtime/` knows event names, JSON shapes or that audio ever existed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The server's confirmation of our session.update, with what it says it will output."""

    modalities: tuple[str, ...]

    @property
    def text_only(self) -> bool:
        return self.modalities == ("text",)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The API's turn detection heard speech begin (at this point of the input audio)."""

    audio_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The API's turn detection decided the user has finished; a commit follows."""

    audio_ms: int


@dataclass(frozen=True, slots=True)
class InputCommitted:
    item_id: str


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """An item joined the conversation (our typed message, the user's audio, an answer)."""

    item_id: str
    role: str


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputTranscriptDone:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    item_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text; `from_audio` when it is the transcript of an audio part we never play."""

    response_id: str
    text: str
    from_audio: bool


@dataclass(frozen=True, slots=True)
class TextDone:
    response_id: str
    text: str
    from_audio: bool


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A tool the model called; `arguments` is its JSON text, unchecked (see `home/calls.py`)."""

    item_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a response billed, from its `response.done` (both dialects spell them alike)."""

    input_text: int = 0
    input_audio: int = 0
    input_cached: int = 0  # of the input, read from the API's cache
    output_text: int = 0
    output_audio: int = 0  # asked for text only: should stay 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.counts(), other.counts(), strict=True)))

    def counts(self) -> tuple[int, ...]:
        return (
            self.input_text,
            self.input_audio,
            self.input_cached,
            self.output_text,
            self.output_audio,
        )


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """End of a response; `text` is what its output items carried (text or audio transcript)."""

    response_id: str
    status: str
    reason: str | None
    text: str
    item_ids: tuple[str, ...]
    error: str | None = None  # status failed: status_details.error's message
    error_code: str | None = None  # ... and its code (e.g. rate_limit_exceeded)
    calls: tuple[FunctionCall, ...] = ()  # its function_call items, in order
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class UpstreamError:
    code: str
    message: str

    @property
    def fatal(self) -> bool:
        """Errors that no retry can fix: the key or the account is wrong."""
        return self.code in FATAL_CODES


FATAL_CODES = frozenset({"invalid_api_key", "insufficient_quota", "account_deactivated"})
# api.openai.com's answer to a beta handshake since May 2026 (then it closes with 4000).
BETA_REFUSED = "beta_api_shape_disabled"
# A turn's fallback reason that is ours, not the API's: its conversation was closed under it
# (evicted past max_conversations, or idle), so it says nothing about the API's health.
CONVERSATION_CLOSED = "conversation_closed"

RealtimeEvent = (
    SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | ItemAdded
    | InputTranscriptDelta
    | InputTranscriptDone
    | InputTranscriptFailed
    | ResponseCreated
    | TextDelta
    | TextDone
    | ResponseDone
    | UpstreamError
)


class RealtimeError(Exception):
    """The session cannot go on: failed to connect, closed, or refused us."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_CODES or self.code in ("http_401", "http_403")
