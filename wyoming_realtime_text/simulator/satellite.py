"""A simulated Wyoming satellite that behaves like rhasspy/wyoming-satellite.

The satellite is the server: the hub connects to it, sends ``run-satellite``, and then the
satellite starts voice turns, streams microphone audio and plays the hub's TTS audio.
Tests of the hub need such a peer whose audio, pacing and replies are known; a user can
also point a hub at it to try a whole turn without hardware.

Modelled on wyoming-satellite 1.x (local wake word: `WakeStreamingSatellite`; remote wake
word: `AlwaysStreamingSatellite`), with these simplifications:
- one connection is the hub (the first to send anything but ``describe``); another one is
  closed on its first other event, as the real one does, until the hub disconnects;
- it does not ping the hub back after the hub's first ``ping`` (the real one does, and
  drops a hub that misses a pong for 5 s);
- ``played`` is sent as soon as ``audio-stop`` arrives, not after real-time playback;
- ``send_audio_stop`` ends an utterance with ``audio-stop``, which the real one never sends
  (it relies on the hub's end-of-speech detection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioFormat, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info, MicProgram, Satellite, SndProgram
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.wake import Detection

from .. import __version__
from .tts import ATTRIBUTION, PeerHandler, WyomingPeer

MIC = AudioFormat(rate=16000, width=2, channels=1)  # what satellites stream
SND = AudioFormat(rate=22050, width=2, channels=1)  # what it says it plays
Stage = Literal["asr", "wake"]


class SimulatedSatellite(WyomingPeer):
    """Streams ``audio`` as its microphone on each ``trigger()`` and records what it hears.

    ``start_stage="asr"``: a local wake word (``trigger()``) sends ``detection`` and
    ``run-pipeline`` (asr -> tts), then the utterance; streaming stops on ``transcript``,
    ``error`` or ``pause-satellite``. ``start_stage="wake"``: on ``run-satellite`` it sends
    ``run-pipeline`` (wake -> tts, restart_on_end) and streams continuously (silence, at
    real time), ``trigger()`` puts ``audio`` into that stream; only a pause stops it.
    ``send_audio_stop`` follows each triggered utterance with ``audio-stop`` in both modes.
    """

    def __init__(
        self,
        *,
        name: str = "kitchen",
        audio: bytes = b"",
        area: str | None = None,
        start_stage: Stage = "asr",
        send_audio_stop: bool = True,
        chunk_ms: int = 20,
        realtime: bool = True,
        speaker: bool = True,
        wake_word_name: str = "ok_nabu",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        if start_stage not in ("asr", "wake"):
            raise ValueError(f"start_stage must be 'asr' or 'wake', not {start_stage!r}")
        self.name, self.area, self.audio = name, area, audio
        self.start_stage: Stage = start_stage
        self.send_audio_stop, self.chunk_ms, self.realtime = send_audio_stop, chunk_ms, realtime
        self.speaker = speaker  # without one the pipeline ends at `handle`, as the real one
        self.wake_word_name = wake_word_name
        self.received: list[Event] = []
        self.transcripts: list[str] = []
        self.played_count = 0
        self.paused = False
        self._played_audio = bytearray()
        self._playing = False
        self._hub: _HubHandler | None = None
        self._hub_running = False  # run-satellite received from the current hub
        self._stream: asyncio.Task[None] | None = None
        self._pending: bytes | None = None  # triggered audio for the continuous stream
        self._mic_ms = 0  # timestamp of the next microphone chunk
        self._connected = asyncio.Event()
        self._played = asyncio.Event()

    @property
    def connected(self) -> bool:
        """A hub is connected and has sent ``run-satellite``."""
        return self._hub is not None and self._hub_running

    @property
    def played_audio(self) -> bytes:
        return bytes(self._played_audio)

    @property
    def streaming(self) -> bool:
        return self._stream is not None and not self._stream.done()

    def info(self) -> Info:
        end = "tts" if self.speaker else "handle"
        satellite = Satellite(
            name=self.name,
            area=self.area,
            description=f"Simulated satellite ({self.start_stage} -> {end})",
            attribution=ATTRIBUTION,
            installed=True,
            version=__version__,
            has_vad=False,
            active_wake_words=[self.wake_word_name] if self.start_stage == "asr" else None,
            max_active_wake_words=1 if self.start_stage == "asr" else None,
            supports_trigger=False,
        )
        common: dict[str, Any] = {
            "attribution": ATTRIBUTION,
            "installed": True,
            "version": __version__,
        }
        mic = MicProgram(name="simulated-mic", description="Its audio", mic_format=MIC, **common)
        snd = SndProgram(name="simulated-snd", description="Recorder", snd_format=SND, **common)
        return Info(satellite=satellite, mic=[mic], snd=[snd] if self.speaker else [])

    # A plain timeout argument is the API tests want here: hence the noqa (ASYNC109).
    async def wait_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until a hub has connected and sent ``run-satellite``."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def trigger(self) -> None:
        """Start one voice turn now, as after a local wake word; returns once it started."""
        hub = self._hub
        if hub is None or not self._hub_running or self.paused:
            raise RuntimeError("no running hub: the satellite waits for run-satellite")
        self._played.clear()
        if self.start_stage == "wake":
            self._pending = self.audio
            return
        if self.streaming:
            raise RuntimeError("a voice turn is still streaming")
        await hub.write_event(Detection(name=self.wake_word_name, timestamp=self._mic_ms).event())
        await hub.write_event(self._run_pipeline().event())
        self._launch(self._utterance, hub, self.audio)

    async def wait_played(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until a TTS response was played and ``played`` sent, since the last trigger."""
        await asyncio.wait_for(self._played.wait(), timeout)

    async def stop(self) -> None:
        self._halt()
        await super().stop()

    # --- connection and events ---------------------------------------------------------

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> PeerHandler:
        return _HubHandler(self, reader, writer)

    async def on_event(self, handler: _HubHandler, event: Event) -> bool:
        if Describe.is_type(event.type):
            self.received.append(event)
            await handler.write_event(self.info().event())
            return True
        if self._hub is None:
            self._hub = handler  # first connection, or taking over after a disconnect
        elif self._hub is not handler:
            return False  # the real satellite drops the newcomer, keeps the current hub
        self.received.append(event)
        if Ping.is_type(event.type):
            await handler.write_event(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            self._halt()
            self._hub_running, self.paused = True, False
            self._connected.set()
            if self.start_stage == "wake":
                self._launch(self._continuous, handler)
        elif PauseSatellite.is_type(event.type):
            self.paused = True
            self._halt()
        elif Transcript.is_type(event.type) or Error.is_type(event.type):
            if Transcript.is_type(event.type):
                self.transcripts.append(Transcript.from_event(event).text)
            if self.start_stage == "asr":
                self._halt()  # an always-streaming satellite keeps streaming
        elif AudioStart.is_type(event.type):
            self._playing = True
        elif AudioChunk.is_type(event.type):
            if self._playing:
                self._played_audio += event.payload or b""
        elif AudioStop.is_type(event.type) and self._playing:
            self._playing = False
            await handler.write_event(Played().event())
            self.played_count += 1
            self._played.set()
        return True

    def on_disconnect(self, handler: _HubHandler) -> None:
        if self._hub is not handler:
            return
        self._halt()
        self._hub, self._hub_running, self._playing = None, False, False
        self._connected.clear()

    # --- microphone ----------------------------------------------------------------------

    def _run_pipeline(self) -> RunPipeline:
        end = PipelineStage.TTS if self.speaker else PipelineStage.HANDLE
        if self.start_stage == "wake":
            return RunPipeline(start_stage=PipelineStage.WAKE, end_stage=end, restart_on_end=True)
        return RunPipeline(
            start_stage=PipelineStage.ASR,
            end_stage=end,
            wake_word_name=self.wake_word_name,
            restart_on_end=False,
        )

    def _launch(self, body: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        self._halt()
        task = asyncio.create_task(self._quiet(body, *args), name=f"satellite {self.name} mic")
        self._stream = task
        self.track(task)

    def _halt(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    @staticmethod
    async def _quiet(body: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        with contextlib.suppress(OSError):  # the hub went away mid-stream
            await body(*args)

    async def _send_audio(self, hub: _HubHandler, audio: bytes, paced: bool) -> None:
        """Microphone chunks of ``chunk_ms``; paced, each leaves once it was 'recorded'."""
        loop = asyncio.get_running_loop()
        step = MIC.rate * MIC.width * MIC.channels * self.chunk_ms // 1000
        started = loop.time()
        for index, offset in enumerate(range(0, len(audio), step)):
            if paced:
                await asyncio.sleep(started + (index + 1) * self.chunk_ms / 1000 - loop.time())
            else:
                await asyncio.sleep(0)  # let the hub's events (transcript...) in
            chunk = AudioChunk(
                rate=MIC.rate,
                width=MIC.width,
                channels=MIC.channels,
                audio=audio[offset : offset + step],
                timestamp=self._mic_ms,
            )
            await hub.write_event(chunk.event())
            self._mic_ms += self.chunk_ms

    async def _utterance(self, hub: _HubHandler, audio: bytes) -> None:
        await self._send_audio(hub, audio, self.realtime)
        if self.send_audio_stop:
            await hub.write_event(AudioStop(timestamp=self._mic_ms).event())

    async def _continuous(self, hub: _HubHandler) -> None:
        await hub.write_event(self._run_pipeline().event())
        silence = bytes(MIC.rate * MIC.width * MIC.channels * self.chunk_ms // 1000)
        while True:
            audio, self._pending = self._pending, None
            if audio is not None:
                await self._utterance(hub, audio)
            else:
                await self._send_audio(hub, silence, paced=True)


class _HubHandler(PeerHandler):
    peer: SimulatedSatellite

    async def handle_event(self, event: Event) -> bool:
        return await self.peer.on_event(self, event)

    async def disconnect(self) -> None:
        self.peer.on_disconnect(self)
