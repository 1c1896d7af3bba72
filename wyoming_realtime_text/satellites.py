"""Satellite hub mode: connect out to Wyoming satellites and serve their voice turns.

As Home Assistant's own satellite support does, the hub connects to each satellite (a
Wyoming server, port 10700 by convention), sends `run-satellite` and `describe`, keeps the
link alive with ping/pong, and serves every `run-pipeline` the satellite sends with its
microphone audio: `transcript` back (which stops its stream), the spoken answer, and
`synthesize` with the text. Each satellite is its own task with its own conversation, so a
slow or vanished satellite never delays another; a lost one is reconnected with backoff,
and losing it mid-turn cancels that turn upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.pipeline import RunPipeline
from wyoming.satellite import RunSatellite
from wyoming.snd import Played

from .config import SatelliteSettings, Settings
from .conversations import Assistant
from .pipeline import VoicePipeline

_LOGGER = logging.getLogger(__name__)
PING_SECONDS = 10.0  # a silent satellite is pinged; one that stays silent 3x this is gone
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS = 10.0
DRAIN_POLL_SECONDS = 0.1


class SatelliteLink:
    """One satellite: connect, serve its turns, reconnect when it goes away."""

    def __init__(self, settings: Settings, satellite: SatelliteSettings, assistant: Assistant):
        self.settings = settings
        self.satellite = satellite
        self.assistant = assistant
        self.name = satellite.name or satellite.uri
        self.connected = asyncio.Event()
        self.played = 0
        self._reading: asyncio.Task[Event | None] | None = None
        self._answers_pings = False
        self.voice: VoicePipeline | None = None  # while connected
        self.draining = False  # shutting down: finish the turn in progress, start none

    def busy(self) -> bool:
        """A turn is in progress: the user is speaking, or hearing the answer."""
        voice = self.voice
        return voice is not None and (voice.streaming or any(not t.done() for t in voice.tasks))

    async def run(self) -> None:
        """Forever: connect, serve, and after a loss wait a growing pause before retrying."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._serve()
            except (OSError, TimeoutError, ValueError) as err:
                reason = getattr(err, "strerror", None) or str(err) or err.__class__.__name__
                level = logging.WARNING if failures == 0 else logging.DEBUG
                _LOGGER.log(level, "Satellite %s unreachable: %s", self.name, reason)
            # A link that held a while starts the backoff over; one that drops at once
            # (unreachable, or serving another hub) waits longer each time.
            failures = 0 if time.monotonic() - started > STABLE_SECONDS else failures + 1
            delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
            await asyncio.sleep(delay)

    async def _serve(self) -> None:
        client = AsyncClient.from_uri(self.satellite.uri, connect_timeout=5)
        await client.connect()
        voice = VoicePipeline(
            self.settings,
            self.assistant,
            client.write_event,
            label=f"satellite {self.name}",
            conversation_id=f"satellite-{self.satellite.uri}",
            satellite=True,
            area=self.satellite.area or None,
        )
        self._answers_pings = False
        self.voice = voice
        try:
            await client.write_event(RunSatellite().event())
            await client.write_event(Describe().event())
            self.connected.set()
            self.assistant.activity.connected(voice.label, satellite=True)
            _LOGGER.info("Satellite %s connected (%s)", self.name, self.satellite.uri)
            while (event := await self._read(client)) is not None:
                await self._handle(event, voice, client)
            _LOGGER.warning("Satellite %s disconnected", self.name)
        finally:
            if self._reading is not None:
                self._reading.cancel()
                self._reading = None
            if self.connected.is_set():
                self.assistant.activity.disconnected(voice.label)
            self.connected.clear()
            self.voice = None
            await voice.close()  # cancels an unfinished turn upstream
            await client.disconnect()

    async def _read(self, client: AsyncClient) -> Event | None:
        """The next event; pings a quiet satellite, gives up on one that stopped answering.

        Satellites on older wyoming versions never answer pings and are quiet between
        turns: only a satellite that has answered a ping is held to it. The read itself is
        never interrupted (that could cut an event in half); it is awaited again.
        """
        missed = 0
        while True:
            self._reading = self._reading or asyncio.create_task(client.read_event())
            done, _ = await asyncio.wait({self._reading}, timeout=PING_SECONDS)
            if done:
                event, self._reading = self._reading.result(), None
                return event
            if self._answers_pings and missed >= 2:
                raise TimeoutError("no answer to pings")
            missed += 1
            await client.write_event(Ping().event())

    async def _handle(self, event: Event, voice: VoicePipeline, client: AsyncClient) -> None:
        if AudioChunk.is_type(event.type):
            if not await voice.audio_chunk(AudioChunk.from_event(event)):
                voice.request = None  # bad audio: wait for the next run-pipeline
        elif RunPipeline.is_type(event.type):
            if self.draining:
                _LOGGER.info("Satellite %s: not starting a turn while shutting down", self.name)
                return
            await voice.run_pipeline(RunPipeline.from_event(event))
        elif AudioStart.is_type(event.type):
            await voice.audio_start(AudioStart.from_event(event))
        elif AudioStop.is_type(event.type):
            voice.end_audio()
        elif Ping.is_type(event.type):
            await client.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Pong.is_type(event.type):
            self._answers_pings = True
        elif Played.is_type(event.type):
            self.played += 1
            _LOGGER.info("Satellite %s played the answer", self.name)
        elif Info.is_type(event.type):
            info = Info.from_event(event)
            if info.satellite is not None:
                _LOGGER.debug("Satellite %s is %r", self.name, info.satellite.name)


class SatelliteHub:
    """All configured satellites, each on its own task."""

    def __init__(self, settings: Settings, assistant: Assistant) -> None:
        self.links = [SatelliteLink(settings, s, assistant) for s in settings.satellites]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(link.run(), name=f"satellite {link.name}") for link in self.links
        ]

    async def drain(self, grace: float, hurry: asyncio.Event) -> None:
        """Shutting down: let turns in progress finish, for up to `grace` s or until `hurry`.

        The links stay up meanwhile (the answer is still being spoken), but start no turn.
        """
        for link in self.links:
            link.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if busy := sum(link.busy() for link in self.links):
            _LOGGER.info("Letting %d satellite turn(s) finish, for up to %g s", busy, grace)
        hurried = asyncio.ensure_future(hurry.wait())
        try:
            while (
                any(link.busy() for link in self.links)
                and not hurried.done()
                and (remaining := deadline - loop.time()) > 0
            ):
                work = [t for link in self.links if link.voice for t in link.voice.tasks]
                # Mid-utterance there is no task to wait for: look again shortly.
                await asyncio.wait(
                    {hurried, *work},
                    timeout=min(remaining, DRAIN_POLL_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            hurried.cancel()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
