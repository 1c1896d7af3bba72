"""The local no-speech guard (vad.py) on its own: verdicts, the limit, and where it runs."""

from __future__ import annotations

import asyncio
import logging
import threading
import wave
from pathlib import Path

import pytest

from wyoming_realtime_text.audio import AudioConverter
from wyoming_realtime_text.vad import VAD_RATE, SpeechDetector

FIXTURES = Path(__file__).parent / "fixtures"
CHUNK = 640  # 20 ms of 16 kHz pcm16, as satellites send it


def kitchen() -> bytes:
    with wave.open(str(FIXTURES / "speech-kitchen.wav"), "rb") as wav:
        return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return bytes(int(VAD_RATE * seconds) * 2)


class Verdicts:
    """Counts the no-speech calls a detector makes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def settle(detector: SpeechDetector) -> None:
    """Until every window fed so far has been judged."""
    for _ in range(2000):
        if not detector.analysing:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the detector never caught up")


async def feed(detector: SpeechDetector, pcm: bytes, rate: int = VAD_RATE) -> None:
    step = CHUNK * rate // VAD_RATE
    for start in range(0, len(pcm), step):
        detector.feed(pcm[start : start + step], rate)
    await settle(detector)


async def test_speech_is_heard_on_the_vad_thread_not_the_event_loop() -> None:
    detector, verdicts = SpeechDetector(), Verdicts()
    threads: set[str] = set()
    judge = detector._vad.process_samples

    def recorded(samples: list[float]) -> float:
        threads.add(threading.current_thread().name)
        return judge(samples)

    detector._vad.process_samples = recorded  # type: ignore[method-assign]
    detector.start(1.0, verdicts)
    await feed(detector, kitchen())
    assert detector.heard and verdicts.calls == 0
    assert threads and threading.current_thread().name not in threads
    assert all(name.startswith("vad") for name in threads)


async def test_silence_ends_once_the_limit_has_been_judged() -> None:
    detector, verdicts = SpeechDetector(), Verdicts()
    detector.start(1.0, verdicts)
    await feed(detector, silence(0.9))
    assert verdicts.calls == 0 and not detector.heard, "0.9 s of silence is under the limit"
    await feed(detector, silence(2.0))
    assert verdicts.calls == 1 and detector.gave_up and not detector.heard


async def test_24khz_upstream_audio_is_judged_too() -> None:
    converter = AudioConverter()
    upstream = converter.convert(kitchen(), VAD_RATE, 2, 1) + converter.flush()
    detector, verdicts = SpeechDetector(), Verdicts()
    detector.start(3.0, verdicts)
    await feed(detector, upstream, AudioConverter.OUT_RATE)
    assert detector.heard and verdicts.calls == 0
    quiet = SpeechDetector()
    quiet.start(0.5, verdicts)
    await feed(quiet, bytes(24000 * 2), AudioConverter.OUT_RATE)
    assert verdicts.calls == 1 and not quiet.heard


async def test_a_new_utterance_ignores_verdicts_on_the_last() -> None:
    detector, first, second = SpeechDetector(), Verdicts(), Verdicts()
    detector.start(0.2, first)
    for start in range(0, len(silence(1.0)), CHUNK):  # a window in flight, the rest queued
        detector.feed(silence(1.0)[start : start + CHUNK], VAD_RATE)
    detector.start(0.64, second)  # 20 windows
    # 19 whole windows: one stale window counted against this utterance would end it.
    await feed(detector, silence(0.62))
    await asyncio.sleep(0.05)
    assert first.calls == 0 and second.calls == 0 and not detector.gave_up
    await feed(detector, silence(0.1))
    assert second.calls == 1


async def test_a_failing_model_never_ends_a_turn(caplog: pytest.LogCaptureFixture) -> None:
    detector, verdicts = SpeechDetector(), Verdicts()

    def broken(samples: list[float]) -> float:
        raise RuntimeError("model file damaged")

    detector._vad.process_samples = broken  # type: ignore[method-assign]
    detector.start(0.1, verdicts)
    with caplog.at_level(logging.ERROR):
        await feed(detector, silence(1.0))
    assert verdicts.calls == 0 and detector.heard
    assert "voice activity detector failed" in caplog.text and "model file damaged" in caplog.text
