"""One utterance (spoken or typed) and the assistant's answer, on one Realtime session.

A turn streams the user's audio upstream as it arrives, commits and asks for a text-only
response the moment the audio ends, and turns whatever comes back into two live text
streams: the user's transcript and the assistant's answer. Every way it can end, including
errors, disconnects and silence, finishes both streams within the response timeout, with
the fallback text where the answer would otherwise be empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from .config import Settings
from .realtime.events import (
    FATAL_CODES,
    InputCommitted,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
    ItemAdded,
    RealtimeError,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SpeechStopped,
    TextDelta,
    TextDone,
    UpstreamError,
)
from .realtime.session import RealtimeSession
from .stream import TextStream
from .text import ControlTokenFilter, strip_control_tokens

_LOGGER = logging.getLogger(__name__)

# pcm16 24 kHz mono: the API refuses to commit less than 100 ms.
MIN_COMMIT_BYTES = 4800
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


class Turn:
    """Drives one request/answer on a session; readers follow `transcript` and `answer`."""

    def __init__(
        self,
        settings: Settings,
        session_ready: Callable[[], Awaitable[RealtimeSession]],
        *,
        respond: bool,
        text: str | None = None,
    ) -> None:
        self.settings = settings
        self.respond = respond
        self.typed_text = text
        self.transcript = TextStream()
        self.answer = TextStream()
        self.outcome: Outcome | None = None
        self.reason: str | None = None
        self.user_item_id: str | None = None
        self.item_ids: tuple[str, ...] = ()
        self.audio_bytes_sent = 0
        self.audio_ended_at: float | None = None
        self.audio_done = asyncio.Event()  # the user's audio ended, however it was decided
        self.ended_by: str | None = None  # audio-stop, cap, vad or no-speech
        self.speech_stopped_at: float | None = None
        self.first_text_at: float | None = None
        self._session_ready = session_ready
        self._session: RealtimeSession | None = None
        self._dropped_before = 0
        self._dropped_final: int | None = None
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._filter = ControlTokenFilter()
        self._answer_from_audio: bool | None = None
        self._response_active = False
        self._task: asyncio.Task[None] | None = None
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

    @property
    def audio_deltas_dropped(self) -> int:
        """Audio deltas the API sent during this turn, all dropped unread."""
        if self._dropped_final is not None:
            return self._dropped_final
        if self._session is None:
            return 0
        return self._session.audio_deltas_dropped - self._dropped_before

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def cancel(self) -> None:
        """Abandon the turn (the client left): stop it and cancel its response upstream."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end(Outcome.CANCELLED, "cancelled")

    # -- running --------------------------------------------------------------------------

    async def _run(self) -> None:
        reader: asyncio.Task[None] | None = None
        try:
            self._session = session = await self._session_ready()
            self._dropped_before = session.audio_deltas_dropped
            reader = asyncio.create_task(self._read(session), name="realtime turn reader")
            try:
                if self.typed_text is None:
                    if not await self._upload(session, reader):
                        return
                else:
                    self.end_audio("typed")
                    await session.add_user_text(self.typed_text)
                if self.respond:
                    self._response_active = True
                    await session.create_response()
                async with asyncio.timeout(self.settings.realtime.response_timeout):
                    await asyncio.shield(reader)
                self._end(Outcome.COMPLETED, None)
            finally:
                self._dropped_final = self.audio_deltas_dropped
        except TimeoutError:
            _LOGGER.warning(
                "No complete answer within %ss", self.settings.realtime.response_timeout
            )
            await self._cancel_upstream()
            self._end(Outcome.FALLBACK, "timeout")
        except RealtimeError as err:
            _LOGGER.warning("Realtime session failed: %s", err.message)
            self._end(Outcome.FALLBACK, err.code)
        except asyncio.CancelledError:
            await self._cancel_upstream()
            self._end(Outcome.CANCELLED, "cancelled")
            raise
        finally:
            if reader is not None:
                if reader.done():
                    if not reader.cancelled():
                        reader.exception()  # retrieved: its failure was handled above
                else:
                    reader.cancel()
            self._end(Outcome.FALLBACK, "ended")

    async def _upload(self, session: RealtimeSession, reader: asyncio.Task[None]) -> bool:
        """Send audio as it comes; commit at its end. False when there was nothing to answer."""
        while (pcm := await self._audio.get()) is not None:
            if reader.done():
                break
            await session.append_audio(pcm)
            self.audio_bytes_sent += len(pcm)
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

    async def _read(self, session: RealtimeSession) -> None:
        while not (self.transcript.done and (self.answer.done or not self.respond)):
            self._handle(await session.receive())

    def _handle(self, event: RealtimeEvent) -> None:
        if isinstance(event, InputCommitted):
            self.user_item_id = event.item_id
            self.end_audio("vad")  # no-op when we committed; else the API's VAD decided
        elif isinstance(event, SpeechStopped):
            self.speech_stopped_at = time.monotonic()
        elif isinstance(event, ItemAdded):
            if event.role == "user" and self.user_item_id is None:
                self.user_item_id = event.item_id
        elif isinstance(event, InputTranscriptDelta):
            self.transcript.push(event.text)
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
        self.answer.push(self._filter.flush())
        if not self.answer.text.strip() and event.text:
            self.answer.push(strip_control_tokens(event.text))
        if event.status == "completed" and self.answer.text.strip():
            self._end_answer(Outcome.COMPLETED, None)
        elif event.status == "incomplete" and self.answer.text.strip():
            _LOGGER.info("Response incomplete (%s): delivering the text it produced", event.reason)
            self._end_answer(Outcome.INCOMPLETE, event.reason)
        else:
            detail = event.error or event.reason or "empty"
            _LOGGER.warning("Response %s without text (%s)", event.status, detail)
            self._end_answer(Outcome.FALLBACK, f"{event.status}:{detail}")

    def _upstream_error(self, event: UpstreamError) -> None:
        if event.code in HARMLESS_CODES:
            _LOGGER.debug("Ignoring harmless Realtime error %s", event.code)
            return
        if event.code == "input_audio_buffer_commit_empty":
            if self.user_item_id is not None:
                return  # our commit came after the API's turn detection had committed
            self._end(Outcome.NO_SPEECH, event.code)
            return
        _LOGGER.warning("Realtime API error %s: %s", event.code, event.message)
        self._end(Outcome.FALLBACK, event.code)

    async def _cancel_upstream(self) -> None:
        if self._session is not None and self._response_active:
            self._response_active = False
            with contextlib.suppress(RealtimeError):
                await self._session.cancel_response()

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
