"""One Wyoming connection: describe, STT, conversation agent and run-pipeline.

The handler only translates between Wyoming events and turns; audio conversion lives in
`audio.py`, the Realtime session in `realtime/`, and the one-round-trip bookkeeping in
`conversations.py`. Writing to the client happens in tasks so that the connection keeps
being read (and a vanished client is noticed) while an answer streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.server import AsyncEventHandler

from .audio import AudioConverter, AudioFormatError, check_format
from .config import Settings
from .conversations import Assistant
from .turn import Outcome, Turn

_LOGGER = logging.getLogger(__name__)
_ANSWER_STAGES = (PipelineStage.INTENT, PipelineStage.HANDLE, PipelineStage.TTS)


class RealtimeTextHandler(AsyncEventHandler):
    """Serves one client (Home Assistant, a satellite, a screen) for its whole connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        settings: Settings,
        info: Event,
        assistant: Assistant,
    ) -> None:
        super().__init__(reader, writer)
        peer = writer.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local client"
        self.settings = settings
        self.info = info
        self.assistant = assistant
        self._language: str | None = None
        self._pipeline: RunPipeline | None = None
        self._conversation_id = f"wyoming-{uuid.uuid4().hex[:12]}"
        self._turn: Turn | None = None
        self._converter = AudioConverter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.info)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            self._language = Transcribe.from_event(event).language
            self._pipeline = None
        elif RunPipeline.is_type(event.type):
            return await self._run_pipeline(event)
        elif AudioStart.is_type(event.type):
            return await self._audio_start(AudioStart.from_event(event))
        elif AudioChunk.is_type(event.type):
            return await self._audio_chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            self._end_audio()
        elif Transcript.is_type(event.type):
            self._spawn(self._answer_transcript(Transcript.from_event(event)))
        else:
            _LOGGER.debug("%s: ignoring %s", self.client, event.type)
        return True

    async def disconnect(self) -> None:
        """The client left: stop writing to it, and drop work only it was waiting for."""
        turn = self._turn
        owned = self._pipeline is not None or (turn is not None and turn.audio_ended_at is None)
        if turn is not None and owned and not turn.finished:
            await turn.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- requests -------------------------------------------------------------------------

    async def _run_pipeline(self, event: Event) -> bool:
        try:
            pipeline = RunPipeline.from_event(event)
        except (ValueError, KeyError) as err:
            await self._error(f"invalid run-pipeline: {err}", "bad-request")
            return True
        if pipeline.start_stage != PipelineStage.ASR:
            await self._error(
                f"start stage {pipeline.start_stage.value!r} is not supported; "
                "send audio with start_stage 'asr' (use a local wake word)",
                "unsupported-stage",
            )
            return True
        self._pipeline = pipeline
        return True

    async def _audio_start(self, start: AudioStart) -> bool:
        if not await self._check_format(start.rate, start.width, start.channels):
            return False
        if self._turn is not None and self._turn.audio_ended_at is None:
            _LOGGER.debug("%s: audio-start during an utterance; continuing it", self.client)
            return True
        pipeline = self._pipeline
        respond = (
            pipeline.end_stage in _ANSWER_STAGES
            if pipeline is not None
            else self.settings.conversation.one_round_trip
        )
        self._converter = AudioConverter()
        self._turn = await self.assistant.start_audio_turn(
            self._language,
            self._conversation_id if pipeline is not None else None,
            respond=respond,
        )
        return True

    async def _audio_chunk(self, chunk: AudioChunk) -> bool:
        turn = self._turn
        if turn is None:
            await self._error("audio-chunk before audio-start", "bad-request")
            return False
        if turn.audio_ended_at is not None:
            return True  # past the utterance cap: dropped, never buffered
        if not await self._check_format(chunk.rate, chunk.width, chunk.channels):
            await turn.cancel()
            return False
        turn.feed_audio(
            self._converter.convert(chunk.audio, chunk.rate, chunk.width, chunk.channels)
        )
        if self._converter.input_seconds >= self.settings.audio.max_utterance_seconds:
            _LOGGER.warning(
                "%s: utterance reached audio.max_utterance_seconds (%ss); ending it there",
                self.client,
                self.settings.audio.max_utterance_seconds,
            )
            self._end_audio()
        return True

    def _end_audio(self) -> None:
        turn = self._turn
        if turn is None or turn.audio_ended_at is not None:
            return
        turn.feed_audio(self._converter.flush())
        turn.end_audio()
        pipeline = self._pipeline
        if pipeline is None:
            self._spawn(self._send_transcript(turn))
        else:
            self._spawn(self._pipeline_output(turn, pipeline))

    async def _answer_transcript(self, request: Transcript) -> None:
        """Home Assistant's conversation agent call: transcript in, streamed answer out."""
        if not request.text.strip():
            await self.write_event(NotHandled(text="There was nothing to answer.").event())
            return
        context = request.context or {}
        conversation_id = context.get("conversation_id")
        language = context.get("language") or request.language
        started = time.monotonic()
        turn = await self.assistant.answer(request.text, conversation_id, language)
        await self._send_answer(turn, request.context)
        self._log_turn(turn, request.text, started)

    # -- responses ------------------------------------------------------------------------

    async def _send_transcript(self, turn: Turn) -> str:
        await self.write_event(TranscriptStart(language=self._language).event())
        async for part in turn.transcript.follow():
            await self.write_event(TranscriptChunk(text=part).event())
        text = turn.transcript.text
        await self.write_event(Transcript(text=text, language=self._language).event())
        await self.write_event(TranscriptStop().event())
        return text

    async def _send_answer(self, turn: Turn, context: dict[str, Any] | None) -> None:
        await self.write_event(HandledStart(context=context).event())
        async for part in turn.answer.follow():
            await self.write_event(HandledChunk(text=part).event())
        text = turn.answer.text.strip()
        await self.write_event(Handled(text=text, context=context).event())
        await self.write_event(HandledStop().event())

    async def _pipeline_output(self, turn: Turn, pipeline: RunPipeline) -> None:
        started = time.monotonic()
        transcript = await self._send_transcript(turn)
        if pipeline.end_stage not in _ANSWER_STAGES:
            return
        if not transcript.strip():
            await turn.cancel()
            await self._error("no speech was recognized", "stt-no-text-recognized")
            return
        await self._send_answer(turn, {"conversation_id": self._conversation_id})
        self._log_turn(turn, transcript, started)

    # -- helpers --------------------------------------------------------------------------

    async def _check_format(self, rate: int, width: int, channels: int) -> bool:
        try:
            check_format(rate, width, channels)
        except AudioFormatError as err:
            await self._error(str(err), "audio-format")
            return False
        return True

    async def _error(self, text: str, code: str) -> None:
        _LOGGER.warning("%s: %s", self.client, text)
        await self.write_event(Error(text=text, code=code).event())

    def _log_turn(self, turn: Turn, heard: str, started: float) -> None:
        outcome = turn.outcome or Outcome.FALLBACK
        _LOGGER.info(
            "%s: %r → %r (%s%s, %.2fs, %d audio deltas dropped)",
            self.client,
            heard[:80],
            turn.answer.text.strip()[:80],
            outcome.value,
            f": {turn.reason}" if turn.reason else "",
            time.monotonic() - started,
            turn.audio_deltas_dropped,
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except (ConnectionError, RuntimeError) as err:
            _LOGGER.debug("%s: client gone while writing: %s", self.client, err)
