"""What the simulated Realtime server does on the next connection, commit or response.

A `Scenario` is plain mutable data so a test can swap it between turns
(`sim.scenario = Scenario(...)`). The server reads it at the moment it needs a
decision (upgrade, commit, response.create), never caches it, so a change takes
effect on the next such event even on an open connection. Its one piece of state,
how many responses `fail_first` has failed, starts at zero with each new scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

Mode = Literal["obey", "audio_despite_text", "forum_replay"]
AuthFailure = Literal["http", "event"]
ErrorDelivery = Literal["event", "response_failed"]
# A scripted function call: (tool name, raw arguments string, not necessarily JSON).
ScriptedCall = tuple[str, str]

DEFAULT_TRANSCRIPT = "Turn on the kitchen light."


@dataclass
class Scenario:
    """Behaviour of the simulator; every fault is off by default.

    Modes:
      * ``obey``: honour the effective output modalities (a text-only session gets
        text parts; the default session gets audio, which is what a client sees
        when its session.update was rejected).
      * ``audio_despite_text``: always answer with an audio part, transcript and
        audio deltas, whatever was requested (the forum-reported server bug).
      * ``forum_replay``: replay the packaged forum log (``forum_replay.jsonl``).
    """

    mode: Mode = "obey"
    # Assistant text. None: a deterministic default quoting the user's input.
    # A callable gets the user's text (transcript or input_text) and returns the reply.
    reply: str | Callable[[str], str] | None = None
    # What input transcription "hears"; a callable gets the committed pcm16 bytes.
    transcript: str | Callable[[bytes], str] = DEFAULT_TRANSCRIPT

    # Tool use (see tools.py: with function tools offered, a few English commands are
    # answered with function calls of those tools; everything else with `reply`).
    # Text of a message item before the calls of a response that calls tools; None: calls only.
    call_text: str | None = None
    # Scripted calls instead of the understood ones, sent exactly as given whatever the
    # offered tools, tool_choice and parallel_tool_calls say: a real model can emit an
    # unknown tool, arguments of the wrong type or arguments that are not JSON at all (a
    # response cut at max_output_tokens, or a plain model mistake), and a client must cope.
    # A callable gets the user's text; an empty list: no call (the text reply). Like the
    # understood calls, they are made once per user turn.
    calls: list[ScriptedCall] | Callable[[str], list[ScriptedCall]] | None = None
    # Text of a response after this user turn's calls (the model speaks about the results).
    # A callable gets the function_call_output outputs (in order). None: a deterministic
    # default quoting them ("Result: ..."), or `reply` when no output was given.
    output_reply: str | Callable[[list[str]], str] | None = None

    # Timing faults (seconds).
    first_token_delay: float = 0.0  # after response.content_part.added, before the 1st delta
    delta_delay: float = 0.0  # between content deltas
    handshake_delay: float = 0.0  # before answering the HTTP upgrade
    transcription_delay: float = 0.0  # commit -> first transcription event

    # Input transcription fails with conversation.item.input_audio_transcription.failed.
    transcription_fails: bool = False

    # Response faults. "Deltas" below count text / audio-transcript deltas and function-call
    # argument deltas (not audio deltas).
    cut_after: int | None = None  # end the response `incomplete` after N deltas
    cut_reason: str = "content_filter"  # status_details.reason for cut_after
    error_code: str | None = None  # answer response.create with this error, no response
    error_delivery: ErrorDelivery = "event"  # or as response.done status=failed
    # Drop TCP (no close frame), or expire the session (`session_expired` error, close
    # 1001), after N deltas; 0: before the first delta.
    disconnect_after: int | None = None
    session_expired_after: int | None = None
    silent: bool = False  # response.created, then nothing until response.cancel
    # error_code, disconnect_after, session_expired_after and silent only for the first N
    # responses, counted across all connections (so a client's retry on a new connection
    # is served normally); None: for every response.
    fail_first: int | None = None
    failed: int = field(default=0, init=False, repr=False)  # responses faulted so far

    # Connection faults.
    reject_handshake: int | None = None  # HTTP status for every upgrade (401/403/503...)
    auth_failure: AuthFailure = "http"  # bad key: HTTP 401, or 101 + error event + close

    def next_response(self) -> Scenario:
        """The scenario for the response about to start: faulty while `fail_first` allows."""
        if self.fail_first is None:
            return self
        if self.failed < self.fail_first:
            self.failed += 1
            return self
        return replace(
            self,
            error_code=None,
            disconnect_after=None,
            session_expired_after=None,
            silent=False,
            fail_first=None,
        )

    def resolve_transcript(self, pcm: bytes) -> str:
        """The text transcription reports for `pcm` (called once per commit)."""
        if callable(self.transcript):
            return self.transcript(pcm)
        return self.transcript

    def resolve_reply(self, user_text: str) -> str:
        """The assistant's reply to `user_text` for generated (non-replay) responses."""
        if self.reply is None:
            said = user_text.strip().rstrip(".!?。")
            return f"You said: {said}." if said else "Hello, how can I help?"
        if callable(self.reply):
            return self.reply(user_text)
        return self.reply

    def resolve_calls(self, user_text: str) -> list[ScriptedCall] | None:
        """The scripted calls for `user_text`, or None to let the model understand it."""
        if callable(self.calls):
            return list(self.calls(user_text))
        return None if self.calls is None else list(self.calls)

    def resolve_output_reply(self, outputs: list[str], user_text: str) -> str:
        """The text that follows this turn's function calls, given their outputs."""
        if callable(self.output_reply):
            return self.output_reply(outputs)
        if self.output_reply is not None:
            return self.output_reply
        if not outputs:
            return self.resolve_reply(user_text)
        return "Result: " + "; ".join(outputs) + "."
