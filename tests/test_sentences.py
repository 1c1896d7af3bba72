"""Streaming sentence splitting for TTS servers without synthesize streaming."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from wyoming_realtime_text.sentences import SentenceSplitter, split_sentences, stream_sentences

ENGLISH = (
    "Hello there. How are you today? I'm fine, thanks! It costs 3.5 dollars, or 1,000.25 "
    "in total; see v2.0 at 10.30 p.m. tonight. Dr. Smith met Mrs. Jones at St. Mary's, "
    'e.g. near the U.S. border. He said "Stop." Then he left... and came back?! '
    "Visit example.com for more. I love J. R. R. Tolkien. The answer is no. See No. 5."
    "\n\nA new paragraph starts here.\nNew line after a sentence. Wait… what? Okay."
)
GERMAN = (
    "Das ist z.B. gut. Ja, wirklich! Wir treffen uns um 10.30 Uhr bzw. etwas später, "
    "ca. 20 Min. nach Beginn. Frau Dr. Müller kommt auch. „Schön“, sagte sie. Nr. 7 "
    "gewinnt usw. Ende gut, alles gut? Natürlich.\n\nZweiter Absatz mit 3,5 Prozent."
)
JAPANESE = (
    "こんばんは!本当ですね。これだけ一緒にいると、忙しい日々でもこうやって会える時間が、"
    "本当に特別。「はい。」次です！えっ？本当？バージョン3.5はいいですね。"
    "Python 3.11 を使います。\n\nまた明日。"
)
TEXTS = [ENGLISH, GERMAN, JAPANESE]


def stream(deltas: list[str], max_chars: int = 300) -> list[str]:
    splitter = SentenceSplitter(max_chars)
    out = [s for d in deltas for s in splitter.feed(d)]
    return out + splitter.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("It costs 3.5 dollars. Okay.", ["It costs 3.5 dollars.", "Okay."]),
        ("Total 1,000.25, v2.0 at 10.30. Done.", ["Total 1,000.25, v2.0 at 10.30.", "Done."]),
        (
            "Dr. Smith arrived at 10 a.m. today. Good.",
            ["Dr. Smith arrived at 10 a.m. today.", "Good."],
        ),
        ("Visit example.com today.", ["Visit example.com today."]),
        # An ellipsis followed by a lower-case word continues the sentence.
        ("Wait... what?! Really.", ["Wait... what?!", "Really."]),
        ("Wait… Then go.", ["Wait…", "Then go."]),
        ('He said "Stop." Then left.', ['He said "Stop."', "Then left."]),
        ("She left. “Why?” he asked.", ["She left.", "“Why?” he asked."]),
        ("Das ist z.B. gut. Ja.", ["Das ist z.B. gut.", "Ja."]),
        ("I love J. R. R. Tolkien. He wrote.", ["I love J. R. R. Tolkien.", "He wrote."]),
        ("Neither did I. Then we left.", ["Neither did I.", "Then we left."]),
        ("The answer is no. Sorry.", ["The answer is no.", "Sorry."]),
        ("See No. 5 now. Yes.", ["See No. 5 now.", "Yes."]),
        ("Apples, pears, etc. Then more.", ["Apples, pears, etc. Then more."]),
        ("Apples, pears, etc.", ["Apples, pears, etc."]),
        ("It came 3. in the race.", ["It came 3. in the race."]),
        ("Привет. Как дела?", ["Привет.", "Как дела?"]),
        (
            "こんばんは!本当ですね。これだけ一緒にいると、忙しい日々でもこうやって会える時間が、本当に特別",
            [
                "こんばんは!",
                "本当ですね。",
                "これだけ一緒にいると、忙しい日々でもこうやって会える時間が、本当に特別",
            ],
        ),
        ("「はい。」次です。", ["「はい。」", "次です。"]),
        ("バージョン3.5です。", ["バージョン3.5です。"]),
        ("Title\n\nBody text", ["Title", "Body text"]),
        ("Title\n \nBody text", ["Title", "Body text"]),
        ("Done.\nnext line", ["Done.", "next line"]),
        ("one\ntwo", ["one\ntwo"]),
        ("  \n\n  ", []),
        ("", []),
    ],
)
def test_split(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_first_sentence_is_returned_before_the_rest_arrives() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there. How") == ["Hello there."]
    assert splitter.feed(" are you?") == []
    assert splitter.flush() == ["How are you?"]


async def test_streamed_sentences_come_before_the_rest_is_written() -> None:
    more = asyncio.Event()

    async def deltas() -> AsyncIterator[str]:
        yield "Hello there. How"
        await more.wait()
        yield " are you"

    sentences = stream_sentences(deltas())
    assert await anext(sentences) == "Hello there."
    more.set()
    assert [s async for s in sentences] == ["How are you"]


def test_dot_at_end_of_delta_waits_for_the_next_delta() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("5 dollars. Okay.") == ["It costs 3.5 dollars."]
    assert splitter.flush() == ["Okay."]


def test_trailing_space_is_not_enough_to_decide() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Mr. ") == []
    assert splitter.feed("Smith is here. ") == []
    assert splitter.feed("And") == ["Mr. Smith is here."]


def test_cjk_terminal_waits_only_for_a_possible_closing_quote() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("「はい。") == []
    assert splitter.feed("」次") == ["「はい。」"]
    assert splitter.feed("です。") == []
    assert splitter.feed("あ") == ["次です。"]


def test_flush_resets() -> None:
    splitter = SentenceSplitter()
    splitter.feed("Unfinished")
    assert splitter.flush() == ["Unfinished"]
    assert splitter.flush() == []
    assert splitter.feed("New. Text") == ["New."]


def test_max_chars_prefers_soft_breaks_then_spaces() -> None:
    text = "one two three, four five six seven eight nine ten"
    assert split_sentences(text, max_chars=30) == [
        "one two three,",
        "four five six seven eight",
        "nine ten",
    ]


def test_max_chars_splits_japanese_at_reading_comma() -> None:
    text = "これだけ一緒にいると、忙しい日々でもこうやって会える時間が本当に特別"
    assert split_sentences(text, max_chars=20) == [
        "これだけ一緒にいると、",
        "忙しい日々でもこうやって会える時間が本当",
        "に特別",
    ]


def test_max_chars_hard_cut_without_any_break() -> None:
    assert split_sentences("x" * 70, max_chars=30) == ["x" * 30, "x" * 30, "x" * 10]


def test_max_chars_bounds_latency_while_streaming() -> None:
    splitter = SentenceSplitter(max_chars=50)
    emitted = [s for ch in "word " * 100 for s in splitter.feed(ch)]
    assert len(emitted) >= 9
    assert all(len(s) <= 50 for s in emitted)
    assert " ".join(emitted + splitter.flush()).split() == ["word"] * 100


def test_invalid_max_chars() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(max_chars=0)


def _no_space(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("max_chars", [300, 40, 17])
@pytest.mark.parametrize("text", TEXTS, ids=["en", "de", "ja"])
def test_chunking_never_changes_the_result(text: str, max_chars: int) -> None:
    expected = split_sentences(text, max_chars)
    assert len(expected) > 5
    assert _no_space("".join(expected)) == _no_space(text)
    assert all(s == s.strip() and s for s in expected)
    for cut in range(len(text) + 1):
        assert stream([text[:cut], text[cut:]], max_chars) == expected, cut
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 60)))
        deltas = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert stream(deltas, max_chars) == expected, deltas
    assert stream(list(text), max_chars) == expected


def test_sample_texts_split_as_intended() -> None:
    assert split_sentences(GERMAN) == [
        "Das ist z.B. gut.",
        "Ja, wirklich!",
        "Wir treffen uns um 10.30 Uhr bzw. etwas später, ca. 20 Min. nach Beginn.",
        "Frau Dr. Müller kommt auch.",
        "„Schön“, sagte sie.",
        "Nr. 7 gewinnt usw. Ende gut, alles gut?",
        "Natürlich.",
        "Zweiter Absatz mit 3,5 Prozent.",
    ]
