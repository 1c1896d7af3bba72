"""A model's function calls, checked before anything reaches the home.

A model can name a tool it was not offered, send arguments that are not JSON (a response
cut short mid-call, or just a bad guess), or give a slot the wrong type. Each call is
checked against the very schema it was offered (`intents.schema`), with `jsonschema`; one
that fails is never sent, and the model is told why.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from ..realtime.events import FunctionCall
from .intents import BY_NAME, PLACE, TARGET, IntentSpec, schema
from .safety import risky

PLACE_SLOTS = PLACE  # a command naming one of these says where it acts


@dataclass(frozen=True)
class Command:
    """A call that checked out: an intent and its slots, ready for Home Assistant."""

    call: FunctionCall
    spec: IntentSpec
    slots: dict[str, Any]

    @property
    def risky(self) -> bool:
        return risky(self.spec.name, self.slots)

    @property
    def key(self) -> str:
        """The same command, however its arguments were ordered or cased."""
        slots = {k: _folded(v) for k, v in sorted(self.slots.items())}
        return json.dumps([self.spec.name, slots], ensure_ascii=False)

    @property
    def target(self) -> str:
        """What it acts on, as a sentence can name it."""
        name, area = self.slots.get("name"), self.slots.get("area") or self.slots.get("floor")
        domains = self.slots.get("domain") or sorted(self.spec.domains)[:1]
        if name:
            return str(name) if not area else f"{name} in {area}"
        things = f"the {domains[0].replace('_', ' ')}s" if domains else "everything"
        return f"{things} in {area}" if area else things

    def with_slots(self, **slots: Any) -> Command:
        return dataclasses.replace(self, slots={**self.slots, **slots})

    def filters(self) -> dict[str, Any]:
        """The slots that pick entities, as `Home.match` takes them (the intent's own
        domains when the call names none: HassLightSet acts on lights only)."""
        found = {k: self.slots[k] for k in TARGET if self.slots.get(k)}
        if "domain" not in found and self.spec.domains:
            found["domain"] = sorted(self.spec.domains)
        return found

    def describe(self) -> str:
        """One line for logs and the live page: HassTurnOn name=kitchen light."""
        args = " ".join(f"{k}={v}" for k, v in self.slots.items())
        return f"{self.spec.name} {args}".strip()


@dataclass(frozen=True)
class Refused:
    """A call that is never sent; `why` is for the model (and the log)."""

    call: FunctionCall
    why: str


def check(call: FunctionCall, offered: Collection[str]) -> Command | Refused:
    """The call as a command, or why it cannot be one."""
    spec = BY_NAME.get(call.name)
    if spec is None or call.name not in offered:
        return Refused(call, f"{call.name!r} is not one of the tools offered")
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        return Refused(call, "its arguments are not valid JSON")
    if not isinstance(arguments, dict):
        return Refused(call, "its arguments must be a JSON object")
    # Models fill optional parameters with "" or []: those mean "not given".
    slots = {k: v for k, v in arguments.items() if v not in ("", [], None)}
    error = next(_validator(spec.name).iter_errors(slots), None)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        return Refused(call, f"{where}: {error.message}")
    if spec.targets and not any(slots.get(slot) for slot in TARGET):
        return Refused(call, "it names nothing to act on (no name, area, floor or domain)")
    return Command(call, spec, slots)


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(BY_NAME[name]))


def _folded(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, list):
        return sorted(_folded(v) for v in value)
    return value
