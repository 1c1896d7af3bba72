"""What we know of OpenAI's models, in one place: shutdowns, reasoning, language hints.

Model names are free text in the config (compatible servers and Azure deployments have
names of their own), so nothing here refuses a name: a model we know gets the settings it
takes and a warning when it is about to be shut down; any other name is used as given.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from ..config import RealtimeSettings
from .events import Usage


@dataclass(frozen=True)
class Shutdown:
    on: datetime.date
    use_instead: str


_REALTIME_SHUTDOWN = Shutdown(
    datetime.date(2027, 1, 20), "gpt-realtime-2.1-mini or gpt-realtime-2.1"
)
_TRANSCRIBE_SHUTDOWN = Shutdown(datetime.date(2027, 2, 26), "gpt-live-transcribe")

# Announced shutdowns (the openai SDK's docstrings, 3.60.0; OpenAI's deprecations page).
SHUTDOWNS: dict[str, Shutdown] = {
    **dict.fromkeys(
        (
            "gpt-realtime",
            "gpt-realtime-2025-08-28",
            "gpt-realtime-mini",
            "gpt-realtime-mini-2025-12-15",
            "gpt-audio-mini",
            "gpt-audio-mini-2025-12-15",
        ),
        _REALTIME_SHUTDOWN,
    ),
    **dict.fromkeys(
        (
            "whisper-1",
            "gpt-4o-mini-transcribe",
            "gpt-4o-mini-transcribe-2025-12-15",
            "gpt-4o-transcribe",
            "gpt-4o-transcribe-diarize",
        ),
        _TRANSCRIBE_SHUTDOWN,
    ),
}

# The reasoning Realtime models take `session.reasoning.effort` (GA): gpt-realtime-2,
# -2.1, -2.1-mini and their dated variants (not gpt-realtime-2025-08-28, an older model).
REASONING_MODEL = re.compile(r"gpt-realtime-2(?:\.\d+)?(?:-mini)?(?:-\d{4}-\d{2}-\d{2})?")
# Transcription models that take `languages` (possible languages) besides `language`.
LANGUAGES_MODELS = frozenset({"gpt-transcribe", "gpt-live-transcribe"})
OPENAI_HOST = "api.openai.com"


def takes_reasoning(model: str) -> bool:
    """Whether `model` is one of the reasoning Realtime models (2.x)."""
    return REASONING_MODEL.fullmatch(model) is not None


def takes_languages(transcription_model: str) -> bool:
    return transcription_model in LANGUAGES_MODELS


def base_language(language: str | None) -> str | None:
    """'en-US' → 'en': transcription models take ISO-639-1 codes."""
    return language.split("-")[0].split("_")[0].lower() if language else None


def language_hints(languages: Iterable[str]) -> list[str]:
    """The configured languages as ISO-639-1 codes, each once, in their order."""
    return list(dict.fromkeys(code for lang in languages if (code := base_language(lang))))


def startup_warnings(settings: RealtimeSettings, today: datetime.date) -> list[str]:
    """One line per configuration that will stop working, or already has."""
    warnings = [
        _shutdown_warning(key, name, today)
        for key, name in (
            ("realtime.model", settings.model),
            ("realtime.transcription_model", settings.transcription_model),
        )
        if name in SHUTDOWNS
    ]
    if settings.dialect == "beta" and urlparse(settings.url).hostname == OPENAI_HOST:
        warnings.append(
            f"realtime.dialect is beta, but {OPENAI_HOST} has refused the beta interface since "
            "May 2026; set realtime.dialect: ga (beta is for compatible servers only). Each "
            "session is opened in GA once the API refuses beta"
        )
    return warnings


def _shutdown_warning(key: str, name: str, today: datetime.date) -> str:
    shutdown = SHUTDOWNS[name]
    when = "was shut down on" if today >= shutdown.on else "will be shut down on"
    return (
        f"{key} {name!r} {when} {shutdown.on.isoformat()} (OpenAI's announced shutdown); "
        f"use {shutdown.use_instead} instead"
    )


@dataclass(frozen=True)
class Price:
    """US dollars per 1M tokens (OpenAI's list, December 2026; docs/configuration.md,
    "Choosing a model")."""

    audio_in: float
    text_in: float
    text_out: float
    audio_out: float


# Exact names and their dated snapshots; any other model (Azure deployments, compatible
# servers, older models) has no estimate.
PRICES = {
    "gpt-realtime-2.1-mini": Price(audio_in=10.0, text_in=0.60, text_out=2.40, audio_out=20.0),
    "gpt-realtime-2.1": Price(audio_in=32.0, text_in=4.0, text_out=24.0, audio_out=64.0),
}
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_of(model: str) -> Price | None:
    return PRICES.get(_DATED.sub("", model))


def estimated_cost(model: str, usage: Usage | None) -> float | None:
    """What a turn's tokens cost at list prices, in dollars (None: unknown model or usage).

    Cached input is counted at the full input price: an upper bound.
    """
    price = price_of(model)
    if price is None or usage is None:
        return None
    dollars = (
        usage.input_text * price.text_in
        + usage.input_audio * price.audio_in
        + usage.output_text * price.text_out
        + usage.output_audio * price.audio_out
    )
    return dollars / 1_000_000
