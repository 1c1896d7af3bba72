"""What needs the user's "yes" first, and what counts as one.

Unlocking, disarming and opening doors, gates and garage doors are asked back before they
are sent. Without the home known, a call says only what the user named ("front door" may
be a lock or a cover), so the words decide, erring towards asking: turning off anything
named like a lock, door, gate or alarm asks, and so does turning on (opening) a door,
gate or garage. The "yes" is checked by the server on the user's own words, never taken
from the model, so the model alone can never confirm a risky command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Names of things that lock, guard or close an opening, in a few languages.
_LOCKS = {"lock", "locks", "deadbolt", "schloss", "serrure", "cerradura", "slot", "serratura"}
_ALARMS = {"alarm", "alarme", "alarma", "allarme", "alarm_control_panel"}
_OPENINGS = {
    *("door", "doors", "gate", "gates", "garage", "tür", "türe", "tor", "porte", "portail"),
    *("puerta", "portón", "garaje", "deur", "poort", "porta", "cancello", "portão"),
}
_SUFFIXES = ("door", "tür", "schloss", "lock", "tor")  # German compounds: Haustür, Garagentor
_PREFIXES = ("garage", "alarm")
RISKY_DOMAINS = frozenset({"lock", "alarm_control_panel"})
OPENING_CLASSES = frozenset({"door", "garage", "gate"})

_YES = {
    *("yes", "yeah", "yep", "yup", "sure", "ok", "okay", "confirm", "confirmed", "correct"),
    *("absolutely", "please", "ja", "jawohl", "genau", "klar", "oui", "sí", "si", "claro"),
    *("vale", "certo", "sim", "tak", "graag", "zeker", "はい", "うん", "ええ", "是", "好"),
}
_YES_PHRASES = ("do it", "go ahead", "of course", "mach das", "vas-y", "d'accord", "お願い")
_NO = {
    *("no", "not", "don't", "dont", "never", "stop", "cancel", "wait", "nein", "nicht"),
    *("non", "pas", "nee", "niet", "いいえ", "いや", "不"),
}
_WORD = re.compile(r"[\w'-]+")


def _words(values: Iterable[Any]) -> list[str]:
    words: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        for item in items:
            words.extend(_WORD.findall(str(item).casefold()))
    return words


def _named(words: list[str], names: set[str], *, compounds: bool) -> bool:
    if any(word in names for word in words):
        return True
    return compounds and any(w.endswith(_SUFFIXES) or w.startswith(_PREFIXES) for w in words)


def risky(intent: str, slots: dict[str, Any]) -> bool:
    """Whether running `intent` with `slots` could unlock, disarm or open the home."""
    words = _words(slots.get(key) for key in ("name", "area", "domain", "device_class"))
    opening = _named(words, _OPENINGS, compounds=True)
    if intent == "HassTurnOff":  # unlocks a lock, disarms, or closes (a door: asked too)
        return opening or _named(words, _LOCKS | _ALARMS, compounds=True)
    if intent == "HassTurnOn":  # opens a cover (locking a lock is safe)
        domains = slots.get("domain") or []
        locking = bool(domains) and all(d in ("lock",) for d in _words(domains))
        return opening and not locking
    if intent == "HassSetPosition":
        return opening and bool(slots.get("position"))
    return False


def risky_for(intent: str, slots: dict[str, Any], entities: Iterable[Any]) -> bool:
    """`risky`, when the entities the command acts on are known (the home is): their domain
    and device class decide, not the words ("door light" is a light)."""
    things = list(entities)
    if intent == "HassTurnOff":  # unlocking a lock, disarming an alarm
        return any(e.domain in RISKY_DOMAINS for e in things)
    opening = [e for e in things if e.domain == "cover" and _opens_a_way_in(e)]
    if intent == "HassTurnOn":
        return bool(opening)
    if intent == "HassSetPosition":
        return bool(opening) and bool(slots.get("position"))
    return False


def _opens_a_way_in(entity: Any) -> bool:
    if entity.device_class in OPENING_CLASSES:
        return True
    return _named(_words(entity.names), _OPENINGS, compounds=True)


def affirmative(text: str) -> bool:
    """The user's words are a plain "yes" (short, and no "no" or "not" in them)."""
    folded = text.casefold().strip()
    words = _WORD.findall(folded)
    if not words and not folded:
        return False
    if len(words) > 6 or any(word in _NO for word in words):
        return False
    if any(word in _YES for word in words):
        return True
    return any(phrase in folded for phrase in _YES_PHRASES)
