"""What the server tells Home Assistant it offers: an STT program and a conversation agent."""

from __future__ import annotations

from typing import Any

from wyoming.info import AsrModel, AsrProgram, Attribution, HandleModel, HandleProgram, Info

from . import PROJECT_URL, __version__
from .config import Settings

ATTRIBUTION = Attribution(name="wyoming-realtime-text", url=PROJECT_URL)
OPENAI = Attribution(name="OpenAI", url="https://platform.openai.com/docs/guides/realtime")
PROGRAM = "realtime-text"


def _program(
    program: type, model: type, model_name: str, what: str, languages: list[str], **flags: Any
) -> Any:
    """One installed program with one model; HA reads the model's languages."""
    return program(
        name=PROGRAM,
        description=what,
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        models=[
            model(
                name=model_name,
                description=f"{model_name} via the OpenAI Realtime API",
                attribution=OPENAI,
                installed=True,
                version=None,
                languages=languages,
            )
        ],
        **flags,
    )


def build_info(settings: Settings) -> Info:
    """HA uses the first installed asr and handle programs and their models' languages."""
    realtime, languages = settings.realtime, list(settings.languages)
    asr = _program(
        AsrProgram,
        AsrModel,
        realtime.transcription_model,
        "Speech to text through an OpenAI Realtime session",
        languages=languages,
        supports_transcript_streaming=True,
        requires_external_vad=settings.turn_detection.requires_external_vad,
        # HA's auto gain helps a quiet far-field voice (the API has none); its noise
        # reduction is left off when the API's own is on (done twice, it hurts words).
        prefers_auto_gain_enabled=True,
        prefers_noise_reduction_enabled=realtime.noise_reduction == "off",
    )
    handle = _program(
        HandleProgram,
        HandleModel,
        realtime.model,
        "Conversation agent answering in text from an OpenAI Realtime model; your TTS speaks",
        languages=languages,
        supports_handled_streaming=True,
        # HA 2026 gives the agent its CONTROL feature for this (HA 2025 ignores it).
        supports_home_control=settings.home_control.enabled,
    )
    return Info(asr=[asr], handle=[handle])
