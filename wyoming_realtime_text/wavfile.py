"""Any WAV file a user has, as the 16-bit mono PCM a Wyoming server takes (for `ask`).

Python's `wave` reads only plain integer PCM: it refuses 32-bit float (format 3) and
WAVE_FORMAT_EXTENSIBLE (65534, what sox and many recorders write for 24-bit or more than two
channels). A WAV is a RIFF file of chunks, and reading its `fmt ` and `data` chunks takes a
few lines with numpy, which the server needs anyway; a library such as soundfile would add
libsndfile (and cffi) to every install, the add-on's included, for this one command.

Read: integer PCM of 8 (unsigned), 16, 24 and 32 bits, also in wider containers (20 bits in
24); IEEE float of 32 and 64 bits; both plain or extensible; any number of channels (mixed
down to mono) and any rate (outside the server's 8-48 kHz resampled to 24 kHz, what the
server sends upstream). A data chunk of unknown length (a recorder writing to a pipe) is
read to the end of the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import soxr

from .audio import MAX_RATE, MIN_RATE

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
# The GUID of an extensible format's subformat ends with these 14 bytes (KSDATAFORMAT_SUBTYPE_*).
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
# A data chunk size of 0 or from 2 GiB up is a placeholder: what a writer puts there when it
# cannot go back to fill in the length (arecord 0x7FFFFFFF, ffmpeg 0xFFFFFFFF, to a pipe).
_UNKNOWN_SIZE_FROM = 0x7F000000
_NAMES = {2: "ADPCM", 6: "A-law", 7: "µ-law", 0x11: "IMA ADPCM", 0x55: "MP3"}
OUT_RATE = 24000


class WavError(ValueError):
    """Why the bytes are not a WAV this can read: one line for the user."""


@dataclass
class Recording:
    pcm: bytes  # 16-bit little-endian mono
    rate: int
    source: str  # what the file held, e.g. "24-bit PCM, 2 channels, 44100 Hz"

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


def read_wav(data: bytes) -> Recording:
    """`data` (a whole WAV file) as 16-bit mono PCM at a rate the server accepts."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RF64":
            raise WavError("it is an RF64 file (a WAV over 4 GiB): too long for one question")
        raise WavError("it is not a WAV file (no RIFF/WAVE header)")
    fmt, samples = _chunks(data)
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE:
        if len(fmt) < 40:
            raise WavError("its extensible format chunk is truncated")
        guid = fmt[24:40]
        if guid[2:] != _GUID_TAIL:
            raise WavError("its extensible format has an unknown subformat")
        tag = struct.unpack_from("<H", guid)[0]
    if tag not in (PCM, FLOAT):
        name = _NAMES.get(tag, f"format tag {tag}")
        raise WavError(
            f"its audio is encoded ({name}); only PCM and float WAVs are read: convert it, "
            "e.g. `sox in.wav -b 16 out.wav`"
        )
    if channels < 1 or rate < 1 or block_align < channels or block_align % channels:
        raise WavError(f"its format chunk is invalid ({channels} channels, {rate} Hz)")
    width = block_align // channels  # the container: 20-bit samples are stored in 3 bytes
    kind = "float" if tag == FLOAT else "PCM"
    source = f"{bits}-bit {kind}, {channels} channel{'s' * (channels > 1)}, {rate} Hz"
    frames = len(samples) // block_align
    if frames == 0:
        raise WavError("it holds no audio")
    audio = _decode(samples[: frames * block_align], kind, width, source)
    mono = audio.reshape(frames, channels).mean(axis=1)
    if not MIN_RATE <= rate <= MAX_RATE:
        mono = soxr.resample(mono, rate, OUT_RATE, quality="HQ")
        rate = OUT_RATE
    pcm = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return Recording(pcm, rate, source)


def _chunks(data: bytes) -> tuple[bytes, bytes]:
    """The `fmt ` chunk and the `data` chunk's bytes."""
    fmt: bytes | None = None
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        body = data[at + 8 : at + 8 + size]
        if kind == b"fmt ":
            if len(body) < 16:
                raise WavError("it is truncated (in its format chunk)")
            fmt = body
        elif kind == b"data":
            if fmt is None:
                raise WavError("its data comes before its format chunk")
            if size == 0 or size >= _UNKNOWN_SIZE_FROM:
                return fmt, data[at + 8 :]
            if len(body) < size:
                raise WavError(
                    f"it is truncated: its data chunk says {size} bytes, {len(body)} are there"
                )
            return fmt, body
        at += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise WavError("it is truncated (no format chunk)")
    raise WavError("it is truncated (no data chunk)")


def _decode(samples: bytes, kind: str, width: int, source: str) -> np.ndarray:
    """Interleaved samples as float64 in [-1, 1)."""
    if kind == "float":
        if width not in (4, 8):
            raise WavError(f"{source}: only 32- and 64-bit float is read")
        audio = np.frombuffer(samples, dtype=f"<f{width}").astype(np.float64)
        return np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(samples, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width > 4:
        raise WavError(f"{source}: integer samples wider than 32 bits are not read")
    # Each sample into the top bytes of an int32 (the rest zero): full scale is 2**31.
    raw = np.frombuffer(samples, dtype=np.uint8).reshape(-1, width)
    padded = np.zeros((raw.shape[0], 4), dtype=np.uint8)
    padded[:, 4 - width :] = raw
    return padded.view("<i4").ravel().astype(np.float64) / 2.0**31
