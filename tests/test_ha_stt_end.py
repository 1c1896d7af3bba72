"""Home Assistant's STT turns end when the API hears the end of speech, not at HA's audio-stop.

HA's own VAD sends audio-stop about 1.3 s after the last word (it lags ~0.6 s behind the
speech, then waits 0.7 s of silence). With `turn_detection.ha_turns: api` (the default) an
HA STT turn runs on a session with the API's turn detection: the moment the API commits the
user's words, the answer starts and the `transcript` goes out. HA 2026 reads it at once (it
reads the result while it still uploads) and stops streaming; HA 2025 reads it after its
audio-stop, but its agent request finds the answer already started. The audio below is what
HA streams: the words, then the silence its VAD waits through before audio-stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from harness import (
    HomeAssistant,
    ServerProcess,
    new_conversation_id,
    read_until,
    running_server,
    send_audio,
    server_config,
    speech,
)
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")

HA_VAD_SECONDS = 1.3  # from the last word to HA's audio-stop, as measured on real HA
HEARD = "what is the weather like today"
REPLY = "Sunny, and twenty degrees."


def as_ha_streams() -> bytes:
    """The words and the silence HA's VAD streams before its audio-stop (16 kHz pcm16)."""
    return speech("kitchen") + bytes(int(16000 * 2 * HA_VAD_SECONDS))


def asking(sim: RealtimeSimulator) -> int:
    """The model hears HEARD and answers REPLY; the number of sessions before this test's."""
    sim.scenario = Scenario(transcript=HEARD, reply=REPLY)
    return len(sim.connections)


def sent_types(sim: RealtimeSimulator, before: int) -> list[str]:
    """What the server sent the API on the sessions opened since `before`."""
    return [str(e["type"]) for c in sim.connections[before:] for e in c.received]


def api_said(sim: RealtimeSimulator, before: int) -> list[str]:
    return [str(e["type"]) for c in sim.connections[before:] for e in c.sent]


async def test_ha_2026_reads_the_transcript_before_its_vad_ends(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """The transcript reaches HA 2026 while it still streams the silence: its audio-stop is
    never sent; the agent request then claims the answer that started at the API's commit."""
    before = asking(sim)
    ha = HomeAssistant(server.uri, version=(2026, 11))
    transcript, _ = await ha.stt(as_ha_streams())
    assert transcript.text == HEARD
    assert ha.audio_stopped_at is None, "the transcript must come before HA's audio-stop"
    reply = await ha.ask(HEARD, new_conversation_id())
    assert reply.spoken == REPLY
    sent = sent_types(sim, before)
    assert sent.count("response.create") == 1, "one round trip: the started answer"
    assert "input_audio_buffer.commit" not in sent, "the API's turn detection committed"
    said = api_said(sim, before)
    assert said.index("input_audio_buffer.speech_stopped") < said.index(
        "input_audio_buffer.committed"
    )


async def test_ha_2025_finds_its_answer_started_before_its_audio_stop(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """HA 2025 reads only after its audio-stop; by then the answer is already asked for."""
    before = asking(sim)
    events: list[Event] = []
    async with AsyncTcpClient.from_uri(server.uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await send_audio(client, as_ha_streams(), 16000, 2, 1, 10, paced=True, stop=False)
        asked_before_stop = sent_types(sim, before).count("response.create")
        await client.write_event(AudioStop().event())
        await read_until(client, events, Transcript, 10)
    assert asked_before_stop == 1, "the answer must start at the API's commit"
    assert Transcript.from_event(events[-1]).text == HEARD
    ha = HomeAssistant(server.uri, version=(2025, 12))
    reply = await ha.ask(HEARD, new_conversation_id())
    assert reply.spoken == REPLY
    assert sent_types(sim, before).count("response.create") == 1


async def test_audio_stop_before_the_api_decides_still_ends_the_turn(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """HA's VAD (or an older HA) may end first: audio-stop commits at once, as before."""
    before = asking(sim)
    ha = HomeAssistant(server.uri, version=(2026, 11))
    transcript, _ = await ha.stt(speech("kitchen"))  # audio-stop right after the words
    assert transcript.text == HEARD
    assert ha.audio_stopped_at is not None
    reply = await ha.ask(HEARD, new_conversation_id())
    assert reply.spoken == REPLY
    sent = sent_types(sim, before)
    assert sent.count("input_audio_buffer.commit") == 1
    assert sent.count("response.create") == 1


async def test_nobody_speaking_ends_in_an_empty_transcript(
    sim: RealtimeSimulator, server: ServerProcess
) -> None:
    """HA 2026 streaming a silent room: the local guard ends the turn at no_speech_seconds
    (HA's pipeline then says stt-no-text-recognized); nothing is committed or asked."""
    sim.scenario = Scenario(transcript="(nothing)")
    before = len(sim.connections)
    ha = HomeAssistant(server.uri, version=(2026, 11))
    loop = asyncio.get_running_loop()
    started = loop.time()
    transcript, _ = await ha.stt(bytes(16000 * 2 * 8))  # 8 s of silence, no audio-stop in it
    assert transcript.text == ""
    assert ha.audio_stopped_at is None
    assert loop.time() - started < 6, "ended by no_speech_seconds (3 s), not by the audio"
    sent = sent_types(sim, before)
    assert "input_audio_buffer.commit" not in sent
    assert "response.create" not in sent


# -- ha_turns: ha, and what the server tells HA ------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ha_alone(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    config = server_config(
        sim.url,
        "ga",
        turn_detection={"ha_turns": "ha", "requires_external_vad": False},
        realtime={"noise_reduction": "far_field"},
    )
    async with running_server(tmp_path_factory.mktemp("ha-alone"), config) as process:
        yield process


async def test_with_ha_alone_the_turn_ends_at_audio_stop(
    sim: RealtimeSimulator, ha_alone: ServerProcess
) -> None:
    before = asking(sim)
    ha = HomeAssistant(ha_alone.uri, version=(2026, 11))
    transcript, _ = await ha.stt(as_ha_streams())
    assert transcript.text == HEARD
    assert ha.audio_stopped_at is not None, "nothing but audio-stop ends it"
    updates = [e for c in sim.connections[before:] for e in c.received if is_update(e)]
    assert updates and all(audio_input(e)["turn_detection"] is None for e in updates)
    assert all(audio_input(e)["noise_reduction"] == {"type": "far_field"} for e in updates)
    assert sent_types(sim, before).count("input_audio_buffer.commit") == 1


async def test_default_sessions_have_turn_detection_and_no_noise_reduction(
    sim: RealtimeSimulator, server: ServerProcess, dialect: str
) -> None:
    before = asking(sim)
    await HomeAssistant(server.uri, version=(2026, 11)).stt(speech("kitchen"))
    updates = [e for c in sim.connections[before:] for e in c.received if is_update(e)]
    assert updates
    for update in updates:
        session = update["session"]
        if dialect == "beta":
            assert session["turn_detection"]["create_response"] is False
            assert "input_audio_noise_reduction" not in session
        else:
            assert audio_input(update)["turn_detection"]["create_response"] is False
            assert "noise_reduction" not in audio_input(update)


async def test_info_says_what_suits_the_api(server: ServerProcess, ha_alone: ServerProcess) -> None:
    """requires_external_vad as configured; HA's noise reduction only while the API's is off
    (done twice it hurts the words); auto gain on (the API has none)."""
    default, alone = await describe(server.uri), await describe(ha_alone.uri)
    assert default.requires_external_vad is True
    assert default.prefers_noise_reduction_enabled is True
    assert default.prefers_auto_gain_enabled is True
    assert alone.requires_external_vad is False
    assert alone.prefers_noise_reduction_enabled is False
    assert alone.prefers_auto_gain_enabled is True


async def describe(uri: str) -> Any:
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 5)
    assert event is not None
    return Info.from_event(event).asr[0]


def is_update(event: dict[str, Any]) -> bool:
    return event["type"] == "session.update"


def audio_input(update: dict[str, Any]) -> dict[str, Any]:
    """A GA session.update's audio.input settings (all of them sent, null where off)."""
    return update["session"]["audio"]["input"]
