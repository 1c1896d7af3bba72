"""Client events made from the SDK's models: valid ones, and each broken in one place.

`samples` builds, for an SDK type, values that fit it strictly with every field present:
the first takes the first member of every union, each further one differs from it in one
choice (another union member, another Literal value), so that every member and value
appears at least once. `mutations` breaks a valid value in exactly one place, the way the
SDK's types forbid: an unknown key in an object, a value outside a Literal, a required
field left out. Together they let a test hold the simulator to "accepts what the SDK
accepts, rejects what it rejects" without restating the SDK's models.
"""

from __future__ import annotations

import base64
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic.fields import FieldInfo
from sdk_oracle import check_value, is_model, strip_annotated

# A string field's sample, by field name, where any string will not do.
STRING_SAMPLES = {
    "audio": base64.b64encode(bytes(4800)).decode("ascii"),  # 100 ms of pcm16 silence
}
STRING = "x"  # also the id of the item tests create first, so item_id and friends exist
UNKNOWN_KEY = "bogus_key"
NOT_A_VALUE = "not-a-value"


@dataclass(frozen=True)
class Mutation:
    """`value` broken at `path` in one `kind` of way (unknown / invalid / missing)."""

    kind: Literal["unknown", "invalid", "missing"]
    path: str
    value: Any
    where: str  # the SDK model (or type) broken, to tell union members apart
    # A missing Literal field (`type`, `role`): what tells union members apart is gone, so
    # no member is the one broken; any refusal inside the object is the right one.
    discriminator: bool = False


def _members(annotation: Any) -> list[Any]:
    """A union's members, flattened (Optional[Annotated[Union[...]]]), without None."""
    annotation = strip_annotated(annotation)
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _members(a) if m is not type(None)]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _fields(model: type[pydantic.BaseModel]) -> dict[str, FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def samples(annotation: Any, name: str = "") -> list[Any]:
    """Valid values for `annotation`, every union member and Literal value among them."""
    members = _members(annotation)
    if len(members) > 1:
        if str in members:  # any string will do: the Literals beside it add nothing
            members = [
                str,
                *(m for m in members if typing.get_origin(strip_annotated(m)) is not Literal),
            ]
        return [value for member in members for value in samples(member, name)]
    (annotation,) = members
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return list(typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [[value] for value in samples(item, name)]
    if origin is dict:
        return [{"k": value} for value in samples(typing.get_args(annotation)[1], name)]
    if is_model(annotation):
        return _model_samples(annotation)
    simple = {
        str: STRING_SAMPLES.get(name, STRING),
        int: 1,
        float: 1.0,  # inside every documented range (temperature, speed, threshold)
        bool: True,
        object: {"type": "object", "properties": {}},
    }
    return [simple[annotation]]


def _model_samples(model: type[pydantic.BaseModel]) -> list[dict[str, Any]]:
    per_field = {key: samples(info.annotation, key) for key, info in _fields(model).items()}
    base = {key: values[0] for key, values in per_field.items()}
    variants = [{**base, key: value} for key, values in per_field.items() for value in values[1:]]
    return [base, *variants]


def mutations(annotation: Any, value: Any, path: str = "") -> Iterator[Mutation]:
    """Every one-place break of `value` (which fits `annotation`) the SDK's types forbid."""
    members = _members(annotation)
    fitting = [m for m in members if not check_value(m, value)]
    if not fitting:
        raise ValueError(f"{path}: {value!r} does not fit {annotation!r}")
    member = strip_annotated(fitting[0])
    origin = typing.get_origin(member)
    if origin is Literal and str not in members:
        yield Mutation("invalid", path, NOT_A_VALUE, repr(member))
    elif origin is list:
        (item,) = typing.get_args(member)
        for index, element in enumerate(value):
            for m in mutations(item, element, _join(path, index)):
                changed = [*value[:index], m.value, *value[index + 1 :]]
                yield Mutation(m.kind, m.path, changed, m.where, m.discriminator)
    elif origin is dict:
        for key, element in value.items():
            for m in mutations(typing.get_args(member)[1], element, _join(path, key)):
                yield Mutation(m.kind, m.path, {**value, key: m.value}, m.where, m.discriminator)
    elif is_model(member):
        yield from _model_mutations(member, value, path)


def _model_mutations(
    model: type[pydantic.BaseModel], value: dict[str, Any], path: str
) -> Iterator[Mutation]:
    name = model.__name__
    yield Mutation("unknown", _join(path, UNKNOWN_KEY), {**value, UNKNOWN_KEY: 1}, name)
    for key, info in _fields(model).items():
        if info.is_required():
            rest = {k: v for k, v in value.items() if k != key}
            literal = typing.get_origin(strip_annotated(info.annotation)) is Literal
            yield Mutation("missing", _join(path, key), rest, name, literal)
        if key in value:
            for m in mutations(info.annotation, value[key], _join(path, key)):
                yield Mutation(m.kind, m.path, {**value, key: m.value}, m.where, m.discriminator)
