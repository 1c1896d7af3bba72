"""The openai SDK's typed event models as a strict oracle for Realtime traffic.

The SDK (``openai.types.realtime`` for GA, ``openai.types.beta.realtime`` for beta) has a
pydantic model for every client and server event, but its models accept unknown keys and
coerce values, so parsing an event with them proves little. This module walks the JSON
itself against each model's fields: every key must be a field (recursively), required
fields must be present, Literal values must be in the enum, and a union must be fitted
strictly by at least one of its members. Errors come back as readable paths
(``session.audio.input.transcription.bogus: not a field of AudioTranscription``).

Where the SDK's model and the API's documented wire shape disagree, the wire shape wins and
the deviation is spelled out in `SDK_DEVIATIONS` (see its comment for the evidence).
Only tests import this module: ``openai`` is a test dependency, never a runtime one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Union

import pydantic
from openai.types import realtime as _ga
from openai.types.beta import realtime as _beta
from openai.types.beta.realtime.session import Session as BetaSession
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest
from openai.types.realtime.realtime_session_create_response import RealtimeSessionCreateResponse
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)

Dialect = Literal["beta", "ga"]
Direction = Literal["client", "server"]

_UNIONS: dict[tuple[Dialect, Direction], Any] = {
    ("ga", "client"): _ga.RealtimeClientEvent,
    ("ga", "server"): _ga.RealtimeServerEvent,
    ("beta", "client"): _beta.RealtimeClientEvent,
    ("beta", "server"): _beta.RealtimeServerEvent,
}


def _identity_fields(*names: str) -> dict[str, Any]:
    """(annotation, default) of the session *resource's* identity fields, from the SDK."""
    fields = RealtimeSessionCreateResponse.model_fields
    return {
        name: (fields[name].annotation, ... if fields[name].is_required() else None)
        for name in names
    }


# session.created / session.updated carry the session RESOURCE: the live API (GA reference
# example; the beta forum log of 2024 in the simulator's forum_replay.jsonl) sends `id`,
# `object: "realtime.session"` and `expires_at` in it. The SDK types that `session` as the
# update REQUEST (GA: RealtimeSessionCreateRequest, which lacks all three; beta: Session,
# which has `id` only). The resource is the request plus the identity fields, typed as the
# SDK's own RealtimeSessionCreateResponse types them.
GaSessionResource = pydantic.create_model(
    "GaSessionResource",
    __base__=RealtimeSessionCreateRequest,
    **_identity_fields("id", "object", "expires_at"),
)
BetaSessionResource = pydantic.create_model(
    "BetaSessionResource",
    __base__=BetaSession,
    **_identity_fields("object", "expires_at"),
)
_GA_SESSION = GaSessionResource | RealtimeTranscriptionSessionCreateRequest

# (dialect, event type) -> {field: the annotation used instead of the SDK's}.
SDK_DEVIATIONS: dict[tuple[Dialect, str], dict[str, Any]] = {
    ("ga", "session.created"): {"session": _GA_SESSION},
    ("ga", "session.updated"): {"session": _GA_SESSION},
    ("beta", "session.created"): {"session": BetaSessionResource},
    ("beta", "session.updated"): {"session": BetaSessionResource},
}


def event_models(dialect: Dialect, direction: Direction) -> dict[str, type[pydantic.BaseModel]]:
    """Event type -> SDK model, from the members of the dialect's event union."""
    union = strip_annotated(_UNIONS[(dialect, direction)])
    models: dict[str, type[pydantic.BaseModel]] = {}
    for member in typing.get_args(union):
        (etype,) = typing.get_args(strip_annotated(member.model_fields["type"].annotation))
        models[etype] = member
    return models


@dataclass(frozen=True)
class Problem:
    """One way the data departs from the model: where, and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.message}"


def check_event(dialect: Dialect, direction: Direction, event: Any) -> list[Problem]:
    """Every way `event` is not, strictly, a `direction` event of `dialect` per the SDK."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return [Problem("type", "an event must be an object with a string `type`")]
    model = event_models(dialect, direction).get(event["type"])
    if model is None:
        return [Problem("type", f"the SDK has no {dialect} {direction} event {event['type']!r}")]
    overrides = SDK_DEVIATIONS.get((dialect, event["type"]), {})
    return _check_model(model, event, "", overrides)


def check_value(annotation: Any, value: Any, path: str = "") -> list[Problem]:
    """Every way `value` does not fit `annotation` (an SDK type) strictly."""
    return _check(annotation, value, path)


def event_errors(dialect: Dialect, direction: Direction, events: Iterable[Any]) -> list[str]:
    """Readable problems of many events, each prefixed with the event's index and type."""
    errors = []
    for index, event in enumerate(events):
        etype = event.get("type") if isinstance(event, dict) else None
        errors += [f"#{index} {etype}: {p}" for p in check_event(dialect, direction, event)]
    return errors


class Recorded(Protocol):
    """What the oracle reads of a simulator connection (`SimConnection`)."""

    dialect: Dialect
    received: list[dict[str, Any]]
    sent: list[dict[str, Any]]


def connection_errors(conn: Recorded, *, client: bool = True) -> list[str]:
    """Problems of what went over one connection: the simulator's events, and the client's
    too unless `client` is false (a test that sends bad events on purpose)."""
    errors = [f"sent {e}" for e in event_errors(conn.dialect, "server", conn.sent)]
    if client:
        errors += [f"received {e}" for e in event_errors(conn.dialect, "client", conn.received)]
    return errors


# --- the walk -------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _check_model(
    model: type[pydantic.BaseModel],
    data: Any,
    path: str,
    overrides: dict[str, Any] | None = None,
) -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(path, f"expected an object ({model.__name__}), got {_kind(data)}")]
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(Problem(_join(path, key), f"not a field of {model.__name__}"))
            continue
        annotation = (overrides or {}).get(key, fields[key].annotation)
        problems += _check(annotation, value, _join(path, key))
    for key, info in fields.items():
        if info.is_required() and key not in data:
            problems.append(Problem(_join(path, key), f"required by {model.__name__}, missing"))
    return problems


def _check(annotation: Any, value: Any, path: str) -> list[Problem]:
    annotation = strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return []
    if annotation is None or annotation is type(None):
        return [] if value is None else [Problem(path, f"expected null, got {_kind(value)}")]
    if origin is Union or origin is types.UnionType:
        return _check_union(typing.get_args(annotation), value, path)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return []
        return [Problem(path, f"{value!r} is not one of {list(allowed)}")]
    if origin is list:
        if not isinstance(value, list):
            return [Problem(path, f"expected a list, got {_kind(value)}")]
        (item,) = typing.get_args(annotation) or (Any,)
        return [p for i, v in enumerate(value) for p in _check(item, v, _join(path, i))]
    if origin is dict:
        if not isinstance(value, dict):
            return [Problem(path, f"expected an object, got {_kind(value)}")]
        key_type, value_type = typing.get_args(annotation) or (Any, Any)
        return [
            p
            for k, v in value.items()
            for p in _check(key_type, k, _join(path, str(k)))
            + _check(value_type, v, _join(path, k))
        ]
    if is_model(annotation):
        return _check_model(annotation, value, path)
    return _check_scalar(annotation, value, path)


def _check_scalar(annotation: Any, value: Any, path: str) -> list[Problem]:
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif annotation is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{path}: the oracle cannot check SDK type {annotation!r}")
    return [] if ok else [Problem(path, f"expected {annotation.__name__}, got {_kind(value)}")]


def _check_union(members: tuple[Any, ...], value: Any, path: str) -> list[Problem]:
    """Fits if one member fits. If none does, the problems of the most likely member.

    The most likely member is one whose Literal fields (``type``, ``role``...) agree with
    the data, as the SDK's discriminator would pick it; among those, the closest fit.
    ``None`` members are left out unless the value is null (Optional[X] reads as X).
    """
    if value is not None:
        members = tuple(m for m in members if strip_annotated(m) not in (None, type(None)))
    attempts = [(member, _check(member, value, path)) for member in members]
    if not attempts:
        return [Problem(path, f"expected null, got {_kind(value)}")]
    if any(not problems for _, problems in attempts):
        return []
    likely = [a for a in attempts if _literals_agree(a[0], value)]
    member, problems = min(likely or attempts, key=lambda a: len(a[1]))
    if not likely and len(attempts) > 1:
        names = ", ".join(_name(m) for m, _ in attempts)
        problems = [Problem(path, f"fits none of {names}; closest {_name(member)}:"), *problems]
    return problems


def _literals_agree(member: Any, value: Any) -> bool:
    member = strip_annotated(member)
    if not (is_model(member) and isinstance(value, dict)):
        return False
    agreed = False
    for name, info in member.model_fields.items():
        literal = strip_annotated(info.annotation)
        if typing.get_origin(literal) is not Literal or name not in value:
            continue
        if value[name] not in typing.get_args(literal):
            return False
        agreed = True
    return agreed


def _name(annotation: Any) -> str:
    annotation = strip_annotated(annotation)
    return getattr(annotation, "__name__", None) or repr(annotation)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
