"""End of turn for streamed audio: the API's turn detection, the local no-speech guard, the cap.

Satellites stream their microphone until they receive `transcript`; they never send
`audio-stop`. These tests use real (synthesised) speech, since the local voice detector
rightly ignores test tones, and the simulator's turn detection, which follows the audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from harness import (
    SILENCE,
    ServerProcess,
    server_config,
    speech,
    start_server,
    stop_server,
    tone,
)
from scripted_wake import ScriptedWake

from wyoming_realtime_text.simulator import (
    RealtimeSimulator,
    Scenario,
    SimulatedSatellite,
    SimulatedTts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
Rig = tuple[ServerProcess, SimulatedSatellite, SimulatedSatellite, SimulatedTts]


def satellite(name: str, audio: bytes) -> SimulatedSatellite:
    return SimulatedSatellite(name=name, audio=audio, send_audio_stop=False, realtime=True)


async def one_turn(
    talker: SimulatedSatellite, config: dict[str, Any], tmp_path: Path
) -> tuple[ServerProcess, list[str]]:
    """A server with `talker` as its one satellite and a TTS; one triggered turn, played.

    Returns the (stopped) server, for its log, and what the TTS was asked to say.
    """
    await talker.start()
    config["satellites"] = [{"uri": talker.uri, "name": talker.name}]
    async with SimulatedTts() as tts:
        config["tts"] = {"uri": tts.uri}
        server = await start_server(tmp_path, config)
        try:
            await talker.wait_connected(10)
            await talker.trigger()
            await talker.wait_played(20)
        finally:
            await stop_server(server)
            await talker.stop()
    return server, tts.synthesized


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    talker = satellite("talker", speech("kitchen") + SILENCE)
    quiet = satellite("quiet", SILENCE + SILENCE)
    async with SimulatedTts() as tts:
        await talker.start()
        await quiet.start()
        config = server_config(
            sim.url,
            "ga",
            tts={"uri": tts.uri},
            turn_detection={"no_speech_seconds": 1.0},
            audio={"max_utterance_seconds": 8},
        )
        config["satellites"] = [{"uri": s.uri, "name": s.name} for s in (talker, quiet)]
        server = await start_server(tmp_path_factory.mktemp("eot"), config)
        await talker.wait_connected(10)
        await quiet.wait_connected(10)
        yield server, talker, quiet, tts
        await stop_server(server)
        await talker.stop()
        await quiet.stop()


async def test_the_apis_turn_detection_ends_a_streamed_utterance(
    sim: RealtimeSimulator,
    rig: Rig,
) -> None:
    _, talker, _, tts = rig
    sim.scenario = Scenario(transcript="What is the weather like today?", reply="Sunny and mild.")
    before = len(sim.connections)
    await talker.trigger()
    await talker.wait_played(20)
    assert talker.transcripts[-1] == "What is the weather like today?"
    assert tts.synthesized[-1] == "Sunny and mild."
    (conn,) = [c for c in sim.connections[before:] if c.commits] or sim.connections[-1:]
    update = next(e for e in conn.received if e["type"] == "session.update")
    detection = update["session"]["audio"]["input"]["turn_detection"]
    assert detection["type"] == "semantic_vad"
    assert detection["create_response"] is False and detection["interrupt_response"] is False
    sent = [e["type"] for e in conn.received]
    assert "input_audio_buffer.commit" not in sent, "the API committed; we did not"
    assert "input_audio_buffer.clear" in sent, "audio after the API's commit does not linger"
    assert sent.count("response.create") == 1
    assert [kind for kind, _ in conn.vad_events][:2] == ["speech_started", "speech_stopped"]
    # The answer was asked for text only even though the API's VAD made the commit.
    response = next(e for e in conn.received if e["type"] == "response.create")
    assert response["response"]["output_modalities"] == ["text"]
    # Only the words and a little silence went up, not the whole stream.
    assert len(conn.commits[0]) / 48000 < len(speech("kitchen")) / 32000 + 1.5


async def test_no_speech_ends_locally_without_a_commit(
    sim: RealtimeSimulator,
    rig: Rig,
) -> None:
    server, _, quiet, _ = rig
    sim.scenario = Scenario(transcript="should never be heard")
    before = len(sim.connections)
    mark = len(quiet.received)
    await quiet.trigger()
    for _ in range(100):
        if any(e.type == "error" for e in quiet.received[mark:]):
            break
        await asyncio.sleep(0.05)
    new = quiet.received[mark:]
    assert [e.data["text"] for e in new if e.type == "transcript"] == [""]
    assert [e.data["code"] for e in new if e.type == "error"] == ["stt-no-text-recognized"]
    sent = [e["type"] for c in sim.connections[before:] for e in c.received]
    assert "input_audio_buffer.clear" in sent, "what went up is dropped"
    assert "input_audio_buffer.commit" not in sent and "response.create" not in sent
    assert not quiet.streaming, "the transcript told the satellite to stop streaming"
    assert "no speech in" in server.log()


async def test_speech_the_api_hears_is_not_cut_off_by_the_local_guard(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    """The local guard is for a silent room. A hum the API's turn detection takes for
    speech (and Silero does not) is the API's to judge: once it reports speech_started,
    the local model is not consulted, and the turn ends by the API's VAD, not as no-speech."""
    hummer = satellite("hummer", tone(2.0) + SILENCE)
    sim.scenario = Scenario(transcript="Hmm.", reply="Did you say something?")
    config = server_config(sim.url, "ga", turn_detection={"no_speech_seconds": 1.0})
    before = len(sim.connections)
    server, synthesized = await one_turn(hummer, config, tmp_path)
    assert hummer.transcripts == ["Hmm."]
    assert synthesized == ["Did you say something?"]
    (conn,) = [c for c in sim.connections[before:] if c.commits]
    assert [kind for kind, _ in conn.vad_events][:2] == ["speech_started", "speech_stopped"]
    assert "no speech in" not in server.log()


async def test_server_vad_is_configurable(sim: RealtimeSimulator, tmp_path: Path) -> None:
    talker = satellite("svad", speech("bedroom") + SILENCE)
    sim.scenario = Scenario(transcript="Lights off.", reply="Done.")
    config = server_config(
        sim.url, "beta", turn_detection={"type": "server_vad", "silence_ms": 700}
    )
    before = len(sim.connections)
    await one_turn(talker, config, tmp_path)
    assert talker.transcripts == ["Lights off."]
    conn = next(c for c in sim.connections[before:] if c.commits)
    update = next(e for e in conn.received if e["type"] == "session.update")
    detection = update["session"]["turn_detection"]
    assert (detection["type"], detection["silence_duration_ms"]) == ("server_vad", 700)
    assert detection["create_response"] is False
    stopped = dict(conn.vad_events)["speech_stopped"]
    started = dict(conn.vad_events)["speech_started"]
    assert stopped - started >= 700


async def test_remote_wake_word_sends_only_what_follows_it(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    """A satellite without a local wake word streams all the time (run-pipeline from wake)."""
    words = speech("kitchen")
    streamer = SimulatedSatellite(
        name="streamer", audio=words + SILENCE, start_stage="wake", send_audio_stop=False
    )
    sim.scenario = Scenario(transcript="What is the weather like today?", reply="Rain later.")
    async with ScriptedWake() as wake, SimulatedTts() as tts:
        await streamer.start()
        config = server_config(sim.url, "ga", tts={"uri": tts.uri}, wake={"uri": wake.uri})
        config["satellites"] = [{"uri": streamer.uri, "name": "streamer"}]
        before = len(sim.connections)
        server = await start_server(tmp_path, config)
        try:
            await streamer.wait_connected(10)
            await asyncio.sleep(1.0)  # the room is quiet: its audio goes to the wake service only
            assert wake.chunks > 10 and len(sim.connections) == before
            wake.arm()
            await streamer.trigger()
            await wake.wait_detection(10)
            await streamer.wait_played(20)
        finally:
            await stop_server(server)
            await streamer.stop()
    assert streamer.transcripts[-1] == "What is the weather like today?"
    assert tts.synthesized[-1] == "Rain later."
    assert wake.detects and wake.detects[0].names in (None, ["ok_nabu"])
    (conn,) = [c for c in sim.connections[before:] if c.commits]
    # Upstream got the words after the wake word and the silence the VAD needed, nothing
    # of the quiet room before it.
    assert len(conn.commits[0]) / 48000 < len(words) / 32000 + 1.5
    assert "wake word" in server.log()
