"""The model table: shutdown warnings at start-up, and which models take which settings."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from wyoming_realtime_text.config import RealtimeSettings, load_settings
from wyoming_realtime_text.realtime.models import (
    SHUTDOWNS,
    language_hints,
    startup_warnings,
    takes_languages,
    takes_reasoning,
)

BEFORE = datetime.date(2026, 12, 4)
AFTER = datetime.date(2027, 3, 1)


def realtime(**changes: object) -> RealtimeSettings:
    return dataclasses.replace(RealtimeSettings(api_key="sk-x"), **changes)


def test_the_packaged_defaults_are_current_models() -> None:
    """The defaults must not be on the shutdown list: on that day every install would fail."""
    settings = load_settings(env={"OPENAI_API_KEY": "sk-x"})
    assert startup_warnings(settings.realtime, BEFORE) == []
    assert startup_warnings(settings.realtime, AFTER) == []
    assert takes_reasoning(settings.realtime.model)
    assert takes_languages(settings.realtime.transcription_model)


@pytest.mark.parametrize(
    ("key", "name", "date"),
    [
        ("model", "gpt-realtime", "2027-01-20"),
        ("model", "gpt-realtime-mini-2025-12-15", "2027-01-20"),
        ("transcription_model", "gpt-4o-mini-transcribe", "2027-02-26"),
        ("transcription_model", "whisper-1", "2027-02-26"),
    ],
)
def test_a_model_with_an_announced_shutdown_is_warned_about(key: str, name: str, date: str) -> None:
    (before,) = startup_warnings(realtime(**{key: name}), BEFORE)
    assert f"realtime.{key} {name!r} will be shut down on {date}" in before
    assert "use gpt-" in before
    (after,) = startup_warnings(realtime(**{key: name}), AFTER)
    assert f"was shut down on {date}" in after


def test_unknown_names_are_allowed_and_quiet() -> None:
    """Compatible servers and Azure deployments have names of their own."""
    settings = realtime(model="my-deployment", transcription_model="whisper-deployment")
    assert startup_warnings(settings, BEFORE) == []
    assert "my-deployment" not in SHUTDOWNS


def test_beta_on_api_openai_com_is_a_startup_warning() -> None:
    (warning,) = startup_warnings(realtime(dialect="beta"), BEFORE)
    assert "realtime.dialect: ga" in warning and "compatible servers" in warning
    compatible = realtime(dialect="beta", url="wss://realtime.example.net/v1/realtime")
    assert startup_warnings(compatible, BEFORE) == []


def test_which_models_take_reasoning_and_languages() -> None:
    assert [
        m
        for m in (
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-2.1-mini",
            "gpt-realtime-2.1-2026-09-30",
            "gpt-realtime",
            "gpt-realtime-2025-08-28",
            "gpt-realtime-1.5",
            "gpt-realtime-mini",
        )
        if takes_reasoning(m)
    ] == [
        "gpt-realtime-2",
        "gpt-realtime-2.1",
        "gpt-realtime-2.1-mini",
        "gpt-realtime-2.1-2026-09-30",
    ]
    assert takes_languages("gpt-transcribe") and not takes_languages("whisper-1")
    assert language_hints(["en", "en-US", "pt_BR", "de", ""]) == ["en", "pt", "de"]
