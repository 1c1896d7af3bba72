"""Incremental sentence splitting, so a TTS server without synthesize streaming can start
speaking the first sentence while the rest of the answer is still arriving.

Deltas split text anywhere, so every decision looks only at text already received and
waits while the next characters could change it ("3." may become "3.5"). That makes the
result independent of how the text was chunked.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

# Lower-case, without the final dot: a "." after these never ends a sentence.
ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e",
        "a.m", "p.m", "approx", "inc", "ltd", "co", "dept", "ca", "z.b", "bzw", "usw",
        "u.a", "d.h", "vgl", "ggf", "evtl", "mme", "mlle", "sra", "srta",
    }
)  # fmt: skip
# Abbreviations only before a number ("No. 5", "max. 3"): "The answer is no." must end.
NUMBER_ABBREVIATIONS: frozenset[str] = frozenset(
    {"no", "nr", "fig", "est", "min", "max", "vol", "pp", "p"}
)

CJK_TERMINALS = "。！？．｡"
TERMINALS = ".!?…" + CJK_TERMINALS
CLOSERS = "\"'”’“»›)]}」』）】》〉"
OPENERS = "\"'“‘„«»‹([{¿¡「『（【《〈"
CJK_SOFT_BREAKS = "、，；："
SOFT_BREAKS = ",;:"


def _is_cjk(ch: str) -> bool:
    return (
        "\u3000" <= ch <= "\u9fff"
        or "\uac00" <= ch <= "\ud7af"
        or "\uf900" <= ch <= "\ufaff"
        or "\uff00" <= ch <= "\uffef"
    )


def _can_start(ch: str) -> bool:
    """Upper-case or caseless letters (CJK, Arabic…), digits and openers can start one."""
    return ch.isdigit() or ch in OPENERS or (ch.isalpha() and not ch.islower())


def _is_abbreviation(buf: str, start: int, dot: int, nxt: str) -> bool:
    """Whether the word before the "." at `dot` is an abbreviation or an initial."""
    w = dot
    while w > start and (buf[w - 1].isalpha() or buf[w - 1] == "."):
        w -= 1
    token = buf[w:dot].strip(".")
    word = token.lower()
    if word in ABBREVIATIONS:
        return True
    if word in NUMBER_ABBREVIATIONS:
        return nxt.isdigit()
    # Initials and dotted acronyms: "J. R. R.", "U.S."; but "I." ends "Neither did I."
    parts = token.split(".")
    initials = all(len(p) == 1 and p.isalpha() for p in parts)
    return initials and token != "I" and (len(parts) > 1 or token.isupper())


class SentenceSplitter:
    """Feed text deltas; get back each sentence the moment it is known to be complete.

    "Wait... what?! Really." gives "Wait... what?!" and "Really.": an ellipsis followed
    by a lower-case word continues the sentence. Pending text that reaches `max_chars`
    without a boundary is cut at a comma-like mark or a space, to bound TTS latency.
    """

    def __init__(self, max_chars: int = 300) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.max_chars = max_chars
        self._buf = ""  # text of the current (unfinished) sentence onwards
        self._pos = 0  # scan position: no boundary before it, nothing decided after it

    def feed(self, delta: str) -> list[str]:
        """Complete sentences (stripped, non-empty), in order."""
        self._buf += delta
        buf, n = self._buf, len(self._buf)
        out: list[str] = []
        start, i = 0, self._pos
        while True:
            if i - start >= self.max_chars:
                start = self._force_split(start, i, out)
                continue
            if i >= n:
                break
            if buf[i] not in TERMINALS and buf[i] != "\n":
                i += 1
                continue
            decision = self._decide(start, i)
            if decision is None:  # the next delta decides
                break
            end, i = decision
            if end >= 0:
                self._emit(start, end, out)
                start = end
        # Drop emitted text so work stays proportional to the pending sentence.
        self._buf, self._pos = buf[start:], i - start
        return out

    def flush(self) -> list[str]:
        """End of text: whatever remains, as 0 or 1 sentence; the splitter is reset."""
        out: list[str] = []
        self._emit(0, len(self._buf), out)
        self._buf, self._pos = "", 0
        return out

    def _emit(self, start: int, end: int, out: list[str]) -> None:
        sentence = self._buf[start:end].strip()
        if sentence:
            out.append(sentence)

    def _decide(self, start: int, i: int) -> tuple[int, int] | None:
        """Decide the candidate at `i`: (sentence end or -1, next scan position), or None
        when the text received so far cannot tell yet."""
        buf, n = self._buf, len(self._buf)
        if buf[i] == "\n":  # a blank line ends a sentence whatever precedes it
            k = i + 1
            while k < n and buf[k] != "\n" and buf[k].isspace():
                k += 1
            if k == n:
                return None
            return (i if buf[k] == "\n" else -1), i + 1
        j = i
        while j < n and buf[j] in TERMINALS:
            j += 1
        run = buf[i:j]
        while j < n and buf[j] in CLOSERS:
            j += 1
        if j == n:  # more punctuation or closing quotes may follow
            return None
        if any(c in CJK_TERMINALS for c in run):
            return j, j
        nxt = buf[j]
        if not nxt.isspace():  # "3.5", "example.com"; but "!本当" ends at "!"
            cjk = ("!" in run or "?" in run) and _is_cjk(nxt) and _can_start(nxt)
            return (j if cjk else -1), j
        k = j
        while k < n and buf[k].isspace():
            if buf[k] == "\n":
                return j, j
            k += 1
        if k == n:
            return None
        if _can_start(buf[k]) and not (run == "." and _is_abbreviation(buf, start, i, buf[k])):
            return j, j
        return -1, k

    def _force_split(self, start: int, i: int, out: list[str]) -> int:
        """Cut an overlong sentence at its last soft break or space before the limit."""
        buf = self._buf
        end = min(i, start + self.max_chars)
        s = start
        while s < end and buf[s].isspace():
            s += 1
        cut = end
        for p in range(end - 1, s, -1):
            if buf[p] in CJK_SOFT_BREAKS or (
                buf[p] in SOFT_BREAKS and p + 1 < end and buf[p + 1].isspace()
            ):
                cut = p + 1
                break
        else:
            for p in range(end - 1, s, -1):
                if buf[p].isspace():
                    cut = p
                    break
        self._emit(start, cut, out)
        return cut


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """All sentences of a complete text."""
    splitter = SentenceSplitter(max_chars)
    return splitter.feed(text) + splitter.flush()


async def stream_sentences(parts: AsyncIterable[str], max_chars: int = 300) -> AsyncIterator[str]:
    """Each sentence of streaming text as soon as it is complete, then the rest at its end:
    the TTS relay speaks each one while the next is still being written."""
    splitter = SentenceSplitter(max_chars)
    async for part in parts:
        for sentence in splitter.feed(part):
            yield sentence
    for sentence in splitter.flush():
        yield sentence
