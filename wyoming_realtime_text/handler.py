"""One Wyoming connection: describe, STT, conversation agent and run-pipeline.

The handler only routes events: audio and run-pipeline go to the connection's
`VoicePipeline`; an agent request (`transcript` in) is answered from a turn that
`conversations.Assistant` hands out. Writing happens in tasks, so the connection keeps being
read (and a vanished client is noticed) while an answer streams. Reading, with its limits
(bad frames, sizes, stalls, idleness), is `limits.GuardedHandler`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Collection
from functools import partial
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import NotHandled
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.pipeline import RunPipeline

from .activity import client_name
from .config import Settings
from .conversations import Assistant
from .home.peer import Peer
from .info import build_info
from .limits import GuardedHandler, HandlerFactory
from .pipeline import VoicePipeline, log_turn, send_answer

_LOGGER = logging.getLogger(__name__)


class RealtimeTextHandler(GuardedHandler):
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
        super().__init__(reader, writer, settings)
        self.info = info
        self.assistant = assistant
        self.voice = VoicePipeline(
            settings,
            assistant,
            self.write_event,
            label=self.client,
            conversation_id=f"wyoming-{uuid.uuid4().hex[:12]}",
        )
        assistant.activity.connected(self.client)

    async def handle_event(self, event: Event) -> bool:
        if AudioChunk.is_type(event.type):  # first: 50 a second from every streaming client
            return await self.voice.audio_chunk(AudioChunk.from_event(event))
        if Describe.is_type(event.type):
            await self.write_event(self.info)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            request = Transcribe.from_event(event)
            _strings(language=request.language)
            self.voice.transcribe(request.language, Peer.speaking(self.guard.header_version()))
        elif RunPipeline.is_type(event.type):
            try:
                await self.voice.run_pipeline(RunPipeline.from_event(event))
            except (ValueError, KeyError) as err:
                await self.voice.error(f"invalid run-pipeline: {err}", "bad-request")
        elif AudioStart.is_type(event.type):
            return await self.voice.audio_start(AudioStart.from_event(event))
        elif AudioStop.is_type(event.type):
            self.voice.end_audio()
        elif Transcript.is_type(event.type):
            request = _checked(Transcript.from_event(event))
            version = self.guard.header_version()  # now: the next event's header replaces it
            self.voice.spawn(self._answer_transcript(request, version))
        else:
            _LOGGER.debug("%s: ignoring %s", self.client, event.type)
        return True

    async def disconnect(self) -> None:
        self.assistant.activity.disconnected(self.client)
        await self.voice.close()
        # The connection's own conversation (its run-pipeline turns) ends with it; agent
        # requests carry Home Assistant's conversation ids, which outlive the connection.
        self.assistant.end_conversation(self.voice.conversation_id)

    def streaming(self) -> bool:
        return self.voice.streaming

    def pending(self) -> Collection[asyncio.Task[Any]]:
        return self.voice.tasks

    async def _answer_transcript(self, request: Transcript, version: str | None) -> None:
        """Home Assistant's conversation agent call: transcript in, streamed answer out."""
        if not request.text.strip():
            await self.write_event(NotHandled(text="There was nothing to answer.").event())
            return
        context = request.context or {}
        language = context.get("language") or request.language
        peer = Peer.from_request(version, context)
        home = self.assistant.home
        started = time.monotonic()
        turn = await self.assistant.answer(
            request.text,
            context.get("conversation_id"),
            language,
            client_name(self.client),
            tools=home.tools(peer),
        )
        self.assistant.activity.track(self.client, turn)
        ending = partial(home.answer, peer=peer, language=language, context=request.context)
        try:
            await send_answer(self.write_event, turn, request.context, ending)
        except BaseException:
            await turn.cancel()  # the client left mid-answer: nobody will read the rest
            raise
        log_turn(self.client, turn, request.text, started)


def _checked(request: Transcript) -> Transcript:
    """The agent request, if its fields are what HA sends; else a TypeError or ValueError.

    Checked as the event is read, where it becomes a `malformed-event` for the client: in the
    answer's task a bad field would fail unseen and leave the client waiting.
    """
    context = request.context or {}
    if not isinstance(request.text, str) or not isinstance(context, dict):
        raise TypeError("text must be a string and context an object")
    _strings(
        text=request.text,
        language=request.language,
        **{f"context.{key}": context.get(key) for key in ("language", "conversation_id")},
    )
    json.dumps(context, ensure_ascii=False).encode()  # it is sent back with the answer
    return request


def _strings(**fields: object) -> None:
    """Each field absent or a string that can be sent on (UTF-8: no lone surrogates).

    json.loads lets a lone surrogate through (an escape like \\ud800), and sending one
    upstream would break the Realtime session's WebSocket.
    """
    for name, value in fields.items():
        if isinstance(value, str):
            value.encode()  # UnicodeEncodeError, a ValueError
        elif value is not None:
            raise TypeError(f"{name} must be a string, not {type(value).__name__}")


def handler_factory(settings: Settings, assistant: Assistant) -> HandlerFactory:
    """What the server runs for each connection (its info event built once)."""
    return partial(
        RealtimeTextHandler,
        settings=settings,
        info=build_info(settings).event(),
        assistant=assistant,
    )
