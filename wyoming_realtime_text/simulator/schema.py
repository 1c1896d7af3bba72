"""A small declarative checker for client events, answering as the Realtime API does.

:mod:`.params` declares with these pieces what a client may send in each dialect (keys,
types, enums, documented ranges), so that the simulator refuses exactly what the real
server refuses, with its error codes and ``param`` paths: ``unknown_parameter``,
``missing_required_parameter``, ``invalid_type``, ``invalid_value``,
``integer_below_min_value``... The first problem found is the one reported, as the API
reports one error per event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import ProtocolError

_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
OBJECT = frozenset({"an object"})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return _KINDS.get(type(value), type(value).__name__)


def _join(param: str, key: str) -> str:
    return f"{param}.{key}" if param else key


class Spec:
    """One value's rules. `check` raises ProtocolError for the first problem."""

    def kinds(self) -> frozenset[str]:
        """The JSON kinds it can accept (how OneOf picks the alternative to report)."""
        return OBJECT

    def check(self, value: Any, param: str) -> None:
        raise NotImplementedError

    def type_error(self, expected: str, value: Any, param: str) -> ProtocolError:
        return ProtocolError(
            "invalid_type",
            f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
            param,
        )


@dataclass(frozen=True)
class Scalar(Spec):
    """A string, integer, number or boolean, optionally within documented bounds."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None

    def kinds(self) -> frozenset[str]:
        return frozenset({_KINDS[self.kind]} | ({"an integer"} if self.kind is float else set()))

    def check(self, value: Any, param: str) -> None:
        ok = isinstance(value, self.kind) and not (self.kind is not bool and type(value) is bool)
        if self.kind is float:
            ok = isinstance(value, int | float) and type(value) is not bool
        if not ok:
            raise self.type_error(_KINDS[self.kind], value, param)
        self._check_bounds(value, param)

    def _check_bounds(self, value: float, param: str) -> None:
        what = "integer" if self.kind is int else "decimal"
        for bound, word, sign, beyond in (
            (self.minimum, "below_min", ">=", lambda v, b: v < b),
            (self.maximum, "above_max", "<=", lambda v, b: v > b),
        ):
            if bound is not None and beyond(value, bound):
                label = word.replace("_", " ").replace("min", "minimum").replace("max", "maximum")
                raise ProtocolError(
                    f"{what}_{word}_value",
                    f"Invalid '{param}': {what} {label} value. Expected a value {sign} "
                    f"{bound}, but got {value} instead.",
                    param,
                )


@dataclass(frozen=True)
class Anything(Spec):
    """Free-form JSON (a tool's JSON schema, tracing metadata)."""

    def kinds(self) -> frozenset[str]:
        return frozenset(_KINDS.values()) | {"an object", "an array"}

    def check(self, value: Any, param: str) -> None:
        return None


@dataclass(frozen=True)
class Enum(Spec):
    """One of fixed values."""

    values: tuple[Any, ...]

    def kinds(self) -> frozenset[str]:
        return frozenset(_kind(v) for v in self.values)

    def check(self, value: Any, param: str) -> None:
        if value in self.values and type(value) in {type(v) for v in self.values}:
            return
        supported = ", ".join(repr(v) for v in self.values)
        raise ProtocolError(
            "invalid_value", f"Invalid value: {value!r}. Supported values are: {supported}.", param
        )


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec

    def kinds(self) -> frozenset[str]:
        return frozenset({"an array"})

    def check(self, value: Any, param: str) -> None:
        if not isinstance(value, list):
            raise self.type_error("an array", value, param)
        for index, item in enumerate(value):
            self.item.check(item, f"{param}[{index}]")


@dataclass(frozen=True)
class MapOf(Spec):
    """An object with free keys and uniform values (``metadata``, MCP ``headers``)."""

    value: Spec

    def check(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise self.type_error("an object", value, param)
        for key, item in value.items():
            self.value.check(item, _join(param, key))


@dataclass(frozen=True)
class Obj(Spec):
    """An object with known keys: a missing required key, then an unknown key, is an error."""

    fields: Mapping[str, Spec]
    required: frozenset[str] = frozenset()

    def check(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise self.type_error("an object", value, param or "event")
        for key in sorted(self.required - value.keys()):
            name = _join(param, key)
            raise ProtocolError(
                "missing_required_parameter", f"Missing required parameter: '{name}'.", name
            )
        for key, item in value.items():
            name = _join(param, key)
            if key not in self.fields:
                raise ProtocolError("unknown_parameter", f"Unknown parameter: '{name}'.", name)
            self.fields[key].check(item, name)


@dataclass(frozen=True)
class Tagged(Spec):
    """Objects told apart by one key (``type``, a message's ``role``).

    Without the key, `default` names the variant (None: the key is required).
    """

    key: str
    variants: Mapping[str, Spec]
    default: str | None = None

    def check(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise self.type_error("an object", value, param)
        tag = value.get(self.key, self.default)
        if tag is None:
            name = _join(param, self.key)
            raise ProtocolError(
                "missing_required_parameter", f"Missing required parameter: '{name}'.", name
            )
        Enum(tuple(self.variants)).check(tag, _join(param, self.key))
        self.variants[tag].check(value, param)


@dataclass(frozen=True)
class OneOf(Spec):
    """Alternatives of different JSON kinds (``"inf"`` or an integer, a mode or an object)."""

    options: tuple[Spec, ...]

    def kinds(self) -> frozenset[str]:
        return frozenset().union(*(o.kinds() for o in self.options))

    def check(self, value: Any, param: str) -> None:
        fitting = [o for o in self.options if _kind(value) in o.kinds()]
        for option in fitting[:-1]:
            try:
                option.check(value, param)
                return
            except ProtocolError:
                continue
        if fitting:
            fitting[-1].check(value, param)  # the last candidate's error is the one reported
            return
        expected = " or ".join(sorted(self.kinds()))
        raise self.type_error(f"one of {expected}", value, param)


@dataclass(frozen=True)
class Nullable(Spec):
    """`null` turns the setting off (turn detection, transcription, noise reduction...)."""

    spec: Spec

    def kinds(self) -> frozenset[str]:
        return self.spec.kinds() | {"null"}

    def check(self, value: Any, param: str) -> None:
        if value is not None:
            self.spec.check(value, param)


@dataclass(frozen=True)
class Checked(Spec):
    """A spec plus one rule across the value (e.g. the allowed modality combinations)."""

    spec: Spec
    rule: Callable[[Any, str], None] = field(compare=False)

    def kinds(self) -> frozenset[str]:
        return self.spec.kinds()

    def check(self, value: Any, param: str) -> None:
        self.spec.check(value, param)
        self.rule(value, param)


# Shorthands for the declarations in params.py.
STR, INT, FLOAT, BOOL, ANY = Scalar(str), Scalar(int), Scalar(float), Scalar(bool), Anything()


def obj(required: str = "", **fields: Spec) -> Obj:
    """An object of `fields`; `required` names the required ones, space-separated."""
    return Obj(fields, frozenset(required.split()))


def enum(*values: Any) -> Enum:
    return Enum(values)
