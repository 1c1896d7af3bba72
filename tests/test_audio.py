"""Tests for wyoming_realtime_text.audio: any Wyoming PCM -> pcm16 24 kHz mono, streaming."""

import itertools

import numpy as np
import pytest
import soxr

from wyoming_realtime_text.audio import AudioConverter, AudioFormatError, check_format

OUT_RATE = 24000
RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
WIDTHS = (1, 2, 4)
CHANNELS = (1, 2)
# Resampler start/end transient skipped before comparing against an ideal tone (50 ms).
EDGE = OUT_RATE // 20


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    """Float tone in [-1, 1)."""
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def encode(signal: np.ndarray, width: int, channels: int = 1) -> bytes:
    """Quantise a float signal (1-D mono, or [frames, channels]) to Wyoming PCM bytes."""
    if signal.ndim == 1:
        signal = np.repeat(signal[:, None], channels, axis=1)
    assert signal.shape[1] == channels
    if width == 1:
        pcm = np.clip(np.rint(signal * 128) + 128, 0, 255).astype("u1")
    elif width == 2:
        pcm = np.clip(np.rint(signal * 32768), -32768, 32767).astype("<i2")
    else:
        pcm = np.clip(np.rint(signal * 2.0**31), -(2**31), 2**31 - 1).astype("<i4")
    return pcm.tobytes()


def decode(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float64)


def irregular_chunks(data: bytes, rate: int, frame_size: int) -> list[bytes]:
    """7 ms, 20 ms and odd byte counts that split frames, cycled."""
    sizes = itertools.cycle(
        [round(0.007 * rate) * frame_size, round(0.020 * rate) * frame_size, 333, 1, 4099]
    )
    chunks, pos = [], 0
    while pos < len(data):
        size = next(sizes)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def convert_all(chunks: list[bytes], rate: int, width: int, channels: int) -> bytes:
    conv = AudioConverter()
    out = b"".join(conv.convert(chunk, rate, width, channels) for chunk in chunks)
    return out + conv.flush()


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Peak of a Hann-windowed spectrum, refined by parabolic interpolation of the log magnitude."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(samples)


def snr_db(output: np.ndarray, ideal: np.ndarray) -> float:
    signal, noise = ideal[EDGE:-EDGE], output[EDGE:-EDGE] - ideal[EDGE:-EDGE]
    return 10 * np.log10(np.sum(signal**2) / max(np.sum(noise**2), 1e-20))


@pytest.mark.parametrize("freq", [440.0, 3000.0])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rate", RATES)
def test_frequency_and_length_preserved(rate: int, width: int, channels: int, freq: float) -> None:
    data = encode(tone(freq, rate), width, channels)
    out = decode(convert_all(irregular_chunks(data, rate, width * channels), rate, width, channels))
    assert abs(len(out) - OUT_RATE) <= 2  # 1 s in, 1 s out
    assert dominant_frequency(out, OUT_RATE) == pytest.approx(freq, abs=1.0)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rate", RATES)
def test_chunked_output_equals_one_shot(rate: int, width: int, channels: int) -> None:
    """A resampler reset (or lost/duplicated sample) at a chunk border would show up as a diff."""
    data = encode(tone(440.0, rate), width, channels)
    chunked = decode(
        convert_all(irregular_chunks(data, rate, width * channels), rate, width, channels)
    )
    one_shot = decode(convert_all([data], rate, width, channels))
    assert len(chunked) == len(one_shot)
    assert np.max(np.abs(chunked - one_shot)) <= 1


# Measured (soxr HQ, 440 Hz at half scale, all rates): int16 in 89.2-92.0 dB (input and output both
# quantised to 16 bits), int32 in 92.0 dB (output quantisation alone), 8-bit in 44.2-48.2 dB.
@pytest.mark.parametrize(("width", "floor_db"), [(1, 40.0), (2, 85.0), (4, 88.0)])
@pytest.mark.parametrize("rate", RATES)
def test_snr_against_ideal_tone(rate: int, width: int, floor_db: float) -> None:
    """No clicks, no time shift: the output matches an ideal 24 kHz tone sample for sample."""
    data = encode(tone(440.0, rate), width)
    out = decode(convert_all(irregular_chunks(data, rate, width), rate, width, 1))
    ideal = 32768 * tone(440.0, OUT_RATE)
    assert snr_db(out, ideal) > floor_db


@pytest.mark.parametrize(("rate", "freq"), [(48000, 20000.0), (44100, 20000.0), (48000, 13000.0)])
def test_anti_aliasing(rate: int, freq: float) -> None:
    """Above the 12 kHz output Nyquist a tone must vanish, not fold back (20 kHz -> 4 kHz)."""
    out = decode(convert_all([encode(tone(freq, rate), 2)], rate, 2, 1))
    in_rms = 0.5 * 32768 / np.sqrt(2)
    out_rms = max(np.sqrt(np.mean(out[EDGE:-EDGE] ** 2)), 1e-9)
    assert 20 * np.log10(in_rms / out_rms) >= 40


def test_passband_kept_near_nyquist() -> None:
    """The anti-alias filter must not eat the top of the band: 10 kHz at 48 kHz survives intact."""
    out = decode(convert_all([encode(tone(10000.0, 48000), 2)], 48000, 2, 1))
    assert snr_db(out, 32768 * tone(10000.0, OUT_RATE)) > 60


def test_rate_change_mid_utterance_keeps_length() -> None:
    conv = AudioConverter()
    first = encode(tone(440.0, 16000, 0.5), 2, 1)
    second = encode(tone(1000.0, 48000, 0.5), 2, 2)
    out = b"".join(conv.convert(c, 16000, 2, 1) for c in irregular_chunks(first, 16000, 2))
    out += b"".join(conv.convert(c, 48000, 2, 2) for c in irregular_chunks(second, 48000, 4))
    assert conv.input_seconds == pytest.approx(1.0)
    out += conv.flush()
    samples = decode(out)
    assert abs(len(samples) - OUT_RATE) <= 2
    assert dominant_frequency(samples[:12000], OUT_RATE) == pytest.approx(440.0, abs=2.0)
    assert dominant_frequency(samples[12000:], OUT_RATE) == pytest.approx(1000.0, abs=2.0)


def test_width_change_at_same_rate_is_seamless() -> None:
    """Same rate, new width: the filter continues, so output matches converting it all as int16."""
    signal = tone(440.0, 16000)
    conv = AudioConverter()
    out = conv.convert(encode(signal[:8000], 2), 16000, 2, 1)
    out += conv.convert(encode(signal[8000:], 4), 16000, 4, 1) + conv.flush()
    reference = decode(convert_all([encode(signal, 2)], 16000, 2, 1))
    assert len(decode(out)) == len(reference)
    assert np.max(np.abs(decode(out) - reference)) <= 1


@pytest.mark.parametrize("rate", [16000, OUT_RATE])
def test_width1_silence_is_zero(rate: int) -> None:
    out = convert_all([b"\x80" * 4000], rate, 1, 1)
    assert len(out) > 0
    assert not np.any(decode(out))


def test_width1_is_unsigned() -> None:
    conv = AudioConverter()
    assert decode(conv.convert(bytes([0x00, 0x80, 0xFF, 0x81]), OUT_RATE, 1, 1)).tolist() == [
        -32768,
        0,
        32512,
        256,
    ]


def test_int32_scales_to_int16() -> None:
    values = np.array([0, 65536, -65536, 1000 * 65536, 2**31 - 1, -(2**31)], dtype="<i4")
    out = AudioConverter().convert(values.tobytes(), OUT_RATE, 4, 1)
    assert decode(out).tolist() == [0, 1, -1, 1000, 32767, -32768]


def test_int16_full_scale_does_not_wrap() -> None:
    """Resampling a full-scale square overshoots (Gibbs); it must clip, never wrap negative."""
    rate = 48000
    square = np.where(np.sin(2 * np.pi * 1000 * np.arange(rate) / rate) >= 0, 1.0, -1.0)
    out = decode(convert_all([encode(square, 2, 2)], rate, 2, 2))
    ideal = np.where(np.sin(2 * np.pi * 1000 * np.arange(len(out)) / OUT_RATE) >= 0, 1.0, -1.0)
    plateau = np.abs(np.sin(2 * np.pi * 1000 * np.arange(len(out)) / OUT_RATE)) > 0.5
    assert out.max() == 32767 and out.min() == -32768
    assert np.all(np.sign(out[plateau]) == ideal[plateau])
    # Stereo averaging must not overflow either.
    both_max = AudioConverter().convert(np.full(8, 32767, "<i2").tobytes(), OUT_RATE, 2, 2)
    both_min = AudioConverter().convert(np.full(8, -32768, "<i2").tobytes(), OUT_RATE, 2, 2)
    assert decode(both_max).tolist() == [32767] * 4
    assert decode(both_min).tolist() == [-32768] * 4


@pytest.mark.parametrize("rate", [16000, OUT_RATE])
def test_stereo_is_averaged(rate: int) -> None:
    signal = tone(440.0, rate)
    opposite = decode(convert_all([encode(np.stack([signal, -signal], axis=1), 2, 2)], rate, 2, 2))
    assert np.max(np.abs(opposite)) <= 1
    left_only = np.stack([signal, np.zeros_like(signal)], axis=1)
    out = decode(convert_all([encode(left_only, 2, 2)], rate, 2, 2))
    assert snr_db(out, 0.5 * 32768 * tone(440.0, OUT_RATE)) > 80


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rate", [44100, OUT_RATE])
def test_stereo_downmix_matches_average(rate: int, width: int) -> None:
    """Different channels (two tones) mix to their exact average, then resample like mono."""
    left, right = tone(440.0, rate, amplitude=0.6), tone(3000.0, rate, amplitude=0.3)
    data = encode(np.stack([left, right], axis=1), width, 2)
    out = decode(convert_all(irregular_chunks(data, rate, 2 * width), rate, width, 2))
    # Reference: decode the integers exactly, average in float64, one-shot resample.
    pcm = np.frombuffer(data, dtype={1: "u1", 2: "<i2", 4: "<i4"}[width]).astype(np.float64)
    pcm = (pcm - 128) * 256 if width == 1 else pcm / 65536 if width == 4 else pcm
    average = pcm.reshape(-1, 2).mean(axis=1)
    if rate != OUT_RATE:
        average = soxr.resample(average, rate, OUT_RATE, quality="HQ")
    assert len(out) == len(average)
    assert np.max(np.abs(out - np.rint(average))) <= 1


def test_format_changes_at_same_rate_continue_the_filter() -> None:
    """Per-format constants (bias, gain) follow every width/channel change; the filter runs on.

    An 8-bit-exact signal is encoded identically in every format, so converting it in changing
    formats must equal converting it all as 16-bit mono.
    """
    rate, part = 22050, 22050 // 6
    signal = np.rint(tone(440.0, rate) * 128) / 128  # representable at width 1
    formats = [(2, 1), (1, 2), (4, 2), (1, 1), (2, 2), (4, 1)]
    conv, out = AudioConverter(), b""
    for i, (width, channels) in enumerate(formats):
        data = encode(signal[i * part : (i + 1) * part], width, channels)
        out += b"".join(
            conv.convert(chunk, rate, width, channels)
            for chunk in irregular_chunks(data, rate, width * channels)
        )
    out += conv.flush()
    reference = decode(convert_all([encode(signal[: len(formats) * part], 2)], rate, 2, 1))
    assert len(decode(out)) == len(reference)
    assert np.max(np.abs(decode(out) - reference)) <= 1


def test_passthrough_is_byte_exact() -> None:
    data = np.random.default_rng(1).integers(-32768, 32767, 5001, dtype="<i2").tobytes()
    chunks = irregular_chunks(data, OUT_RATE, 2)
    conv = AudioConverter()
    out = b"".join(conv.convert(c, OUT_RATE, 2, 1) for c in chunks)
    assert out == data
    assert conv.flush() == b""


def test_partial_frame_is_carried_to_next_call() -> None:
    conv = AudioConverter()
    assert conv.convert(b"\x34", OUT_RATE, 2, 1) == b""
    assert conv.input_seconds == 0 and conv.output_bytes == 0
    assert conv.convert(b"\x12\x56", OUT_RATE, 2, 1) == b"\x34\x12"
    assert conv.input_seconds == pytest.approx(1 / OUT_RATE)
    assert conv.convert(b"\x78", OUT_RATE, 2, 1) == b"\x56\x78"


def test_partial_frame_dropped_on_format_change_and_flush() -> None:
    conv = AudioConverter()
    assert conv.convert(b"\x01", OUT_RATE, 2, 1) == b""
    # stereo frame (2, 4) averages to 3; a kept b"\x01" would misalign it
    assert conv.convert(b"\x02\x00\x04\x00", OUT_RATE, 2, 2) == b"\x03\x00"
    assert conv.convert(b"\x01", OUT_RATE, 2, 1) == b""
    assert conv.flush() == b""
    assert conv.convert(b"\x02\x00", OUT_RATE, 2, 1) == b"\x02\x00"


def test_bookkeeping_and_flush_reset() -> None:
    data = encode(tone(440.0, 16000, 0.5), 2)
    chunks = irregular_chunks(data, 16000, 2)
    conv = AudioConverter()
    produced = sum(len(conv.convert(c, 16000, 2, 1)) for c in chunks)
    assert conv.input_seconds == pytest.approx(0.5)
    assert conv.output_bytes == produced
    assert 0 < produced < 2 * 12000  # the resampler still holds its delay
    tail = conv.flush()
    assert produced + len(tail) == 2 * 12000
    assert conv.input_seconds == 0 and conv.output_bytes == 0
    # reusable: a second utterance converts exactly like a fresh converter
    again = b"".join(conv.convert(c, 16000, 2, 1) for c in chunks) + conv.flush()
    assert again == convert_all(chunks, 16000, 2, 1)
    assert AudioConverter().flush() == b""


@pytest.mark.parametrize(
    ("rate", "width", "channels", "field", "value"),
    [
        (16000, 3, 1, "width", "3"),
        (0, 2, 1, "rate", "0"),
        (96000, 2, 1, "rate", "96000"),
        (16000, 2, 0, "channels", "0"),
        (16000, 2, 3, "channels", "3"),
    ],
)
def test_check_format_errors(rate: int, width: int, channels: int, field: str, value: str) -> None:
    with pytest.raises(AudioFormatError) as excinfo:
        check_format(rate, width, channels)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert field in message and value in message and "\n" not in message
    conv = AudioConverter()
    with pytest.raises(AudioFormatError):
        conv.convert(b"\x00" * 12, rate, width, channels)
    assert conv.input_seconds == 0 and conv.output_bytes == 0


@pytest.mark.parametrize(("rate", "width", "channels"), [(8000, 1, 1), (48000, 4, 2)])
def test_check_format_accepts_bounds(rate: int, width: int, channels: int) -> None:
    check_format(rate, width, channels)
