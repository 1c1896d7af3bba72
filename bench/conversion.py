"""Section 5: `AudioConverter` speed (x real time, one core) and quality (SNR of a tone).

Runs in this process with no server running: the converter is what every audio chunk of
every client goes through, so its speed bounds how many streams one core can take.
"""

from __future__ import annotations

import time

import numpy as np
from measure import Row, median, progress, verdict

from wyoming_realtime_text.audio import AudioConverter

OUT_RATE = AudioConverter.OUT_RATE
CHUNK_SECONDS = 0.020
TONE_HZ = 440.0
AMPLITUDE = 16384  # -6 dBFS
GOAL = 500.0  # x real time
EDGE_SECONDS = 0.1  # left out of the SNR: the filter's start and end


def tone(rate: int, channels: int, seconds: float) -> bytes:
    """A 440 Hz tone as 16-bit PCM, the same in every channel."""
    t = np.arange(int(rate * seconds)) / rate
    mono = np.rint(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    return np.repeat(mono, channels).tobytes()


def chunks(pcm: bytes, rate: int, channels: int) -> list[bytes]:
    size = int(rate * CHUNK_SECONDS) * 2 * channels
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def convert_all(parts: list[bytes], rate: int, channels: int) -> bytes:
    converter = AudioConverter()
    out = [converter.convert(part, rate, 2, channels) for part in parts]
    out.append(converter.flush())
    return b"".join(out)


def speed(rate: int, channels: int, seconds: float, repeats: int) -> tuple[float, float]:
    """(x real time by wall clock, CPU seconds per wall second) over `repeats` runs."""
    parts = chunks(tone(rate, channels, seconds), rate, channels)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        convert_all(parts, rate, channels)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return seconds / median(walls), median(cpus) / median(walls)


def snr_db(rate: int, channels: int, seconds: float = 5.0) -> float:
    """SNR of the converted tone against the ideal 24 kHz tone (time-aligned by soxr)."""
    out = np.frombuffer(
        convert_all(chunks(tone(rate, channels, seconds), rate, channels), rate, channels),
        dtype="<i2",
    )
    ideal = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(len(out)) / OUT_RATE)
    edge = int(EDGE_SECONDS * OUT_RATE)
    signal, error = ideal[edge:-edge], out[edge:-edge].astype(np.float64) - ideal[edge:-edge]
    return float(10 * np.log10(np.sum(signal**2) / np.sum(error**2)))


def section(quick: bool) -> list[Row]:
    seconds, repeats = (20.0, 3) if quick else (120.0, 5)
    rows = []
    for rate, channels, label in ((16000, 1, "16 kHz mono"), (44100, 2, "44.1 kHz stereo")):
        progress(f"5: AudioConverter, {label} 16-bit in 20 ms chunks")
        factor, cores = speed(rate, channels, seconds, repeats)
        snr = snr_db(rate, channels)
        rows += [
            Row(
                "5",
                f"AudioConverter speed, {label} 16-bit, 20 ms chunks → 24 kHz mono",
                str(repeats),
                f"{factor:,.0f}× real time",
                goal=f"≥ {GOAL:.0f}×",
                met=verdict(factor >= GOAL),
                note=f"{seconds:.0f} s of audio per run; {cores:.2f} cores busy",
            ),
            Row(
                "5",
                f"AudioConverter quality, {label}: SNR of a 440 Hz tone vs the ideal 24 kHz tone",
                value=f"{snr:.1f} dB",
                note="-6 dBFS tone; 16-bit in and out",
            ),
        ]
    return rows
