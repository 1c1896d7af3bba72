"""Cleaning the model's text before anyone sees or speaks it."""

from __future__ import annotations

import re

# Audio control tokens that leak into text deltas, e.g. <|audio_text|>, <|vq_hbr_audio_1234|>.
CONTROL_TOKEN = re.compile(r"<\|[A-Za-z0-9_.:-]{1,64}\|>")
_PARTIAL_TOKEN = re.compile(r"<(?:\|[A-Za-z0-9_.:-]{0,64}\|?)?$")


class ControlTokenFilter:
    """Strips control tokens from a delta stream, even when one is split across deltas.

    A delta that ends in what could be the start of a token is held back until the next
    delta shows whether it was one; `flush` releases whatever is still held.
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text = CONTROL_TOKEN.sub("", self._held + delta)
        partial = _PARTIAL_TOKEN.search(text)
        if partial:
            self._held = text[partial.start() :]
            return text[: partial.start()]
        self._held = ""
        return text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def strip_control_tokens(text: str) -> str:
    return CONTROL_TOKEN.sub("", text)
