"""From a response's calls to what Home Assistant runs and says, decided once per answer.

Each call ends one of three ways, and the model is told which (`Plan.outputs`, sent as the
call's `function_call_output`, so a follow-up reads naturally):
  * sent: its intent goes to HA (the first one only, to an HA that runs only the first);
  * held: a risky command, asked back; only a "yes" as the very next turn of the same
    conversation sends it (`Memory`);
  * refused: it did not check out, or cannot work here; a clear sentence says so.
The spoken text is the model's own words when everything it called was sent, otherwise
our sentences (its words would claim what did not happen).

When the home is known (HA's API, `hass.py`), each command is first matched against the
entities exposed to Assist: nothing matching is never sent (HA 2025 would act on entities
not exposed), a near miss is asked back ("did you mean ..."), what is risky is decided by
the matched entities' domains, and state questions are answered from live state.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ..realtime.events import FunctionCall
from .calls import PLACE_SLOTS, Command, Refused, check
from .home import Home, HomeEntity
from .peer import Peer
from .safety import affirmative, risky_for
from .speech import confirmation, missing, phrase, question, state_sentence

SENT = "Sent to Home Assistant, which carries it out; it does not report back whether it worked."
HELD = (
    "Not done yet: the user was asked to confirm. Only if they say yes in their next "
    "request, call {name} again with the same arguments."
)
REFUSED = "Not done: {why}."
ANSWERED = "Answered from Home Assistant's live state: {told}"
CONFIRM_SECONDS = 120.0  # a "yes" later than this confirms nothing


@dataclass
class Memory:
    """A conversation's risky commands waiting for a "yes" (only its next turn may give it)."""

    held: dict[str, float] = field(default_factory=dict)  # Command.key -> when asked
    taken: dict[str, float] = field(default_factory=dict)  # ... by the last `take`

    def take(self) -> frozenset[str]:
        """What the turn starting now may confirm; nobody else can."""
        now = time.monotonic()
        self.taken = {k: asked for k, asked in self.held.items() if now - asked < CONFIRM_SECONDS}
        self.held.clear()
        return frozenset(self.taken)

    def give_back(self) -> None:
        """Undo the last `take`: its turn never became one of this conversation's (a spoken
        turn started here that another conversation's request claimed)."""
        for key, asked in self.taken.items():
            self.held.setdefault(key, asked)
        self.taken = {}

    def hold(self, commands: Sequence[Command]) -> None:
        now = time.monotonic()
        self.held.update((command.key, now) for command in commands)


@dataclass
class Plan:
    send: list[Command] = field(default_factory=list)
    held: list[Command] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # state questions, from live state
    text: str = ""  # what HA speaks (plain text, our sentences or the model's)
    outputs: list[tuple[FunctionCall, str]] = field(default_factory=list)


def plan(
    calls: Sequence[FunctionCall],
    offered: Collection[str],
    peer: Peer,
    *,
    language: str | None,
    said: str,
    model_text: str,
    confirmable: Collection[str] = frozenset(),
    home: Home | None = None,
    area: str | None = None,
) -> Plan:
    """Decide every call of one response (`said`: the user's words for this turn).

    `home`: the exposed entities, when known; `area`: where the request comes from (a
    satellite's), for a command that names no place.
    """
    result = Plan()
    sentences: list[str] = []
    for call in calls:
        checked, found = _located(check(call, offered), home, area)
        if isinstance(checked, Refused):
            _refuse(result, sentences, checked, phrase(language, "unclear"))
        elif checked.spec.needs_device and not peer.device:
            why = Refused(call, "this request did not come from a voice satellite")
            _refuse(result, sentences, why, phrase(language, "satellite"))
        elif found is not None and not found:
            near = (
                home.near(str(checked.slots["name"])) if home and checked.slots.get("name") else ()
            )
            why = f"nothing exposed to Assist matches {checked.target}"
            if near:
                why += f"; the user was asked whether they meant {' or '.join(near)}"
            _refuse(result, sentences, Refused(call, why), missing(checked, near, language))
        elif found and checked.spec.question:
            told = state_sentence(checked, found, language)
            result.answered.append(told)
            result.outputs.append((call, ANSWERED.format(told=told)))
        elif _risky(checked, found) and not (checked.key in confirmable and affirmative(said)):
            if peer.conversation:
                result.held.append(checked)
                sentences.append(question(checked, language))
                result.outputs.append((call, HELD.format(name=checked.spec.name)))
            else:
                why = Refused(call, "risky commands need a confirmation this HA cannot give")
                _refuse(result, sentences, why, phrase(language, "unsafe"))
        elif result.send and not peer.multi:
            why = Refused(call, "this Home Assistant runs one command per request")
            _refuse(result, sentences, why, phrase(language, "one"))
        else:
            result.send.append(checked)
            result.outputs.append((call, SENT))
    actions = [c for c in result.send if not c.spec.question]
    if model_text.strip() and not (result.held or result.refused or result.answered):
        result.text = model_text.strip()
    else:
        done = [confirmation(c, language) for c in actions]
        result.text = " ".join(dict.fromkeys([*done, *result.answered, *sentences]))
    return result


def _located(
    checked: Command | Refused, home: Home | None, area: str | None
) -> tuple[Command | Refused, tuple[HomeEntity, ...] | None]:
    """The command with the request's area when it names no place, and the entities it acts
    on (None: the home is not known, or it acts on no entity)."""
    if isinstance(checked, Refused) or not checked.spec.targets:
        return checked, None
    if area and not any(checked.slots.get(slot) for slot in PLACE_SLOTS):
        checked = checked.with_slots(area=area)
    if home is None:
        return checked, None
    found = home.match(**checked.filters())
    return _named(checked, found), found


def _risky(command: Command, found: tuple[HomeEntity, ...] | None) -> bool:
    if found is None:
        return command.risky  # the words decide
    return risky_for(command.spec.name, command.slots, found)


def _named(command: Command, found: tuple[HomeEntity, ...]) -> Command:
    """The entity's own name for HA, which matches names more strictly than `Home.match`."""
    names = {entity.name for entity in found}
    if command.slots.get("name") and len(names) == 1:
        return command.with_slots(name=names.pop())
    return command


def _refuse(result: Plan, sentences: list[str], refused: Refused, sentence: str) -> None:
    result.refused.append(refused)
    sentences.append(sentence)
    result.outputs.append((refused.call, REFUSED.format(why=refused.why)))
