"""How a session addresses and authenticates to OpenAI, Azure and compatible servers."""

from __future__ import annotations

import pytest

from wyoming_realtime_text.config import RealtimeSettings
from wyoming_realtime_text.realtime.session import auth_headers, redact_url, session_url


@pytest.mark.parametrize(
    ("url", "model", "expected"),
    [
        (
            "wss://api.openai.com/v1/realtime",
            "gpt-realtime",
            "wss://api.openai.com/v1/realtime?model=gpt-realtime",
        ),
        (
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt",
            "gpt-realtime",
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt",
        ),
        (
            "ws://127.0.0.1:9/v1/realtime?model=mine",
            "gpt-realtime",
            "ws://127.0.0.1:9/v1/realtime?model=mine",
        ),
        ("ws://127.0.0.1:9/v1/realtime", "", "ws://127.0.0.1:9/v1/realtime"),
    ],
)
def test_session_url_adds_the_model_once(url: str, model: str, expected: str) -> None:
    assert session_url(RealtimeSettings(url=url, model=model, api_key="k")) == expected


def test_auth_header_per_host_and_setting() -> None:
    openai = RealtimeSettings(api_key="sk-1")
    assert auth_headers(openai) == {"Authorization": "Bearer sk-1"}
    azure = RealtimeSettings(url="wss://res.openai.azure.com/openai/v1/realtime", api_key="az")
    assert auth_headers(azure) == {"api-key": "az"}
    entra = RealtimeSettings(url=azure.url, api_key="token", auth="bearer")
    assert auth_headers(entra) == {"Authorization": "Bearer token"}
    forced = RealtimeSettings(url="wss://proxy.example/v1/realtime", api_key="x", auth="api-key")
    assert auth_headers(forced) == {"api-key": "x"}


def test_key_in_a_url_is_redacted_for_logs() -> None:
    url = "wss://res.openai.azure.com/openai/realtime?api-key=SECRET&deployment=rt"
    assert "SECRET" not in redact_url(url)
    assert "deployment=rt" in redact_url(url)


def test_settings_repr_hides_the_key() -> None:
    assert "sk-secret" not in repr(RealtimeSettings(api_key="sk-secret"))
