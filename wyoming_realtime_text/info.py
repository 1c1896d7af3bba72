"""What the server tells Home Assistant it offers: an STT program and a conversation agent."""

from __future__ import annotations

from wyoming.info import AsrModel, AsrProgram, Attribution, HandleModel, HandleProgram, Info

from . import __version__
from .config import Settings

ATTRIBUTION = Attribution(
    name="wyoming-realtime-text", url="https://github.com/wyoming-realtime-text"
)
OPENAI = Attribution(name="OpenAI", url="https://platform.openai.com/docs/guides/realtime")


def build_info(settings: Settings) -> Info:
    """HA uses the first installed asr and handle programs and their models' languages."""
    languages = list(settings.languages)
    realtime = settings.realtime
    return Info(
        asr=[
            AsrProgram(
                name="realtime-text",
                description="Speech to text through an OpenAI Realtime session",
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                supports_transcript_streaming=True,
                models=[
                    AsrModel(
                        name=realtime.transcription_model,
                        description=f"{realtime.transcription_model} via the Realtime API",
                        attribution=OPENAI,
                        installed=True,
                        version=None,
                        languages=languages,
                    )
                ],
            )
        ],
        handle=[
            HandleProgram(
                name="realtime-text",
                description="Conversation agent answering in text from an OpenAI Realtime model",
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                supports_handled_streaming=True,
                models=[
                    HandleModel(
                        name=realtime.model,
                        description=f"{realtime.model} (text only; your TTS speaks it)",
                        attribution=OPENAI,
                        installed=True,
                        version=None,
                        languages=languages,
                    )
                ],
            )
        ],
    )
