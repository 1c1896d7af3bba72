"""Home Assistant's built-in intents, as one table: every tool the model is offered comes from it.

As in HA's own LLM API (`helpers/llm.py`, `IntentTool`), a tool is an intent: its name is the
intent type and its parameters are the intent's slots, so a call becomes an `intent` event
(or an `/api/intent/handle` request) without translation. The slots' JSON schemas are
written here once (`SLOTS`) and shared by the intents that take them; what each intent
needs to work (a domain in the home, the satellite's device, answers HA can render) decides
whether it is offered at all (`Offer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": {"type": "string"}}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
_COUNT = {"type": "integer", "minimum": 0}

# Slot name -> (JSON schema, what it means). HA's slot names, HA's types.
SLOTS: dict[str, tuple[dict[str, Any], str]] = {
    "name": (_TEXT, "The device's or entity's name, as the user said it"),
    "area": (_TEXT, "The area (room) the user named"),
    "floor": (_TEXT, "The floor the user named"),
    "domain": (_TEXTS, "Entity domains, e.g. light, switch, cover, fan, lock, media_player"),
    "device_class": (_TEXTS, "Device classes, e.g. garage, door, window, blind, tv, outlet"),
    "brightness": (_PERCENT, "Brightness in percent"),
    "color": (_TEXT, "A color name"),
    "position": (_PERCENT, "Position in percent (0 closed, 100 open)"),
    "temperature": ({"type": "number"}, "The target temperature"),
    "volume_level": (_PERCENT, "Volume in percent"),
    "state": (_TEXT, "The state asked about, e.g. on, off, open, closed, locked"),
    "hours": (_COUNT, "Hours"),
    "minutes": (_COUNT, "Minutes"),
    "seconds": (_COUNT, "Seconds"),
    "item": (_TEXT, "The item to add"),
    "message": (_TEXT, "The message to announce"),
}
TARGET = ("name", "area", "floor", "domain", "device_class")
PLACE = ("name", "area", "floor")


@dataclass(frozen=True)
class IntentSpec:
    """One of HA's intents, as a tool.

    `domains`: the home must have one of these for the intent to mean anything (empty: any).
    `targets`: it acts on entities, so a call must name at least one of TARGET.
    `needs_device`: HA runs it for a satellite only (timers ring on the device that set them).
    `question`: it only answers; its answer is HA's to tell (a template only HA 2026 renders).
    `done`: the English confirmation when the model said nothing ({target} and slots).
    `since`: the HA release that has it (HA's own table of intents grows).
    """

    name: str
    description: str
    slots: tuple[str, ...]
    domains: frozenset[str] = frozenset()
    targets: bool = False
    needs_device: bool = False
    question: bool = False
    done: str = "Done."
    notes: dict[str, str] = field(default_factory=dict)  # slot descriptions of its own
    since: tuple[int, int] = (2024, 1)


def _media(name: str, description: str, done: str) -> IntentSpec:
    return IntentSpec(name, description, PLACE, frozenset({"media_player"}), True, done=done)


TIMER_NAME = {"name": "The timer's name, only if the user gave it one"}
INTENTS: tuple[IntentSpec, ...] = (
    IntentSpec(
        "HassTurnOn",
        "Turns on, opens or locks a device or entity (for a lock it locks; for a cover it "
        "opens). Use for 'turn on', 'switch on', 'open', 'lock', 'activate'.",
        TARGET,
        targets=True,
        done="Turned on {target}.",
    ),
    IntentSpec(
        "HassTurnOff",
        "Turns off, closes or unlocks a device or entity (for a lock it unlocks; for a "
        "cover it closes). Use for 'turn off', 'switch off', 'close', 'unlock', 'deactivate'.",
        TARGET,
        targets=True,
        done="Turned off {target}.",
    ),
    IntentSpec(
        "HassLightSet",
        "Sets a light's brightness or color.",
        (*PLACE, "brightness", "color"),
        frozenset({"light"}),
        targets=True,
        done="Set {target} to {brightness} percent.",
    ),
    IntentSpec(
        "HassSetPosition",
        "Sets the position of a cover (blind, shade, curtain) or valve.",
        (*TARGET, "position"),
        frozenset({"cover", "valve"}),
        targets=True,
        done="Set {target} to {position} percent.",
    ),
    IntentSpec(
        "HassClimateSetTemperature",
        "Sets the target temperature of a thermostat (climate device).",
        (*PLACE, "temperature"),
        frozenset({"climate"}),
        done="Set {target} to {temperature} degrees.",
        since=(2025, 1),
    ),
    IntentSpec(
        "HassGetState",
        "Tells the current state of a device or entity (is it on, open, locked; what does "
        "the sensor read). Use for questions about the home.",
        (*TARGET, "state"),
        targets=True,
        question=True,
    ),
    _media("HassMediaPause", "Pauses a media player.", "Paused."),
    _media("HassMediaUnpause", "Resumes a paused media player.", "Resumed."),
    _media("HassMediaNext", "Skips to the next track or item on a media player.", "Skipped."),
    _media("HassMediaPrevious", "Goes back to the previous track on a media player.", "Back."),
    IntentSpec(
        "HassSetVolume",
        "Sets a media player's volume.",
        (*PLACE, "volume_level"),
        frozenset({"media_player"}),
        done="Set the volume to {volume_level} percent.",
    ),
    IntentSpec(
        "HassStartTimer",
        "Starts a timer on the voice satellite the user is speaking to.",
        ("hours", "minutes", "seconds", "name"),
        needs_device=True,
        done="Timer started.",
        notes=TIMER_NAME,
    ),
    IntentSpec(
        "HassCancelTimer",
        "Cancels a timer on the voice satellite the user is speaking to.",
        ("name",),
        needs_device=True,
        done="Timer cancelled.",
        notes=TIMER_NAME,
    ),
    IntentSpec(
        "HassPauseTimer",
        "Pauses a running timer.",
        ("name",),
        needs_device=True,
        done="Timer paused.",
        notes=TIMER_NAME,
    ),
    IntentSpec(
        "HassUnpauseTimer",
        "Resumes a paused timer.",
        ("name",),
        needs_device=True,
        done="Timer resumed.",
        notes=TIMER_NAME,
    ),
    IntentSpec(
        "HassListAddItem",
        "Adds an item to a to-do or shopping list.",
        ("item", "name"),
        frozenset({"todo"}),
        done="Added {item}.",
        notes={"name": "The list's name, e.g. Shopping List"},
    ),
    IntentSpec(
        "HassBroadcast",
        "Announces a message on the home's other voice satellites.",
        ("message",),
        frozenset({"assist_satellite"}),
        done="Announced.",
        since=(2025, 1),
    ),
    IntentSpec(
        "HassVacuumStart",
        "Starts a robot vacuum cleaner.",
        PLACE,
        frozenset({"vacuum"}),
        targets=True,
        done="Started {target}.",
    ),
    IntentSpec(
        "HassVacuumReturnToBase",
        "Sends a robot vacuum cleaner back to its dock.",
        PLACE,
        frozenset({"vacuum"}),
        targets=True,
        done="Sent {target} back to its dock.",
    ),
)
BY_NAME = {spec.name: spec for spec in INTENTS}


def schema(spec: IntentSpec) -> dict[str, Any]:
    """The JSON schema of `spec`'s arguments: its slots, nothing else."""
    properties = {}
    for slot in spec.slots:
        slot_schema, meaning = SLOTS[slot]
        properties[slot] = {**slot_schema, "description": spec.notes.get(slot, meaning)}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def tool(spec: IntentSpec) -> dict[str, Any]:
    """The Realtime API's function tool for `spec` (the same shape in both dialects)."""
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": schema(spec),
    }


@dataclass(frozen=True)
class Offer:
    """What can work for one request, so only that is offered.

    `device`: HA passes (or, for a spoken turn from HA 2026, will pass) the satellite's device.
    `questions`: state questions get a real answer (HA renders the answer's template).
    `domains`: the domains the home has, when it is known (None: not known, all offered).
    """

    device: bool = False
    questions: bool = False
    domains: frozenset[str] | None = None
    disabled: frozenset[str] = frozenset()

    def allows(self, spec: IntentSpec) -> bool:
        if spec.name in self.disabled:
            return False
        if spec.needs_device and not self.device:
            return False
        if spec.question and not self.questions:
            return False
        return self.domains is None or not spec.domains or bool(spec.domains & self.domains)

    def specs(self) -> list[IntentSpec]:
        return [spec for spec in INTENTS if self.allows(spec)]

    def tools(self) -> list[dict[str, Any]]:
        return [tool(spec) for spec in self.specs()]


@dataclass(frozen=True)
class Toolset:
    """What one response is offered: its tools, and instructions of its own (the session's
    with the home's entities, when the home is known; None: the session's)."""

    tools: tuple[dict[str, Any], ...] = ()
    instructions: str | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(tool["name"] for tool in self.tools)


def unknown_intents(names: Iterable[str]) -> list[str]:
    """The names that are none of the table's intents (for config validation)."""
    return [name for name in names if name not in BY_NAME]
