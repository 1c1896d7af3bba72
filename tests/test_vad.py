"""The local no-speech guard (vad.py) on its own: when it judges, its verdicts, where it runs."""

from __future__ import annotations

import asyncio
import logging
import threading
import wave
from pathlib import Path

import pytest

from wyoming_realtime_text import vad
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


class Recorded:
    """Counts the calls on the process's model, and the threads they ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        self._judge = vad.model().process_samples
        monkeypatch.setattr(vad.model(), "process_samples", self)

    def __call__(self, samples: list[float]) -> float:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        return self._judge(samples)


async def settle(detector: SpeechDetector) -> None:
    """Until a verdict being worked out has landed."""
    for _ in range(2000):
        if not detector.judging:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the detector never came to a verdict")


async def feed(detector: SpeechDetector, pcm: bytes, rate: int = VAD_RATE) -> None:
    step = CHUNK * rate // VAD_RATE
    for start in range(0, len(pcm), step):
        detector.feed(pcm[start : start + step], rate)
    await settle(detector)


async def test_speech_is_judged_once_the_limit_has_arrived_on_the_vad_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector, verdicts = SpeechDetector(), Verdicts()
    model = Recorded(monkeypatch)
    detector.start(1.0, verdicts)
    await feed(detector, kitchen()[: VAD_RATE * 2 * 9 // 10])
    assert model.calls == 0 and not detector.done, "under the limit: the model is not asked"
    await feed(detector, kitchen()[VAD_RATE * 2 * 9 // 10 :])
    assert detector.heard and detector.done and verdicts.calls == 0
    assert 0 < model.calls < 31, "it stops at the first speech, within the first second"
    assert threading.current_thread().name not in model.threads
    assert all(name.startswith("vad") for name in model.threads)


async def test_silence_up_to_the_limit_ends_the_utterance_once() -> None:
    detector, verdicts = SpeechDetector(), Verdicts()
    detector.start(1.0, verdicts)
    await feed(detector, silence(0.9))
    assert verdicts.calls == 0 and not detector.done
    await feed(detector, silence(2.0))
    assert verdicts.calls == 1 and detector.done and not detector.heard


async def test_24khz_upstream_audio_is_judged_too() -> None:
    converter = AudioConverter()
    upstream = converter.convert(kitchen(), VAD_RATE, 2, 1) + converter.flush()
    detector, verdicts = SpeechDetector(), Verdicts()
    detector.start(1.0, verdicts)
    await feed(detector, upstream, AudioConverter.OUT_RATE)
    assert detector.heard and verdicts.calls == 0
    detector.start(0.5, verdicts)
    await feed(detector, bytes(24000 * 2), AudioConverter.OUT_RATE)
    assert verdicts.calls == 1 and not detector.heard


async def test_one_model_judges_every_stream_from_a_clean_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streams share the process's model (a model is 2.5 MiB): each verdict starts from a
    reset, so what one stream's audio left in its recurrent state never colours the next."""
    resets = Verdicts()
    reset = vad.model().reset

    def counted() -> None:
        resets()
        reset()

    monkeypatch.setattr(vad.model(), "reset", counted)
    talker, quiet = SpeechDetector(), SpeechDetector()
    heard, silent = Verdicts(), Verdicts()
    for _ in range(2):
        talker.start(1.0, heard)
        quiet.start(0.5, silent)
        for start in range(0, VAD_RATE * 3, CHUNK):  # 1.5 s each, fed chunk by chunk
            talker.feed(kitchen()[start : start + CHUNK], VAD_RATE)
            quiet.feed(silence(0.02), VAD_RATE)
        await settle(talker)
        await settle(quiet)
        assert talker.heard and not quiet.heard
    assert (heard.calls, silent.calls) == (0, 2)
    assert resets.calls == 4, "one reset per verdict"


async def test_a_new_utterance_ignores_the_verdict_on_the_last() -> None:
    detector, first, second = SpeechDetector(), Verdicts(), Verdicts()
    detector.start(0.2, first)
    for start in range(0, len(silence(1.0)), CHUNK):  # its verdict is on the way
        detector.feed(silence(1.0)[start : start + CHUNK], VAD_RATE)
    assert detector.judging
    detector.start(0.64, second)
    await feed(detector, silence(0.62))  # under this utterance's limit
    await asyncio.sleep(0.1)  # the first utterance's verdict has landed by now
    assert first.calls == 0 and second.calls == 0 and not detector.done
    await feed(detector, silence(0.1))
    assert second.calls == 1


async def test_a_stopped_guard_never_ends_the_utterance(monkeypatch: pytest.MonkeyPatch) -> None:
    detector, verdicts = SpeechDetector(), Verdicts()
    model = Recorded(monkeypatch)
    detector.start(0.5, verdicts)
    await feed(detector, silence(0.3))
    detector.stop()  # e.g. the API's turn detection heard speech
    await feed(detector, silence(2.0))
    assert verdicts.calls == 0 and model.calls == 0
    detector.start(0.5, verdicts)
    for start in range(0, len(silence(1.0)), CHUNK):
        detector.feed(silence(1.0)[start : start + CHUNK], VAD_RATE)
    detector.stop()  # while its verdict is worked out
    await asyncio.sleep(0.2)
    assert verdicts.calls == 0


async def test_a_failing_model_never_ends_a_turn(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector, verdicts = SpeechDetector(), Verdicts()

    def broken(samples: list[float]) -> float:
        raise RuntimeError("model file damaged")

    monkeypatch.setattr(vad.model(), "process_samples", broken)
    detector.start(0.1, verdicts)
    with caplog.at_level(logging.ERROR):
        await feed(detector, silence(1.0))
    assert verdicts.calls == 0 and detector.heard
    assert "voice activity detector failed" in caplog.text and "model file damaged" in caplog.text
