"""Real Home Assistant 2026 told `requires_external_vad: false`: HA runs no VAD of its own.

Then HA streams the microphone until the STT answers, and only our server ends the turn:
the API's turn detection when someone speaks, the local no-speech guard when nobody does
(`turn_detection.no_speech_seconds`), `audio.max_utterance_seconds` at the latest. HA reads
the flag once, when it creates the STT entity, so this is an HA of its own (HA 2026.11 only:
HA 2025 reads the transcript only after its own VAD's audio-stop, and has no such switch).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from ha_home import (
    RELEASES,
    env,  # noqa: F401  (a fixture)
)
from ha_rig import KITCHEN, Rig, Turn, answer_to, booted
from real_ha_env import HaEnv, HaSpec

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(2400)]

QUESTION = "What is the weather like today?"
NO_SPEECH_SECONDS = 1.5  # the local guard, shorter than the default 3 s to keep this quick
VAD_EVENTS = {"stt-vad-start", "stt-vad-end"}


@pytest.fixture(scope="module", params=RELEASES[:1], ids=lambda spec: f"ha{spec.version}")
def spec(request: pytest.FixtureRequest) -> HaSpec:
    """HA 2026 (RELEASES[0]), the release that reads the flag."""
    return request.param


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    spec: HaSpec,
    env: HaEnv,  # noqa: F811 - the fixture from ha_home
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp("real-ha-no-vad")
    silence = tmp / "silence.wav"
    with wave.open(str(silence), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(16000 * 2))
    config = {
        "turn_detection": {
            "requires_external_vad": False,
            "no_speech_seconds": NO_SPEECH_SECONDS,
        }
    }
    async with booted(spec, env, tmp, config, wavs=[KITCHEN, silence]) as rig:
        yield rig


async def test_ha_runs_no_vad_and_the_api_ends_the_turn(rig: Rig) -> None:
    turn = await rig.speak(KITCHEN, QUESTION)
    types = [e["type"] for e in turn.result["events"]]
    assert not VAD_EVENTS & set(types), types
    assert turn.stt_text == QUESTION, rig.context()
    assert turn.speech == answer_to(QUESTION)
    assert turn.window.count("input_audio_buffer.commit") == 0, "the API's turn detection"
    [stt] = turn.window.tap_connections("stt")
    assert "audio-stop" not in stt.types(), "HA streams until the transcript"


async def test_nobody_speaking_ends_at_the_no_speech_guard(rig: Rig) -> None:
    """A silent room (a second of silence, then the microphone's 4 s of more): our guard
    ends it with an empty transcript and HA's pipeline says it heard nothing."""
    turn: Turn = await rig.speak(Path("silence.wav"), "(nobody)", lead_seconds=0.0)
    errors = turn.events("error")
    assert [e["data"].get("code") for e in errors] == ["stt-no-text-recognized"], rig.context()
    assert errors[0]["t"] < NO_SPEECH_SECONDS + 1.5, turn.result["events"]
    assert turn.window.count("input_audio_buffer.commit") == 0
    assert turn.window.count("response.create") == 0
