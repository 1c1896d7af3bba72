"""One utterance (spoken or typed) and the assistant's answer, on one Realtime session.

A turn streams the user's audio upstream as it arrives, commits and asks for a text-only
response the moment the audio ends, and turns whatever comes back into two live text
streams: the user's transcript and the assistant's answer. Every way it can end, including
errors, disconnects and silence, finishes both streams within the response timeout, with
the fallback text where the answer would otherwise be empty.

A failure upstream before any answer text reached the user is retried (see
`realtime/retry.py`): the turn runs attempts, each on the conversation's session (a new one,
re-seeded with the history, after a lost session), sending the user's words again when the
session does not have them. The user's audio (never the API's) is kept until the turn ends
for that. All attempts share one deadline: `response_timeout` from the end of speech.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from .config import Settings
from .home.intents import Toolset
from .home.plan import Memory
from .realtime.events import (
    CONVERSATION_CLOSED,
    FATAL_CODES,
    FunctionCall,
    InputCommitted,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
    ItemAdded,
    RealtimeError,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    UpstreamError,
    Usage,
)
from .realtime.retry import Remedy, RetryBudget, remedy
from .realtime.session import RealtimeSession
from .stream import TextStream
from .text import ControlTokenFilter, strip_control_tokens

_LOGGER = logging.getLogger(__name__)

# pcm16 24 kHz mono: the API refuses to commit less than 100 ms.
MIN_COMMIT_BYTES = 4800
# A retry sends the kept audio again in pieces of 5 s (the API takes up to 15 MiB per event).
RESEND_BYTES = 5 * 48000
# Errors that only tell us a request was redundant; the turn goes on.
HARMLESS_CODES = frozenset(
    {"conversation_already_has_active_response", "response_cancel_not_active"}
)


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"  # cut short (content filter, token limit) but its text is kept
    NO_SPEECH = "no_speech"
    FALLBACK = "fallback"
    CANCELLED = "cancelled"


UNCLAIMED = "unclaimed"  # an answer started for Home Assistant that it never asked for


class Claim:
    """Whether anyone asked for a turn's answer.

    Home Assistant's STT turn starts its answer at `audio-stop`, before HA's agent request
    asks for it, and that request may never come: HA answered the command itself ("prefer
    handling commands locally"), or the words were a follow-up, asked again in their own
    conversation. Such a turn's claim is pending until the request claims it or the
    assistant gives up; every other turn is asked for from the start.
    """

    def __init__(self, *, pending: bool = False) -> None:
        self.asked: bool | None = None if pending else True
        self._decided = asyncio.Event()
        if not pending:
            self._decided.set()

    def decide(self, asked: bool) -> None:
        """Claimed (True) or given up (False); the first decision stands."""
        if self.asked is None:
            self.asked = asked
            self._decided.set()

    async def wait(self) -> bool:
        await self._decided.wait()
        return bool(self.asked)


class Turn:
    """Drives one request/answer on a session; readers follow `transcript` and `answer`."""

    def __init__(
        self,
        settings: Settings,
        session_ready: Callable[[], Awaitable[RealtimeSession]],
        *,
        respond: bool,
        text: str | None = None,
        tools: Toolset | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.settings = settings
        # Home control: what its response may call, and what it called (see `home/`).
        self.tools = tools or Toolset()
        # Runs the calls itself before the answer ends (hub mode: HA's API); its words end
        # the answer. None: whoever reads the answer decides about the calls afterwards.
        self.on_calls: Callable[[Turn], Awaitable[str]] | None = None
        self._calls_due: tuple[Outcome, str | None] | None = None
        self.calls: tuple[FunctionCall, ...] = ()
        self.reported: tuple[tuple[FunctionCall, str], ...] = ()  # the calls' outputs, told
        self.memory = memory or Memory()
        self.confirmable = self.memory.take()  # risky commands the last turn asked about
        self.commands: list[str] = []  # the commands sent for it, as the page shows them
        self.spoken: str | None = None  # what was said instead of the answer's text
        self.decided = asyncio.Event()  # ... and the commands are known
        self.usage: Usage | None = None  # tokens its responses billed (response.done)
        self.respond = respond
        self.typed_text = text
        self.transcript = TextStream()
        self.answer = TextStream()
        self.outcome: Outcome | None = None
        self.reason: str | None = None
        self.user_item_id: str | None = None
        self.item_ids: tuple[str, ...] = ()  # the response's output items, from response.done
        self._answer_items: list[str] = []  # ... as they were added, before it is done
        self.audio_bytes_sent = 0
        self.audio_ended_at: float | None = None
        self.audio_done = asyncio.Event()  # the user's audio ended, however it was decided
        self.ended_by: str | None = None  # audio-stop, cap, vad or no-speech
        self.speech_started_at: float | None = None  # the API's turn detection heard speech
        self.speech_stopped_at: float | None = None
        self.first_text_at: float | None = None
        self.attempts = 0
        self.claim = Claim()
        self._session_ready = session_ready
        self._session: RealtimeSession | None = None
        self._retries = RetryBudget(settings.realtime.max_retries, settings.realtime.retry_backoff)
        self._deadline: asyncio.Timeout | None = None  # armed at the end of speech
        self._dropped_earlier = 0  # audio deltas dropped on sessions of earlier attempts
        self._dropped_before = 0
        self._dropped_final: int | None = None
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._audio_taken = False  # the queue's end marker was taken: no more audio comes
        self._kept = bytearray()  # the user's audio taken so far, for a retry to send again
        self._filter = ControlTokenFilter()
        self._answer_from_audio: bool | None = None
        self._response_active = False
        self._response_id: str | None = None  # of the response.created we last saw
        self._task: asyncio.Task[None] | None = None
        self._cancelled_as = (Outcome.CANCELLED, "cancelled")
        if text is not None:
            self.transcript.finish(text)

    # -- feeding --------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime turn")

    def feed_audio(self, pcm16: bytes) -> None:
        """Queue converted audio; the turn uploads it while the user is still speaking."""
        if pcm16 and self.audio_ended_at is None:
            self._audio.put_nowait(pcm16)

    def end_audio(self, reason: str = "audio-stop") -> None:
        """The user stopped speaking: commit and respond as soon as the upload catches up.

        reason "no-speech" ends it without a commit: nobody spoke, nothing is asked.
        """
        if self.audio_ended_at is None:
            self.audio_ended_at = time.monotonic()
            self.ended_by = reason
            self._audio.put_nowait(None)
            self.audio_done.set()
            self._arm_deadline()

    @property
    def audio_deltas_dropped(self) -> int:
        """Audio deltas the API sent during this turn, all dropped unread."""
        if self._dropped_final is not None:
            return self._dropped_final
        return self._dropped_earlier + self._dropped_here()

    def _dropped_here(self) -> int:
        if self._session is None:
            return 0
        return self._session.audio_deltas_dropped - self._dropped_before

    @property
    def added_items(self) -> tuple[str, ...]:
        """The items this turn added to its session: the user's words and the answer's."""
        answer = dict.fromkeys((*self._answer_items, *self.item_ids))
        return tuple(i for i in (self.user_item_id, *answer) if i)

    @property
    def ending(self) -> str:
        """How it ended, as the page and the metrics say: the outcome, or `unclaimed`."""
        if self.claim.asked is False:
            return UNCLAIMED  # its answer, if any, reached nobody
        return (self.outcome or Outcome.FALLBACK).value

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> None:
        """Until the turn has ended, however it ended; cancelling the waiter spares the turn.

        Not `shield`: a turn cancelled by its client would cancel every waiter too (the next
        request in its conversation, which then never answered its own client).
        """
        if self._task is not None:
            await asyncio.wait([self._task])

    async def cancel(self, *, fallback: bool = False) -> None:
        """Abandon the turn: stop it and cancel its response upstream.

        `fallback`: a client may still be following the answer (its conversation is being
        closed under it), so the answer ends with the fallback text rather than nothing.
        """
        if fallback:
            self._cancelled_as = (Outcome.FALLBACK, CONVERSATION_CLOSED)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end(*self._cancelled_as)

    # -- running --------------------------------------------------------------------------

    async def _run(self) -> None:
        if self.typed_text is not None:
            self.end_audio("typed")  # its deadline runs from now
        try:
            async with asyncio.timeout(None) as self._deadline:
                self._arm_deadline()
                await self._attempt_until_done()
            self._end(Outcome.COMPLETED, None)
        except TimeoutError:
            _LOGGER.warning(
                "No complete answer within %ss", self.settings.realtime.response_timeout
            )
            await self._cancel_upstream()
            self._end(Outcome.FALLBACK, "timeout")
        except RealtimeError as err:
            self._log_failure(err)
            self._end(Outcome.FALLBACK, err.code)
        except asyncio.CancelledError:
            await self._cancel_upstream()
            self._end(*self._cancelled_as)
            raise
        finally:
            self._deadline = None
            self._kept = bytearray()  # the user's audio is kept no longer than the turn
            # Its conversation holds the turn: without this cycle both are freed at once
            # rather than by the garbage collector's oldest generation (RSS over 10k turns).
            self._session_ready = _turn_ended
            self._dropped_final = self.audio_deltas_dropped
            self._end(Outcome.FALLBACK, "ended")

    def _arm_deadline(self) -> None:
        """Everything after the end of speech, retries included, fits in response_timeout."""
        if self._deadline is not None and self.audio_ended_at is not None:
            left = self.audio_ended_at + self.settings.realtime.response_timeout - time.monotonic()
            self._deadline.reschedule(asyncio.get_running_loop().time() + left)

    def _time_left(self) -> float:
        when = self._deadline.when() if self._deadline is not None else None
        return math.inf if when is None else when - asyncio.get_running_loop().time()

    async def _attempt_until_done(self) -> None:
        """Attempts until one ends the turn; a failure that is not retried is raised."""
        while True:
            try:
                await self._attempt()
                return
            except RealtimeError as err:
                wait = self._retry_wait(err)
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def _attempt(self) -> None:
        """One try: a session, the user's words (unless it has them), a response, its events."""
        self.attempts += 1
        session = self._use(await self._session_ready())
        reader = asyncio.create_task(self._read(session), name="realtime turn reader")
        try:
            if not await self._send_input(session, reader):
                return
            if self.respond:
                self._response_active = True
                await session.create_response(self.tools.tools, self.tools.instructions)
            session.release()
            await asyncio.shield(reader)
        except RealtimeError:
            _stop(reader)
            await asyncio.wait([reader])  # one reader per WebSocket: gone before a retry's
            raise
        finally:
            session.release()
            _stop(reader)

    def _use(self, session: RealtimeSession) -> RealtimeSession:
        """Make `session` this attempt's; a new one has none of the user's words yet."""
        if session is not self._session:
            self._dropped_earlier += self._dropped_here()
            self._session, self._dropped_before = session, session.audio_deltas_dropped
            self.user_item_id, self.item_ids = None, ()
            self._answer_items = []
            self.calls = ()
        self._filter = ControlTokenFilter()  # an attempt's answer starts afresh
        self._answer_from_audio = None
        return session

    def _retry_wait(self, err: RealtimeError) -> float | None:
        """Seconds until the next attempt after `err`; None when it is not retried."""
        self._response_active = False
        if err.fatal or self.answer.text:
            return None  # a refused key stays refused; a half-told answer cannot be retold
        wait = self._retries.wait(err.code, self._time_left())
        if wait is not None:
            reconnect = remedy(err.code) is Remedy.RECONNECT
            _LOGGER.warning(
                "Realtime API error %s: %s (attempt %d); retrying %s",
                err.code,
                err.message,
                self.attempts,
                "at once in a new session" if reconnect else f"in {wait:.2f}s",
            )
        return wait

    def _log_failure(self, err: RealtimeError) -> None:
        """One line for the failure that ended the turn."""
        if err.fatal:
            _LOGGER.warning(
                "The Realtime API refused the key or the account (%s: %s); not retrying",
                err.code,
                err.message,
            )
            return
        after = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        _LOGGER.warning("Realtime API error %s: %s%s", err.code, err.message, after)

    async def _send_input(self, session: RealtimeSession, reader: asyncio.Task[None]) -> bool:
        """The user's words into the session; False when there is nothing to answer."""
        if self.user_item_id is not None:
            return True  # a retry in the same session: it has them already
        if self.typed_text is not None:
            await session.add_user_text(self.typed_text)
            return True
        return await self._upload(session, reader)

    async def _upload(self, session: RealtimeSession, reader: asyncio.Task[None]) -> bool:
        """Send audio as it comes (a retry first sends it all again); commit at its end.

        False when there was nothing to answer.
        """
        if self._kept:
            await session.clear_audio()  # a retry: no half-sent leftovers, then all of it
            for start in range(0, len(self._kept), RESEND_BYTES):
                await session.append_audio(bytes(self._kept[start : start + RESEND_BYTES]))
        while not self._audio_taken:
            pcm = self._with_queued(await self._audio.get())
            if self._audio_taken:
                session.hold()  # the last audio, the commit and response.create: one segment
            if not pcm:
                break
            if self.user_item_id is None:  # audio after the API's own commit is not the turn's
                self._kept += pcm
                self.audio_bytes_sent += len(pcm)
            if reader.done():
                break
            await session.append_audio(pcm)
        if reader.done():
            reader.result()  # surfaces the reader's failure
            return False
        if self.ended_by == "no-speech":
            await session.clear_audio()
            self._end(Outcome.NO_SPEECH, "no_speech")
            return False
        if self.user_item_id is not None:
            # The API's turn detection committed the words itself; audio queued after that
            # moment must not linger in the session's buffer into the next turn.
            await session.clear_audio()
            return True
        if self.audio_bytes_sent < MIN_COMMIT_BYTES:
            _LOGGER.info("Utterance shorter than 100 ms: nothing to transcribe")
            self._end(Outcome.NO_SPEECH, "too_short")
            return False
        await session.commit()
        return True

    def _with_queued(self, first: bytes | None) -> bytes:
        """`first` and all audio queued behind it, as one append rather than one per chunk.

        Nothing waits for more: a turn keeping up sends each chunk as it comes, one that fell
        behind (its last chunk and audio-stop read together, a busy server) catches up at once.
        """
        parts = []
        pcm = first
        while pcm is not None:
            parts.append(pcm)
            if self._audio.empty():
                return b"".join(parts)
            pcm = self._audio.get_nowait()
        self._audio_taken = True  # the end marker: no more audio comes
        return b"".join(parts)

    async def _read(self, session: RealtimeSession) -> None:
        while not (self.transcript.done and (self.answer.done or not self.respond)):
            self._handle(await session.receive())
            # The calls run once the user's words are known too (a "yes" confirms by them).
            if self._calls_due is not None and self.transcript.done:
                await self._run_calls(*self._calls_due)

    async def _run_calls(self, outcome: Outcome, reason: str | None) -> None:
        """The calls run by `on_calls`; what it says ends the answer."""
        self._calls_due = None
        assert self.on_calls is not None
        try:
            said = await self.on_calls(self)
        except Exception as err:
            _LOGGER.warning("Running the commands failed: %s", err)
            said = self.settings.fallback_text
        if said:
            self.answer.push(f" {said}" if self.answer.text.strip() else said)
        self._end_answer(outcome, reason)

    def _handle(self, event: RealtimeEvent) -> None:
        if isinstance(event, InputCommitted):
            self.user_item_id = event.item_id
            self.end_audio("vad")  # no-op when we committed; else the API's VAD decided
        elif isinstance(event, SpeechStarted):
            self.speech_started_at = self.speech_started_at or time.monotonic()
        elif isinstance(event, SpeechStopped):
            self.speech_stopped_at = time.monotonic()
        elif isinstance(event, ItemAdded):
            if event.role == "user" and self.user_item_id is None:
                self.user_item_id = event.item_id
            elif event.role == "assistant":
                self._answer_items.append(event.item_id)
        elif isinstance(event, InputTranscriptDelta):
            if self.attempts == 1 or not self.transcript.text:
                self.transcript.push(event.text)  # a retry's deltas would repeat the first's
        elif isinstance(event, InputTranscriptDone):
            self.transcript.finish(event.text.strip())
        elif isinstance(event, InputTranscriptFailed):
            _LOGGER.warning("Transcription of the user's speech failed: %s", event.message)
            self.transcript.finish("")
        elif isinstance(event, TextDelta):
            self._push_answer(event.text, event.from_audio)
        elif isinstance(event, TextDone):
            if not self.answer.text:
                self._push_answer(event.text, event.from_audio)
        elif isinstance(event, ResponseDone):
            self._response_done(event)
        elif isinstance(event, UpstreamError):
            self._upstream_error(event)
        elif isinstance(event, ResponseCreated):
            self._response_id = event.response_id
            _LOGGER.debug("Response %s started", event.response_id)

    def _push_answer(self, text: str, from_audio: bool) -> None:
        """Answer text from the text part, or from the audio transcript if that is all we get."""
        if self._answer_from_audio is None:
            self._answer_from_audio = from_audio
            if from_audio:
                _LOGGER.info("The response came as audio despite text-only: using its transcript")
        if from_audio != self._answer_from_audio:
            return
        clean = self._filter.feed(text)
        if clean and self.first_text_at is None:
            self.first_text_at = time.monotonic()
        self.answer.push(clean)

    def _response_done(self, event: ResponseDone) -> None:
        self._response_active = False
        self.item_ids = event.item_ids
        self.calls = event.calls
        if event.usage is not None:  # every attempt's responses were billed
            self.usage = event.usage if self.usage is None else self.usage + event.usage
        self.answer.push(self._filter.flush())
        if not self.answer.text.strip() and event.text:
            self.answer.push(strip_control_tokens(event.text))
        # Calls are an answer even without a word: what to say about them is decided by
        # whoever sends them on (`home/plan.py`), never the fallback.
        has_text = bool(self.answer.text.strip()) or bool(self.calls)
        if self.calls and self.on_calls is not None and event.status != "failed":
            ending = Outcome.COMPLETED if event.status == "completed" else Outcome.INCOMPLETE
            self._calls_due = (ending, None if event.status == "completed" else event.reason)
            return  # the answer ends once they have run (`_read`)
        if event.status == "completed" and has_text:
            self._end_answer(Outcome.COMPLETED, None)
        elif event.status == "incomplete" and has_text:
            _LOGGER.info("Response incomplete (%s): delivering the text it produced", event.reason)
            self._end_answer(Outcome.INCOMPLETE, event.reason)
        elif event.status == "failed":  # like an error event: ends (or retries) the attempt
            raise RealtimeError(event.error_code or "failed", event.error or "the response failed")
        else:
            detail = event.error or event.reason or "empty"
            _LOGGER.warning("Response %s without text (%s)", event.status, detail)
            self._end_answer(Outcome.FALLBACK, f"{event.status}:{detail}")

    async def report(self, outputs: Sequence[tuple[FunctionCall, str]]) -> None:
        """What became of each call, into the conversation right after the call.

        No response is asked for (one round trip): the model reads them with the next
        request, so "and the bedroom too" or "turn it off again" make sense to it. Their
        items are the turn's, deleted with it when the history is trimmed.
        """
        self.reported = (*self.reported, *outputs)  # kept for a new session's history
        session = self._session
        if session is None or not session.is_open:
            return
        for call, output in outputs:
            item_id = f"out_{uuid.uuid4().hex[:24]}"
            with contextlib.suppress(RealtimeError):
                await session.add_function_output(call, output, item_id)
                self.item_ids = (*self.item_ids, item_id)

    def _upstream_error(self, event: UpstreamError) -> None:
        if event.code in HARMLESS_CODES:
            _LOGGER.debug("Ignoring harmless Realtime error %s", event.code)
            return
        if event.code == "input_audio_buffer_commit_empty":
            if self.user_item_id is not None:
                return  # our commit came after the API's turn detection had committed
            self._end(Outcome.NO_SPEECH, event.code)
            return
        raise RealtimeError(event.code, event.message)  # ends (or retries) the attempt

    async def _cancel_upstream(self) -> None:
        if self._session is not None and self._response_active:
            self._response_active = False
            with contextlib.suppress(RealtimeError):
                await self._session.cancel_response(self._response_id)

    def _end_answer(self, outcome: Outcome, reason: str | None) -> None:
        """End the answer once; an answer-less ending speaks the fallback text."""
        if self.outcome is not None:
            return
        self.outcome, self.reason = outcome, reason
        if outcome is Outcome.FALLBACK and self.respond:
            partial = self.answer.text.strip()
            fatal = reason in FATAL_CODES or reason in ("http_401", "http_403")
            fallback = self.settings.key_error_text if fatal else self.settings.fallback_text
            self.answer.push(f" {fallback}" if partial else fallback)
        self.answer.finish()

    def _end(self, outcome: Outcome, reason: str | None) -> None:
        """End the whole turn: the transcript keeps whatever it had by now."""
        self._end_answer(outcome, reason)
        self.transcript.finish()


async def _turn_ended() -> RealtimeSession:
    raise RealtimeError("closed", "the turn has ended")


def _stop(reader: asyncio.Task[None]) -> None:
    """Cancel `reader`, or retrieve its failure (the shield or the upload raised it already)."""
    if not reader.done():
        reader.cancel()
    elif not reader.cancelled():
        reader.exception()
