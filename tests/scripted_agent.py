"""A stand-in Wyoming conversation agent that answers each request with scripted events.

HA's Wyoming agent (homeassistant/components/wyoming/conversation.py) sends `transcript`
{text, context, language?} on a new connection per turn and reads the answer: `handled`,
or `intent` events that HA then runs itself. To learn what real HA does with each answer,
the test scripts it per request text; this agent writes those events (made with the
`wyoming` library's own classes, framed by its AsyncServer) and records each request.

Its info announces one `handle` program with `supports_home_control: true` (and handled
streaming): a home-control agent as our server will be; and an `asr` program that "hears"
whatever the test set in `hearing` (answered at audio-stop), so that a satellite's spoken
request runs through HA's whole pipeline with the agent's own STT, as with our server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStop
from wyoming.event import Event, Eventable
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
)
from wyoming.intent import Entity, Intent, IntentsStart, IntentsStop

from wyoming_realtime_text.simulator.tts import PeerHandler, WyomingPeer

AGENT_TITLE = "scripted-agent"  # the program's name: HA's entry title
ATTRIBUTION = Attribution(name="wyoming-realtime-text tests", url="https://example.invalid")
UNSCRIPTED = "No script for this request."

Script = Sequence[Eventable] | Callable[[dict[str, Any]], Sequence[Eventable]]


def intent(kind: str, text: str | None = None, /, **slots: Any) -> Intent:
    """One `intent` event: HA calls intent ``kind`` with ``{slot: {"value": value}}`` and
    speaks ``text`` when the intent's response has no speech of its own."""
    return Intent(kind, [Entity(slot, value) for slot, value in slots.items()], text)


def intents(*each: Intent) -> list[Eventable]:
    """Several intents in one answer: intents-start, intent*, intents-stop (wyoming 1.9+)."""
    return [IntentsStart(), *each, IntentsStop()]


def streamed(*chunks: str) -> list[Eventable]:
    """What a streaming agent writes while it still speaks: handled-start, handled-chunk*."""
    return [HandledStart(), *(HandledChunk(chunk) for chunk in chunks)]


def handled(text: str, *chunks: str) -> list[Eventable]:
    """A whole streamed text answer, as our server gives one."""
    return [*streamed(*chunks), Handled(text), HandledStop()]


@dataclass
class AgentRequest:
    """One turn HA asked the agent: its `transcript`, what was written back, and when HA
    closed the connection (HA closes once it has what it reads)."""

    text: str
    data: dict[str, Any]  # the transcript event's data: text, context, language
    opened: float
    answered: list[Event] = field(default_factory=list)
    write_failed: str | None = None
    closed: float | None = None

    @property
    def context(self) -> dict[str, Any]:
        return self.data.get("context") or {}

    def answered_types(self) -> list[str]:
        return [event.type for event in self.answered]


class ScriptedAgent(WyomingPeer):
    """``scripts`` maps a request's text to the events to answer it with (or to a function
    of the transcript's data giving them); any other text is answered `handled` UNSCRIPTED.
    ``pause`` is slept between two scripted events (a streaming model's pace)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, pause: float = 0.02) -> None:
        super().__init__(host, port)
        self.scripts: dict[str, Script] = {}
        self.requests: list[AgentRequest] = []
        self.describes = 0
        self.pause = pause
        self.hearing = ""  # what the STT hears in the next spoken request
        self.transcribed: list[dict[str, Any]] = []  # per STT request: language, audio bytes

    def info(self) -> Info:
        model = HandleModel(
            name="scripted",
            attribution=ATTRIBUTION,
            installed=True,
            description="Answers what the test scripted",
            version="1.0",
            languages=["en"],
        )
        program = HandleProgram(
            name=AGENT_TITLE,
            attribution=ATTRIBUTION,
            installed=True,
            description="A stand-in home-control agent",
            version="1.0",
            models=[model],
            supports_handled_streaming=True,
            supports_home_control=True,
        )
        asr = AsrProgram(
            name=AGENT_TITLE,  # HA names the entry after its first ASR program
            attribution=ATTRIBUTION,
            installed=True,
            description="Hears what the test says it hears",
            version="1.0",
            models=[
                AsrModel(
                    name="scripted",
                    attribution=ATTRIBUTION,
                    installed=True,
                    description="Hears what the test says it hears",
                    version="1.0",
                    languages=["en"],
                )
            ],
        )
        return Info(asr=[asr], handle=[program])

    def script_for(self, data: dict[str, Any]) -> list[Eventable]:
        script = self.scripts.get(data.get("text", ""))
        if script is None:
            return [Handled(UNSCRIPTED)]
        return list(script(data) if callable(script) else script)

    def requests_for(self, text: str) -> list[AgentRequest]:
        return [request for request in self.requests if request.text == text]

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> PeerHandler:
        return _AgentHandler(self, reader, writer)


class _AgentHandler(PeerHandler):
    peer: ScriptedAgent

    def __init__(
        self, agent: ScriptedAgent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(agent, reader, writer)
        self.request: AgentRequest | None = None
        self.stt: dict[str, Any] | None = None

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self.request is not None:
                self.request.closed = time.monotonic()

    async def handle_event(self, event: Event) -> bool:
        agent = self.peer
        if Describe.is_type(event.type):
            agent.describes += 1
            await self.write_event(agent.info().event())
            return True
        if Transcribe.is_type(event.type):
            language = Transcribe.from_event(event).language
            self.stt = {"language": language, "audio_bytes": 0, "heard": agent.hearing}
            agent.transcribed.append(self.stt)
            return True
        if AudioChunk.is_type(event.type) and self.stt is not None:
            self.stt["audio_bytes"] += len(event.payload or b"")
            return True
        if AudioStop.is_type(event.type) and self.stt is not None:
            await self.write_event(Transcript(self.stt["heard"]).event())
            return True
        if not Transcript.is_type(event.type):
            return True
        data = dict(event.data or {})
        self.request = AgentRequest(data.get("text", ""), data, time.monotonic())
        agent.requests.append(self.request)
        for index, answer in enumerate(agent.script_for(data)):
            if index and agent.pause:
                await asyncio.sleep(agent.pause)
            written = answer.event()
            try:
                await self.write_event(written)
            except OSError as err:  # HA closed after what it reads: the rest goes nowhere
                self.request.write_failed = f"{written.type}: {err!r}"
                return False
            self.request.answered.append(written)
        return True  # until HA closes the connection
