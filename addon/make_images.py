#!/usr/bin/env python3
"""Draw the add-on store's icon.png (128x128) and logo.png (250x100), and write them.

    python3 addon/make_images.py

The pictures: a speech bubble holding lines of text (the product: answers as text, spoken by
your own TTS), and beside it, for the logo, "Realtime Text" in a small pixel font. Drawn with
numpy (a dependency of the project) as shapes with anti-aliased edges; written as RGBA PNGs
with zlib and struct. The files are committed; tests/test_addon_build.py checks that they are
what this script draws.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

ADDON = Path(__file__).resolve().parent / "wyoming_realtime_text"
SAMPLES = 4  # supersampling per axis: edges are the mean of 16 samples
BLUE_TOP = (0x2E, 0xB6, 0xF0)
BLUE_BOTTOM = (0x06, 0x7C, 0xC1)
WHITE = (0xFF, 0xFF, 0xFF)
TEXT_BLUE = (0x0A, 0x6F, 0xAE)

# 5x7 glyphs for the logo's words, one string of rows each.
GLYPHS = {
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "e": "00000 00000 01110 10001 11111 10000 01110",
    "a": "00000 00000 01110 00001 01111 10001 01111",
    "l": "01100 00100 00100 00100 00100 00100 01110",
    "t": "01000 01000 11100 01000 01000 01001 00110",
    "i": "00100 00000 01100 00100 00100 00100 01110",
    "m": "00000 00000 11010 10101 10101 10001 10001",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "x": "00000 00000 10001 01010 00100 01010 10001",
}


def grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates in pixels (x right, y down), SAMPLES x SAMPLES per pixel."""
    offsets = (np.arange(SAMPLES) + 0.5) / SAMPLES
    xs = (np.arange(width)[:, None] + offsets).ravel()
    ys = (np.arange(height)[:, None] + offsets).ravel()
    return np.meshgrid(xs, ys)


def coverage(inside: np.ndarray) -> np.ndarray:
    """Supersampled booleans → each pixel's covered fraction, 0..1."""
    height, width = inside.shape[0] // SAMPLES, inside.shape[1] // SAMPLES
    blocks = inside.reshape(height, SAMPLES, width, SAMPLES)
    return blocks.mean(axis=(1, 3))


def rounded_rect(x, y, left, top, right, bottom, radius) -> np.ndarray:
    """Samples inside a rectangle with rounded corners."""
    cx = np.clip(x, left + radius, right - radius)
    cy = np.clip(y, top + radius, bottom - radius)
    inside = (x >= left) & (x <= right) & (y >= top) & (y <= bottom)
    return inside & ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2)


def triangle(x, y, a, b, c) -> np.ndarray:
    """Samples inside the triangle a, b, c (points as (x, y))."""

    def side(p, q):
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])

    d1, d2, d3 = side(a, b), side(b, c), side(c, a)
    return ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))


def paint(image: np.ndarray, alpha: np.ndarray, color: tuple[int, ...] | np.ndarray) -> None:
    """Composite a color over ``image`` (float RGBA, 0..1) where ``alpha`` covers it."""
    rgb = np.broadcast_to(np.asarray(color, dtype=float) / 255, image[..., :3].shape)
    a = alpha[..., None]
    old = image[..., 3:4]
    out = a + old * (1 - a)
    mixed = rgb * a + image[..., :3] * old * (1 - a)
    image[..., :3] = np.where(out > 0, mixed / np.maximum(out, 1e-9), 0)
    image[..., 3:4] = out


def draw_badge(image: np.ndarray, left: float, top: float, size: float) -> None:
    """The icon's picture, ``size`` pixels square, at (left, top) of ``image``."""
    height, width = image.shape[:2]
    x, y = grid(width, height)
    u, v = (x - left) / size, (y - top) / size  # 0..1 across the badge
    badge = coverage(rounded_rect(u, v, 0.0, 0.0, 1.0, 1.0, 0.22))
    shade = np.clip(coverage(v), 0, 1)[..., None]
    gradient = np.asarray(BLUE_TOP) * (1 - shade) + np.asarray(BLUE_BOTTOM) * shade
    paint(image, badge, gradient)
    bubble = rounded_rect(u, v, 0.16, 0.2, 0.84, 0.7, 0.12)
    bubble |= triangle(u, v, (0.28, 0.66), (0.46, 0.66), (0.24, 0.84))
    paint(image, coverage(bubble), WHITE)
    for row, length in enumerate((0.44, 0.36, 0.24)):
        line_top = 0.3 + row * 0.115
        bar = rounded_rect(u, v, 0.26, line_top, 0.26 + length, line_top + 0.06, 0.03)
        paint(image, coverage(bar), BLUE_BOTTOM)


def draw_words(image: np.ndarray, words: str, left: float, top: float, pixel: float) -> None:
    """``words`` in the 5x7 font, each font pixel ``pixel`` wide, from (left, top)."""
    height, width = image.shape[:2]
    x, y = grid(width, height)
    inside = np.zeros_like(x, dtype=bool)
    for index, letter in enumerate(words):
        for row, bits in enumerate(GLYPHS[letter].split()):
            for column, bit in enumerate(bits):
                if bit == "1":
                    x0 = left + (index * 6 + column) * pixel
                    y0 = top + row * pixel
                    inside |= (x >= x0) & (x < x0 + pixel) & (y >= y0) & (y < y0 + pixel)
    paint(image, coverage(inside), TEXT_BLUE)


def icon() -> np.ndarray:
    image = np.zeros((128, 128, 4))
    draw_badge(image, 2, 2, 124)
    return to_bytes(image)


def logo() -> np.ndarray:
    image = np.zeros((100, 250, 4))
    draw_badge(image, 2, 2, 96)
    pixel = 2.8
    draw_words(image, "Realtime", 110, 50 - 7 * pixel - 4, pixel)
    draw_words(image, "Text", 110, 50 + 4, pixel)
    return to_bytes(image)


def to_bytes(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGBA PNG of ``pixels`` (height x width x 4, uint8)."""
    height, width, channels = pixels.shape
    assert channels == 4 and pixels.dtype == np.uint8

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)),
            chunk(b"IEND", b""),
        ]
    )


IMAGES = {"icon.png": icon, "logo.png": logo}


def main() -> int:
    for name, draw in IMAGES.items():
        path = ADDON / name
        path.write_bytes(png(draw()))
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
