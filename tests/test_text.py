"""Control-token stripping and the replayable live text stream."""

from __future__ import annotations

import asyncio

import pytest

from wyoming_realtime_text.stream import TextStream
from wyoming_realtime_text.text import ControlTokenFilter, strip_control_tokens


def run_filter(deltas: list[str]) -> str:
    token_filter = ControlTokenFilter()
    return "".join(token_filter.feed(d) for d in deltas) + token_filter.flush()


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        (["Hello <|audio_text|>world"], "Hello world"),
        (["Hello <|", "vq_hbr_audio_1234", "|> world"], "Hello  world"),
        (["<", "|audio_text|", ">Hi"], "Hi"),
        (["a < b and c > d"], "a < b and c > d"),
        (["x <| not a token"], "x <| not a token"),
        (["ends with <"], "ends with <"),
        (["こんばんは<|audio_text|>!"], "こんばんは!"),
    ],
)
def test_control_tokens_stripped_across_deltas(deltas: list[str], expected: str) -> None:
    assert run_filter(deltas) == expected


def test_filter_holds_back_only_a_possible_token() -> None:
    token_filter = ControlTokenFilter()
    assert token_filter.feed("Hi <|aud") == "Hi "
    assert token_filter.feed("io|> there") == " there"


def test_strip_control_tokens() -> None:
    assert strip_control_tokens("a<|x|>b<|y_1|>c") == "abc"


async def test_late_reader_replays_then_follows_live() -> None:
    stream = TextStream()
    stream.push("one ")
    stream.push("two ")
    seen: list[str] = []

    async def read() -> None:
        async for part in stream.follow():
            seen.append(part)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    assert seen == ["one ", "two "]
    stream.push("three")
    await asyncio.sleep(0)
    assert seen[-1] == "three"
    stream.finish()
    await asyncio.wait_for(reader, 1)
    assert stream.text == "one two three"


async def test_finish_with_final_text_and_wait() -> None:
    stream = TextStream()
    stream.push("draft")
    waiter = asyncio.create_task(stream.wait())
    stream.finish("Final text")
    assert await asyncio.wait_for(waiter, 1) == "Final text"
    stream.push("ignored after finish")
    assert stream.text == "Final text"
