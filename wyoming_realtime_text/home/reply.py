"""A plan as the Wyoming events Home Assistant's agent runs: `intent`, or several of them.

HA speaks an intent's `text` when the intent has no speech of its own (turning things on
and off has none), joining several with newlines; HA 2026 renders it as a template first.
So the spoken sentence rides on the first action, each state question carries its own
template, and the model's words are stripped of template delimiters.
"""

from __future__ import annotations

from wyoming.event import Event
from wyoming.intent import Entity, Intent, IntentsStart, IntentsStop

from .calls import Command
from .plan import Plan
from .speech import state_template, template_safe


def intent_events(plan: Plan, language: str | None) -> list[Event]:
    """The events answering with `plan.send` (not empty); one `intent` needs no list."""
    text = template_safe(plan.text)
    actions = [c for c in plan.send if not c.spec.question]
    intents = []
    for command in plan.send:
        if command.spec.question:
            template = state_template(command, language)
            said = text if not actions and not intents else ""
            intents.append(_intent(command, f"{said} {template}".strip()))
        else:
            intents.append(_intent(command, text if command is actions[0] else None))
    if len(intents) == 1:
        return [intents[0].event()]
    return [IntentsStart().event(), *(i.event() for i in intents), IntentsStop().event()]


def _intent(command: Command, text: str | None) -> Intent:
    entities = [Entity(name=slot, value=value) for slot, value in command.slots.items()]
    return Intent(name=command.spec.name, entities=entities, text=text or None)
