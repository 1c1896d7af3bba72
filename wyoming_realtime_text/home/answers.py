"""HA's answer to `POST /api/intent/handle`, read into an IntentResult for a model.

HA's view returns `IntentResponse.as_dict()` (helpers/intent.py): `speech.plain.speech`,
`response_type` (action_done, query_answer, error) and `data`: `code` for an error, else
`success` and `failed` targets `{name, type, id}` (2025.x also `targets`). Its
HassTurnOn/HassTurnOff/HassLightSet handlers set no speech (HA's default agent speaks from
response templates the REST view does not use), so a success usually has empty speech.

A failure looks different by release. 2026.x: response_type `error`, `code:
failed_to_handle`, the reason as speech ("No entities matched the name (given name
'x')"). 2025.x: response_type `action_done` and `str(err)` as speech, which for a failed
match is the `<MatchFailedError result=..., constraints=...>` repr; read here into 2026's
sentence. An unknown intent or slots a handler rejects escape the view as HTTP 500 on both.

Entity ids in HA's texts ("Failed to call turn_on for: ['sensor.x']") become names: a
model is never shown an entity id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .home import Home

# Intents that act on matched targets: on success HA always lists them (it raises when no
# target succeeded), so speech without targets is HA 2025.x's way of reporting a failure.
TARGET_INTENTS = frozenset(
    {
        "HassTurnOn",
        "HassTurnOff",
        "HassToggle",
        "HassLightSet",
        "HassSetPosition",
        "HassStopMoving",
        "HassFanSetSpeed",
        "HassClimateSetTemperature",
        "HassHumidifierSetpoint",
        "HassHumidifierMode",
        "HassVacuumStart",
        "HassVacuumReturnToBase",
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassSetVolume",
        "HassLock",
        "HassUnlock",
        "HassOpen",
        "HassClose",
        "HassPress",
    }
)
# HA 2026's wording for a failed match (helpers/intent.py `_MATCH_FAILURE_REASONS`), to
# read HA 2025's `<MatchFailedError ...>` repr into the same sentence.
MATCH_FAILURES = {
    "NAME": "No entities matched the name",
    "AREA": "No entities were in the area",
    "FLOOR": "No entities were on the floor",
    "DOMAIN": "No entities matched the domain",
    "DEVICE_CLASS": "No entities matched the device class",
    "FEATURE": "No entities supported the required features",
    "STATE": "No entities were in the required state",
    "ASSISTANT": "No matching entities are exposed to the assistant",
    "INVALID_AREA": "The area does not exist",
    "INVALID_FLOOR": "The floor does not exist",
    "DUPLICATE_NAME": "Multiple entities share the name",
    "MULTIPLE_TARGETS": "Multiple entities matched, but a single target is required",
}
# Domains whose entity ids may appear in HA's error texts; replaced before a model sees them.
ENTITY_DOMAINS = frozenset(
    {
        "alarm_control_panel",
        "assist_satellite",
        "automation",
        "binary_sensor",
        "button",
        "calendar",
        "camera",
        "climate",
        "conversation",
        "counter",
        "cover",
        "date",
        "datetime",
        "device_tracker",
        "event",
        "fan",
        "group",
        "humidifier",
        "image",
        "input_boolean",
        "input_button",
        "input_datetime",
        "input_number",
        "input_select",
        "input_text",
        "lawn_mower",
        "light",
        "lock",
        "media_player",
        "notify",
        "number",
        "person",
        "remote",
        "scene",
        "script",
        "select",
        "sensor",
        "siren",
        "sun",
        "switch",
        "text",
        "time",
        "timer",
        "todo",
        "update",
        "vacuum",
        "valve",
        "water_heater",
        "weather",
        "zone",
    }
)
_ENTITY_ID = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z0-9_]+)\b")


@dataclass(frozen=True)
class IntentResult:
    """HA's answer to one intent, with names only (HA's targets carry entity ids)."""

    ok: bool
    speech: str = ""  # HA's plain speech; often empty: HA's handlers leave it to templates
    response_type: str | None = None  # action_done, query_answer or error (HA's)
    error_code: str | None = None  # HA's (failed_to_handle, ...) or this client's
    error_message: str | None = None
    success: tuple[str, ...] = ()  # names of the areas, floors and entities acted on
    failed: tuple[str, ...] = ()
    status: int | None = None  # HTTP status; None when no answer came

    @classmethod
    def failure(cls, code: str, message: str, status: int | None = None) -> IntentResult:
        return cls(ok=False, error_code=code, error_message=message, status=status)


def read_answer(name: str, status: int, payload: Any, home: Home | None) -> IntentResult:
    """The result of intent `name` from HA's HTTP status and body (JSON, or text).

    `home` gives entity ids in HA's texts their names.
    """
    if status == 200 and isinstance(payload, dict):
        return _response(name, payload, home)
    said = scrub_entity_ids(message_of(payload), home)
    if status in (401, 403):
        return IntentResult.failure(
            "unauthorized",
            f"Home Assistant refused the access token (HTTP {status}): give a valid "
            "long-lived access token",
            status,
        )
    if status == 400:  # RequestDataValidator's json_message
        return IntentResult.failure("bad_request", f"Home Assistant: {said}", status)
    if status == 404:
        return IntentResult.failure(
            "not_found",
            "Home Assistant has no /api/intent/handle: its intent integration is not "
            "loaded (default_config includes it)",
            status,
        )
    if status == 500:
        return IntentResult.failure(
            "server_error",
            f"Home Assistant failed to handle {name} (HTTP 500): nothing matched (so HA "
            "before 2025.10 answers that), or an unknown intent or slots it does not "
            "accept; its log has the details",
            status,
        )
    if status in (502, 503, 504):
        return IntentResult.failure(
            "unavailable", f"Home Assistant is not available (HTTP {status})", status
        )
    return IntentResult.failure(
        "http_error", f"Home Assistant answered HTTP {status}: {said}"[:300], status
    )


def _response(name: str, payload: Mapping[str, Any], home: Home | None) -> IntentResult:
    """HA's IntentResponse.as_dict(): speech, response_type, data.{code | success, failed}."""
    speech_all = payload.get("speech")
    plain = speech_all.get("plain") if isinstance(speech_all, dict) else None
    speech = str(plain.get("speech") or "") if isinstance(plain, dict) else ""
    speech = scrub_entity_ids(speech, home)
    response_type = payload.get("response_type")
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    if response_type == "error":
        return IntentResult(
            ok=False,
            speech=speech,
            response_type=response_type,
            error_code=str(data.get("code") or "unknown"),
            error_message=speech or "Home Assistant reported an error",
            status=200,
        )
    success = _target_names(data.get("success"))
    failed = _target_names(data.get("failed"))
    legacy_error = None
    if speech.startswith("<MatchFailedError"):
        legacy_error = _legacy_match_failure(speech)
    elif name in TARGET_INTENTS and not success and not failed and speech:
        legacy_error = speech
    if legacy_error is not None:
        return IntentResult(
            ok=False,
            speech=legacy_error,
            response_type=response_type,
            error_code="failed_to_handle",
            error_message=legacy_error,
            status=200,
        )
    return IntentResult(
        ok=True,
        speech=speech,
        response_type=response_type,
        success=success,
        failed=failed,
        status=200,
    )


def scrub_entity_ids(text: str, home: Home | None) -> str:
    """Entity ids out of HA's text: an exposed entity's becomes its name, another's
    "an entity" (a word such as "e.g." stays)."""

    def name_for(match: re.Match[str]) -> str:
        entity = home.get(match[0]) if home is not None else None
        if entity is not None:
            return entity.name
        return "an entity" if match[1] in ENTITY_DOMAINS else match[0]

    return _ENTITY_ID.sub(name_for, text)


def message_of(payload: Any) -> str:
    """HA's `{"message": ...}` (json_message), or the body's text."""
    if isinstance(payload, dict):
        return str(payload.get("message", ""))
    return str(payload or "").strip()


def _target_names(targets: Any) -> tuple[str, ...]:
    if not isinstance(targets, list):
        return ()
    return tuple(
        str(t["name"]) for t in targets if isinstance(t, dict) and isinstance(t.get("name"), str)
    )


def _legacy_match_failure(text: str) -> str:
    """HA 2025's `<MatchFailedError result=..., constraints=...>` as HA 2026 says it."""
    reason = re.search(r"no_match_reason=<MatchFailedReason\.(\w+)", text)
    message = MATCH_FAILURES.get(reason[1], "No entities matched") if reason else None
    message = message or "No entities matched"
    given = [
        f"{label} {value!r}"
        for label, key in (("name", "name"), ("area", "area_name"), ("floor", "floor_name"))
        if (value := _repr_field(text, key))
    ]
    return f"{message} (given {', '.join(given)})" if given else message


def _repr_field(text: str, key: str) -> str | None:
    match = re.search(rf"MatchTargetsConstraints\(.*?\b{key}='((?:[^'\\]|\\.)*)'", text)
    return match[1] if match else None
