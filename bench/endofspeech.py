"""Section 9: end of speech → Home Assistant has the transcript, and → its answer (issue 16).

Home Assistant's own VAD sends `audio-stop` about 1.3 s after the last word (measured on
real HA: it notices the end ~0.6 s late, then waits 0.7 s of silence). Each sample streams
what HA streams: the kitchen sample's words (up to its last speech sample), then
HA_VAD_SECONDS of silence, then `audio-stop`; in 10 ms chunks paced in real time. The
agent request goes out the moment HA has the transcript (as HA's pipeline does); it claims
the started answer, and HA speaks at `handled` (it reads no `handled-chunk`). Three ways,
on the same speech and the same simulated model (first token 50 ms after the response
starts, a delta every 20 ms):

- HA's VAD ends it (`turn_detection.ha_turns: ha`): our commit at audio-stop;
- the API's turn detection ends it (`ha_turns: api`, the default), HA 2026: it reads the
  result while it uploads, so it has the transcript when the API commits;
- the same for HA 2025: it reads only after its audio-stop, but the answer started earlier.

End of speech = when the chunk holding the last speech sample was sent; HA has the
transcript when it arrives, or (HA 2025) at its audio-stop if that is later. The API's end
of turn is the simulator's semantic_vad model (800 ms of silence at eagerness auto), not
OpenAI's, which judges the words (a finished sentence may end sooner, a pause later): the
figures show the mechanism, and the ratio holds for that model only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from clients import RATE, WIDTH, HomeAssistant, Speech, new_conversation_id
from latency import FIRST_TOKEN, TOKEN_INTERVAL
from measure import Row, fmt_ms, latency_row, median, progress
from rig import FALLBACK, serving

from wyoming_realtime_text.simulator import Scenario

HA_VAD_SECONDS = 1.3  # HA's VAD: from the last word to its audio-stop
HEARD = "What will the weather be like tomorrow?"
REPLY = "It will be sunny all day, with a light breeze in the afternoon."
PAUSE = 0.3  # between samples, so that each starts in a quiet server


@dataclass(frozen=True)
class Way:
    key: str
    label: str
    ha_turns: str
    version: tuple[int, int]
    while_uploading: bool


WAYS = (
    Way("ha", "HA's VAD (ha_turns: ha), HA 2026", "ha", (2026, 11), True),
    Way("api", "the API's turn detection (ha_turns: api), HA 2026", "api", (2026, 11), True),
    Way("api-2025", "the API's turn detection (ha_turns: api), HA 2025", "api", (2025, 12), False),
)


@dataclass
class Sample:
    transcript: float  # end of speech → HA has the `transcript`
    answer: float  # end of speech → `handled`: what HA speaks


async def _sample(uri: str, way: Way, speech: Speech) -> Sample:
    ha = HomeAssistant(uri, way.version)
    heard = await ha.stt(speech, while_uploading=way.while_uploading)
    answer = await ha.ask(heard.text, new_conversation_id())
    if answer.ended_by != "handled" or FALLBACK in answer.text:
        raise RuntimeError(f"{way.key}: no answer: {answer.ended_by} {answer.text!r}")
    ended = heard.first_chunk + speech.speech_end / (RATE * WIDTH)
    had = max(heard.transcript_at, heard.audio_stop or 0.0)  # HA 2025 reads after audio-stop
    return Sample(had - ended, answer.ended_at - ended)


async def _run(workdir: Path, way: Way, speech: Speech, count: int) -> list[Sample]:
    scenario = Scenario(
        transcript=HEARD, reply=REPLY, first_token_delay=FIRST_TOKEN, delta_delay=TOKEN_INTERVAL
    )
    turns = {"ha_turns": way.ha_turns}
    samples: list[Sample] = []
    async with serving(workdir, scenario, turn_detection=turns) as (_, server):
        for n in range(count):
            samples.append(await _sample(server.uri, way, speech))
            progress(f"9: {way.key} {n + 1}/{count}: transcript {fmt_ms(samples[-1].transcript)}")
            await asyncio.sleep(PAUSE)
    return samples


async def section(workdir: Path, quick: bool, speech: Speech) -> list[Row]:
    count = 2 if quick else 15
    words = Speech(speech.name, speech.pcm[: speech.speech_end], speech.speech_end)
    streamed = words.then_silence(HA_VAD_SECONDS)
    results = {way.key: await _run(workdir / way.key, way, streamed, count) for way in WAYS}
    rows = []
    for way in WAYS:
        samples = results[way.key]
        for what, values in (
            ("transcript at HA", [s.transcript for s in samples]),
            ("the answer HA speaks (handled)", [s.answer for s in samples]),
        ):
            rows.append(latency_row("9", f"end of speech → {what}, {way.label}", values))
    base = results["ha"]
    for key in ("api", "api-2025"):
        for what, pick in (("transcript", _transcript), ("handled", _answer)):
            ratio = median([pick(s) for s in base]) / median([pick(s) for s in results[key]])
            rows.append(
                Row(
                    "9",
                    f"ratio HA's VAD / the API's, {what}, {key}",
                    value=f"{ratio:.2f}×",
                    note="medians, same speech; the API's end of turn is the simulator's model",
                )
            )
    return rows


def _transcript(sample: Sample) -> float:
    return sample.transcript


def _answer(sample: Sample) -> float:
    return sample.answer
