"""One client's voice requests: audio in → a turn → transcript, answer text and speech out.

Shared by a Wyoming connection (`handler.py`) and a satellite link (`satellites.py`): both
receive the same audio events and run the same turns; they differ only in which events go
back. A Wyoming client gets the streaming variants (transcript-chunk, handled-chunk) and, for
the tts end stage, the speech; a satellite gets what Home Assistant sends one: `transcript`
(which stops its microphone stream), the speech, and `synthesize` with the text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.tts import Synthesize

from .activity import client_name
from .audio import AudioConverter, AudioFormatError, check_format
from .config import Settings
from .conversations import Assistant
from .home.peer import Peer
from .logs import TURN_FIELDS
from .tts import TtsError, TtsRelay
from .turn import Outcome, Turn
from .vad import VAD_RATE, SpeechDetector
from .wake import WakeError, WakeListener

_LOGGER = logging.getLogger(__name__)
ANSWER_STAGES = (PipelineStage.INTENT, PipelineStage.HANDLE, PipelineStage.TTS)
WriteEvent = Callable[[Event], Awaitable[None]]


class VoicePipeline:
    """Runs one utterance at a time for one client and streams the results back to it."""

    def __init__(
        self,
        settings: Settings,
        assistant: Assistant,
        write: WriteEvent,
        *,
        label: str,
        conversation_id: str,
        satellite: bool = False,
        area: str | None = None,
    ) -> None:
        self.settings = settings
        self.assistant = assistant
        self.write = write
        self.label = label
        self.conversation_id = conversation_id
        self.satellite = satellite
        self.area = area  # a satellite's, for a command that names no place
        self.language: str | None = None
        self.peer: Peer | None = None  # an STT request's Home Assistant
        self.request: RunPipeline | None = None
        self.turn: Turn | None = None
        self.tts = TtsRelay(settings.tts) if settings.tts.uri else None
        self._converter = AudioConverter()
        self._speech: SpeechDetector | None = None
        self._refused = False  # the last run-pipeline was refused: ignore its audio
        self._wake: WakeListener | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Turns only this client waits for (pipeline requests; HA's STT turns until their
        # transcript is out, when they are parked for the agent): cancelled if it leaves.
        self._owned: set[Turn] = set()

    # -- requests -------------------------------------------------------------------------

    def transcribe(self, language: str | None, peer: Peer | None = None) -> None:
        """Home Assistant's STT request: the next audio is one utterance to transcribe.

        `peer`: the HA asking, whose agent request will claim the answer (home control).
        """
        self.language = language
        self.peer = peer
        self.request = None
        self._refused = False

    async def run_pipeline(self, request: RunPipeline) -> None:
        await self._stop_wake()
        self._refused = True  # until accepted: its audio is dropped quietly, not per chunk
        if request.start_stage == PipelineStage.WAKE and not self.settings.wake.uri:
            await self.error(
                "no wake word service is configured here: use a local wake word on the "
                "satellite, or set wake.uri (e.g. openWakeWord)",
                "wake-not-configured",
            )
            return
        if request.start_stage not in (PipelineStage.WAKE, PipelineStage.ASR):
            await self.error(
                f"start stage {request.start_stage.value!r} is not supported; "
                "send audio from the asr or wake stage",
                "unsupported-stage",
            )
            return
        self._refused = False
        self.request = request
        self.peer = None
        self.turn = None  # the next audio starts a new utterance (after the wake word)

    async def audio_start(self, start: AudioStart) -> bool:
        """Begin an utterance; False (after an error event) when the format is unusable."""
        if not await self._check_format(start.rate, start.width, start.channels):
            return False
        if self.turn is None or self.turn.audio_ended_at is not None:
            await self._start_turn()
        return True

    async def audio_chunk(self, chunk: AudioChunk) -> bool:
        """Feed audio upstream as it arrives; False (after an error event) on bad input."""
        if self._refused:
            return True
        if self.turn is None and self._waits_for_wake():
            return await self._listen_for_wake(chunk)
        if self.turn is None:
            if self.request is None:
                await self.error("audio-chunk before audio-start", "bad-request")
                return False
            await self._start_turn()  # satellites stream without audio-start
        turn = self.turn
        assert turn is not None
        if turn.audio_ended_at is not None:
            return True  # past the utterance cap: dropped, never buffered
        try:  # the converter checks each format it has not seen yet
            pcm = self._converter.convert(chunk.audio, chunk.rate, chunk.width, chunk.channels)
        except AudioFormatError as err:
            await self.error(str(err), "audio-format")
            await turn.cancel()
            return False
        turn.feed_audio(pcm)
        speech = self._speech
        if speech is not None and not speech.done:
            if turn.speech_started_at is not None:
                speech.stop()  # the API's own turn detection heard speech: no room is silent
            elif (chunk.rate, chunk.width, chunk.channels) == (VAD_RATE, 2, 1):
                speech.feed(chunk.audio, VAD_RATE)  # as the detector wants it
            else:
                speech.feed(pcm, AudioConverter.OUT_RATE)
        if self._converter.input_seconds >= self.settings.audio.max_utterance_seconds:
            _LOGGER.warning(
                "%s: utterance reached audio.max_utterance_seconds (%ss); ending it there",
                self.label,
                self.settings.audio.max_utterance_seconds,
            )
            turn.end_audio("cap")
        return True

    def end_audio(self) -> None:
        """The client says the speaker is done (audio-stop): commit upstream now."""
        turn = self.turn
        if turn is not None and turn.audio_ended_at is None:
            turn.feed_audio(self._converter.flush())
            turn.end_audio("audio-stop")

    @property
    def streaming(self) -> bool:
        """Mid-utterance: more audio is due from the client (a silence is a stall)."""
        return self.turn is not None and self.turn.audio_ended_at is None

    @property
    def tasks(self) -> frozenset[asyncio.Task[None]]:
        """What is being sent to the client now (transcripts, answers, speech)."""
        return frozenset(self._tasks)

    def _waits_for_wake(self) -> bool:
        return self.request is not None and self.request.start_stage == PipelineStage.WAKE

    async def _listen_for_wake(self, chunk: AudioChunk) -> bool:
        """Audio goes to the wake service only; the turn starts after the wake word."""
        if self._wake is None:
            self._wake = WakeListener(self.settings.wake, self.request.wake_word_names)
        try:
            await self._wake.feed(chunk)
        except WakeError as err:
            await self._stop_wake()
            self._refused = True
            await self.error(str(err), "wake-failed")
            return True
        if self._wake.detected:
            _LOGGER.info("%s: wake word %r", self.label, self._wake.detection.name)
            await self._stop_wake()
            await self._start_turn()
        elif self._wake.failed:
            await self._stop_wake()  # the service ended the session: start a new one
        return True

    async def _stop_wake(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            await wake.close()

    async def close(self) -> None:
        """The client left: stop writing to it, and drop work only it was waiting for."""
        await self._stop_wake()
        for owned in list(self._owned):
            if not owned.finished:
                await owned.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # The connection holds this pipeline and `write` holds the connection (the detector
        # holds a callback into it): break the cycles so all are freed now, not by the
        # garbage collector's oldest generation.
        self.write = _discard
        if self._speech is not None:
            self._speech.stop()
            self._speech = None

    # -- results --------------------------------------------------------------------------

    async def _start_turn(self) -> None:
        request = self.request
        if request is None:
            respond = self.settings.conversation.one_round_trip
        else:
            respond = request.end_stage in ANSWER_STAGES
        self._converter = AudioConverter()
        # HA's STT requests carry no conversation (their turns are parked for the agent)
        # and end with audio-stop or, with ha_turns: api, when the API's turn detection
        # commits (their sessions have it on: `Assistant.pools`); pipeline requests are
        # streams the API's turn detection ends (or their own audio-stop).
        streamed = request is not None
        home = self.assistant.home
        # HA's STT turn: HA runs the calls (its agent request decides); a stream of ours:
        # through HA's API, if this client may act on the home at all.
        runs = None
        if streamed:
            runs = home.for_client(client_name(self.label), satellite=self.satellite)
        self.turn = turn = await self.assistant.start_audio_turn(
            self.language,
            self.conversation_id if streamed else None,
            respond=respond,
            vad=streamed,
            client=client_name(self.label),
            tools=home.tools(runs if streamed else self.peer),
        )
        if runs is not None:
            turn.on_calls = home.runner(self.language, self.area)
        # Whenever the API's turn detection may end the turn (streams; HA's STT turns with
        # ha_turns: api), the local detector ends one in which nobody speaks: the API
        # would wait for speech as long as the audio comes. HA's audio-stop ends the rest.
        if streamed or self.settings.turn_detection.ha_turns == "api":
            self._speech = self._speech or SpeechDetector()
            limit = self.settings.turn_detection.no_speech_seconds
            self._speech.start(limit, partial(self._no_speech, turn, limit))
        else:
            self._speech = None
        self.assistant.activity.track(self.label, turn)
        # Owned by this client until someone else may want it: a stream's answer comes back
        # on this connection; an STT turn's answer is HA's agent request's once the
        # transcript is out (before that, HA has nothing to ask it with).
        self._owned = {t for t in self._owned if not t.finished} | {turn}
        self.spawn(self._after_audio(turn, request))

    def _no_speech(self, turn: Turn, seconds: float) -> None:
        """The local detector heard nobody in the first `seconds`: nothing is asked."""
        if turn.audio_ended_at is None:
            _LOGGER.info("%s: no speech in %.1fs; ending the turn here", self.label, seconds)
            turn.end_audio("no-speech")

    async def _after_audio(self, turn: Turn, request: RunPipeline | None) -> None:
        """Once the audio has ended (audio-stop, the API's VAD, no speech, the cap)."""
        await turn.audio_done.wait()
        if self._waits_for_wake() and request is self.request and request.restart_on_end:
            self.turn = None  # a streaming satellite: listen for the wake word again
        if request is None:
            await self._send_transcript(turn, hand_over=True)
        else:
            await self._respond(turn, request)

    async def _send_transcript(self, turn: Turn, *, hand_over: bool = False) -> str:
        """The user's words to the client; `hand_over`: then the turn is no longer its own."""
        if not self.satellite:
            await self.write(TranscriptStart(language=self.language).event())
            async for part in turn.transcript.follow():
                await self.write(TranscriptChunk(text=part).event())
        text = await turn.transcript.wait()
        if hand_over:
            # HA's agent request may claim the answer once HA has the words; HA hangs up as
            # soon as it reads them, which must not cancel the answer (an unclaimed one is
            # given up at claim_seconds).
            self._owned.discard(turn)
        await self.write(Transcript(text=text, language=self.language).event())
        if not self.satellite:
            await self.write(TranscriptStop().event())
        return text

    async def _respond(self, turn: Turn, request: RunPipeline) -> None:
        started = time.monotonic()
        transcript = await self._send_transcript(turn)
        if request.end_stage not in ANSWER_STAGES:
            return
        # No words, and not because the service failed (then the user did speak: they get
        # the fallback answer below, not a claim that nobody spoke).
        if not transcript.strip() and turn.outcome is not Outcome.FALLBACK:
            await turn.cancel()
            await self.error("no speech was recognized", "stt-no-text-recognized")
            return
        outputs = [self._send_answer(turn)]
        if request.end_stage == PipelineStage.TTS:
            outputs.append(self._speak(turn))
        await asyncio.gather(*outputs)
        log_turn(self.label, turn, transcript, started)

    async def _send_answer(self, turn: Turn) -> None:
        if self.satellite:  # informational for the satellite's event service (a screen)
            await self.write(Synthesize(text=(await turn.answer.wait()).strip()).event())
        else:
            await send_answer(self.write, turn, {"conversation_id": self.conversation_id})

    async def _speak(self, turn: Turn) -> None:
        """The answer as TTS audio, streamed while it is written; text is sent regardless."""
        if self.tts is None:
            await self.error("no TTS is configured here (set tts.uri)", "tts-not-configured")
            return
        try:
            await self.tts.speak(turn.answer, self.write)
        except TtsError as err:
            await self.error(str(err), "tts-failed")

    # -- helpers --------------------------------------------------------------------------

    async def _check_format(self, rate: int, width: int, channels: int) -> bool:
        try:
            check_format(rate, width, channels)
        except AudioFormatError as err:
            await self.error(str(err), "audio-format")
            return False
        return True

    async def error(self, text: str, code: str) -> None:
        _LOGGER.warning("%s: %s", self.label, text)
        await self.write(Error(text=text, code=code).event())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: coro.close())  # cancelled before it ran: not a warning

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except (ConnectionError, RuntimeError) as err:
            _LOGGER.debug("%s: client gone while writing: %s", self.label, err)


async def _discard(event: Event) -> None:
    """Where a closed pipeline's writes go (nowhere)."""


Ending = Callable[[Turn], Awaitable[list[Event] | None]]


async def send_answer(
    write: WriteEvent, turn: Turn, context: dict[str, Any] | None, ending: Ending | None = None
) -> None:
    """handled-start, handled-chunk* as the answer streams, handled (what HA speaks), stop.

    `ending`: other final events for a turn that called tools (`HomeControl.answer`).

    A fallback answer's `handled` also says so (`fallback: true`, `fallback_reason`), for a
    client to tell it from the model's (`ask` exits 3); readers of `handled` (Home
    Assistant's `Handled.from_event`) take its text and context only.
    """
    await write(HandledStart(context=context).event())
    async for part in turn.answer.follow():
        await write(HandledChunk(text=part).event())
    events = await ending(turn) if ending is not None else None
    if events is None:
        events = [Handled(text=turn.answer.text.strip(), context=context).event()]
        events.append(HandledStop().event())
    for event in events:
        if turn.outcome is Outcome.FALLBACK and Handled.is_type(event.type):
            event.data["fallback"] = True
            if turn.reason:
                event.data["fallback_reason"] = turn.reason
        await write(event)


def shorten(text: str, limit: int = 80) -> str:
    """`text`, or its first `limit` - 1 characters and "…" when it is longer (for a log line)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_turn(label: str, turn: Turn, heard: str, started: float) -> None:
    """One info line per turn: who, what, outcome, how long, audio dropped.

    With `--log-format json` the same facts are also fields of the line (`turn`), whole,
    for a log collector to query.
    """
    outcome = turn.outcome or Outcome.FALLBACK
    seconds = time.monotonic() - started
    answer = (turn.spoken if turn.spoken is not None else turn.answer.text).strip()
    fields = {
        "client": label,
        "transcript": heard,
        "answer": answer,
        "outcome": outcome.value,
        "reason": turn.reason,
        "seconds": round(seconds, 3),
        "ended_by": turn.ended_by,  # who ended the user's audio: vad, audio-stop, ...
        "audio_deltas_dropped": turn.audio_deltas_dropped,
        "commands": turn.commands,
    }
    sent = f" [{'; '.join(turn.commands)}]" if turn.commands else ""
    _LOGGER.info(
        "%s: %r → %r%s (%s%s, %.2fs, %d audio deltas dropped)",
        label,
        shorten(heard),
        shorten(answer),
        sent,
        outcome.value,
        f": {turn.reason}" if turn.reason else "",
        seconds,
        turn.audio_deltas_dropped,
        extra={TURN_FIELDS: fields},
    )
