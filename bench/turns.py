"""Sections 2-4: from the end of speech to the first text (or the transcript) at the client.

2. Cold vs warm sessions (`realtime.warm_sessions` 0 vs 2) with a simulator that takes
   150 ms to accept a connection and 300 ms to its first token. Several ways to ask, since
   the handshake only costs time where it is on the critical path.
3. Home Assistant's usual path (STT, then the agent: two round trips in fresh sessions)
   as a model, and measured with our server set to `conversation.one_round_trip: false`,
   against our one-round-trip default.
4. End of turn for streamed audio that never gets `audio-stop` (satellites).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients import (
    Connection,
    HomeAssistant,
    Speech,
    new_conversation_id,
    pipeline_turn,
    silence,
)
from measure import Row, fmt_ms, median, percentile, progress, verdict
from rig import FALLBACK, ConfigRejected, serving

from wyoming_realtime_text.simulator import Scenario

HANDSHAKE = 0.15
FIRST_TOKEN = 0.3
TRANSCRIPTION = 0.0  # the simulator's transcription_delay
HA_SILENCE_WAIT = 0.7  # Home Assistant's default wait for silence at the end of a command
TOLERANCE = 0.005  # timing noise allowed when checking "saves at least the handshake"
SETTLE = 0.5  # between samples: the warm pool has time to replace what was taken
NOT_IMPLEMENTED = "n/a (warm sessions not implemented)"


def _delayed() -> Scenario:
    heard = itertools.count(1)
    return Scenario(
        handshake_delay=HANDSHAKE,
        first_token_delay=FIRST_TOKEN,
        transcript=lambda _pcm: f"Please answer utterance {next(heard)}.",
    )


# -- ways to ask: each returns seconds from the end of speech (or the message) to first text --


async def ha_voice(uri: str, speech: Speech, *, realtime: bool) -> float:
    """Home Assistant: STT on one connection, then the agent request on another.

    A new conversation from a Home Assistant of its own: one that spoke a moment ago would
    have its request started in that conversation (the server's follow-up guess), which a
    new conversation id then undoes; that is not the path these rows time.
    """
    stt, reply = await HomeAssistant(uri).voice_turn(
        speech, new_conversation_id(), realtime=realtime
    )
    if reply.first_text_at is None or FALLBACK in reply.text:
        raise RuntimeError(f"no answer: {reply.text!r}")
    assert stt.audio_stop is not None  # read after the upload, audio-stop included
    return reply.first_text_at - stt.audio_stop


async def direct(uri: str, speech: Speech, *, realtime: bool) -> float:
    """A direct client (run-pipeline asr -> handle) on a new connection (a new conversation)."""
    async with Connection(uri) as conn:
        turn = await pipeline_turn(conn, speech, realtime=realtime)
    if turn.audio_stop is None or turn.first_text_at is None or turn.error:
        raise RuntimeError(f"no answer: {turn.error}")
    return turn.first_text_at - turn.audio_stop


async def typed(uri: str) -> float:
    """A typed message in a new conversation (Home Assistant's Assist dialog)."""
    # Not a command or a state question ("what is the X" is one): the simulated model would
    # call a tool, and the answer would be an intent rather than text.
    reply = await HomeAssistant(uri).converse(
        "Tell me something about the weather today.", new_conversation_id()
    )
    if reply.first_text_at is None or FALLBACK in reply.text:
        raise RuntimeError(f"no answer: {reply.text!r}")
    return reply.first_text_at - reply.sent


Ask = Callable[[str], Awaitable[float]]


@dataclass
class Flow:
    label: str
    ask: Ask
    samples: int


async def _warm_up(uri: str, speech: Speech) -> None:
    """Run each code path once (a spoken HA turn, a direct client) before timing anything."""
    await ha_voice(uri, speech, realtime=False)
    await direct(uri, speech, realtime=False)


async def _measure(
    workdir: Path, flows: list[Flow], speech: Speech, **sections: dict[str, Any]
) -> dict[str, list[float]]:
    async with serving(workdir, _delayed(), **sections) as (_, server):
        await _warm_up(server.uri, speech)
        results: dict[str, list[float]] = {}
        for flow in flows:
            values = results[flow.label] = []
            for _ in range(flow.samples):
                await asyncio.sleep(SETTLE)  # warm sessions taken meanwhile are replaced
                values.append(await flow.ask(server.uri))
            progress(f"   {flow.label}: median {fmt_ms(median(values))}")
        return results


async def _with_warm(
    workdir: Path, flows: list[Flow], speech: Speech, warm: int, **sections: dict[str, Any]
) -> dict[str, list[float]] | None:
    """Measure with `realtime.warm_sessions: warm`; None if the server does not know the key."""
    try:
        return await _measure(workdir, flows, speech, realtime={"warm_sessions": warm}, **sections)
    except ConfigRejected as err:
        if "unknown config key" not in str(err):
            raise
        progress(f"   the server rejects realtime.warm_sessions: {err}")
        return None


def _spread(values: list[float]) -> tuple[str, str, str]:
    return str(len(values)), fmt_ms(median(values)), fmt_ms(percentile(values, 99))


def _flows(speech: Speech, quick: bool) -> list[Flow]:
    live, once = (1, 1) if quick else (6, 10)

    def voice_live(uri: str) -> Awaitable[float]:
        return ha_voice(uri, speech, realtime=True)

    def voice_once(uri: str) -> Awaitable[float]:
        return ha_voice(uri, speech, realtime=False)

    def direct_once(uri: str) -> Awaitable[float]:
        return direct(uri, speech, realtime=False)

    return [
        Flow(f"HA voice turn, {speech.seconds:.1f} s streamed in real time", voice_live, live),
        Flow("HA voice turn, audio sent at once", voice_once, once),
        Flow("direct client (run-pipeline), audio sent at once", direct_once, once),
        Flow("typed message, new conversation", typed, once),
    ]


def _cold_warm_rows(
    flows: list[Flow], cold: dict[str, list[float]], warm: dict[str, list[float]] | None
) -> list[Row]:
    rows = []
    for flow in flows:
        rows.append(Row("2", f"{flow.label}: cold (warm_sessions: 0)", *_spread(cold[flow.label])))
        label = f"{flow.label}: warm (warm_sessions: 2)"
        if warm is None:
            rows.append(Row("2", label, value=NOT_IMPLEMENTED))
            continue
        cold_median = median(cold[flow.label])
        saving = cold_median - median(warm[flow.label])
        row = Row("2", label, *_spread(warm[flow.label]), note=f"saves {fmt_ms(saving)}")
        if cold_median >= FIRST_TOKEN + HANDSHAKE - TOLERANCE:
            row.goal = f"saves ≥ {fmt_ms(HANDSHAKE)}"
            row.met = verdict(saving >= HANDSHAKE - TOLERANCE)
        else:
            row.note += "; cold did not wait for the handshake (it overlapped the speech)"
        rows.append(row)
    return rows


def _round_trip_rows(one: list[float], two: list[float], two_warm: list[float] | None) -> list[Row]:
    model = HANDSHAKE + TRANSCRIPTION + HANDSHAKE + FIRST_TOKEN
    rows = [
        Row(
            "3",
            "usual HA path (model): STT, then the agent, each in a fresh session",
            value=fmt_ms(model),
            note="handshake 150 + transcription 0, then handshake 150 + first token 300 ms",
        ),
        Row(
            "3",
            "our server, conversation.one_round_trip: false (measured)",
            *_spread(two),
            note="HA voice turn streamed in real time; warm_sessions: 0",
        ),
        Row(
            "3",
            "our server, one round trip (default; measured)",
            *_spread(one),
            note="the runs of section 2's first cold row",
        ),
        Row(
            "3",
            "ratio two round trips / one round trip (measured)",
            value=f"{median(two) / median(one):.2f}×",
            note=f"usual HA path (model) / ours: {model / median(one):.2f}×",
        ),
    ]
    if two_warm is not None:
        rows.append(
            Row(
                "3",
                "our server, one_round_trip: false with warm_sessions: 2 (measured)",
                *_spread(two_warm),
                note=f"{median(two_warm) / median(one):.2f}× the one round trip",
            )
        )
    return rows


async def sections_2_and_3(workdir: Path, quick: bool, speech: Speech) -> list[Row]:
    flows = _flows(speech, quick)
    progress("2: cold sessions (warm_sessions: 0); handshake 150 ms, first token 300 ms")
    cold = await _with_warm(workdir / "cold", flows, speech, 0)
    implemented = cold is not None
    if cold is None:
        cold = await _measure(workdir / "cold", flows, speech)
    warm = None
    if implemented:
        progress("2: warm sessions (warm_sessions: 2)")
        warm = await _with_warm(workdir / "warm", flows, speech, 2)
    rows = _cold_warm_rows(flows, cold, warm)

    progress("3: conversation.one_round_trip: false (the agent is asked after the transcript)")
    voice, label = flows[:1], flows[0].label
    two_trips = {"one_round_trip": False}
    two_warm = None
    if implemented:
        two = await _with_warm(workdir / "two", voice, speech, 0, conversation=two_trips)
        two_warm = await _with_warm(workdir / "two-warm", voice, speech, 2, conversation=two_trips)
    else:
        two = await _measure(workdir / "two", voice, speech, conversation=two_trips)
    assert two is not None
    return rows + _round_trip_rows(cold[label], two[label], two_warm[label] if two_warm else None)


# -- section 4 ------------------------------------------------------------------------------


async def _end_of_turn(uri: str, speech: Speech, samples: int, *, words: bool) -> list[float]:
    """Stream without audio-stop until the transcript; from the words' end (or stream start)."""
    values = []
    for _ in range(samples):
        async with Connection(uri) as conn:
            turn = await pipeline_turn(conn, speech, audio_stop=False)
        end = turn.speech_end if words else turn.started
        if turn.transcript_at is None or end is None:
            raise RuntimeError(f"no transcript for a streamed turn: {turn.error}")
        values.append(turn.transcript_at - end)
        await asyncio.sleep(0.2)
    return values


async def section_4(workdir: Path, quick: bool, speech: Speech) -> list[Row]:
    samples = 1 if quick else 5
    streamed = speech.then_silence(4.0)
    quiet = Speech("silence", silence(5.0), 0)
    semantic = {"type": "semantic_vad", "eagerness": "auto"}
    server_vad = {"type": "server_vad", "silence_ms": 500}
    progress("4: streamed speech without audio-stop, semantic_vad (eagerness auto)")
    async with serving(workdir / "semantic", Scenario(), turn_detection=semantic) as (_, server):
        await direct(server.uri, speech, realtime=False)  # warm-up
        semantic_values = await _end_of_turn(server.uri, streamed, samples, words=True)
        progress("4: silence only: the local no-speech fallback")
        fallback = await _end_of_turn(server.uri, quiet, max(1, samples - 2), words=False)
    progress("4: server_vad, silence_ms 500")
    async with serving(workdir / "server-vad", Scenario(), turn_detection=server_vad) as (
        _,
        server,
    ):
        await direct(server.uri, speech, realtime=False)  # warm-up
        server_values = await _end_of_turn(server.uri, streamed, samples, words=True)
    simulated = "the simulator's VAD model, not OpenAI's"
    return [
        Row(
            "4",
            "end of speech → transcript, semantic_vad (eagerness auto)",
            *_spread(semantic_values),
            note=f"{simulated}: 800 ms of silence",
        ),
        Row(
            "4",
            "end of speech → transcript, server_vad (silence_ms 500)",
            *_spread(server_values),
            note=f"{simulated}: silence_ms",
        ),
        Row(
            "4",
            "local no-speech fallback: silence only, stream start → empty transcript",
            *_spread(fallback),
            note="turn_detection.no_speech_seconds: 3 (local Silero VAD)",
        ),
        Row(
            "4",
            "reference: Home Assistant's default silence wait",
            value=fmt_ms(HA_SILENCE_WAIT),
            note="a constant, not measured",
        ),
    ]
