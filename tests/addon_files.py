"""The add-on's files as the Supervisor reads them: where they are, and a checker for the
Supervisor's schema mini-language (the parts this add-on uses). Shared by test_addon.py and
test_images.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "addon" / "wyoming_realtime_text"
S6 = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"
SCRIPTS = [S6 / "wyoming-realtime-text" / "run", S6 / "wyoming-realtime-text" / "finish"]
SCRIPTS.append(S6 / "discovery" / "run")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


ELEMENT = re.compile(
    r"^(?P<kind>bool|email|url|port|str|password|int|float|match|list)"
    r"(?:\((?P<args>.*)\))?(?P<optional>\?)?$"
)


def _bounds(args: str | None, number: type) -> tuple[Any, Any]:
    if not args:
        return None, None
    low, _, high = args.partition(",")
    return (number(low) if low else None), (number(high) if high else None)


def check_element(element: str, value: Any, where: str) -> list[str]:
    """Problems with one value against one schema element such as 'int(0,4)?'."""
    match = ELEMENT.match(element)
    if not match:
        return [f"{where}: schema element {element!r} is not one the Supervisor knows"]
    kind, args = match["kind"], match["args"]
    if kind == "bool":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a bool"]
    if kind in ("int", "float", "port"):
        number = float if kind == "float" else int
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: {value!r} is not a number"]
        low, high = (1, 65535) if kind == "port" else _bounds(args, number)
        if (low is not None and value < low) or (high is not None and value > high):
            return [f"{where}: {value!r} is outside {element}"]
        return []
    if kind == "list":
        choices = (args or "").split("|")
        return [] if value in choices else [f"{where}: {value!r} is not one of {choices}"]
    if not isinstance(value, str):
        return [f"{where}: {value!r} is not text"]
    if kind == "match" and not re.match(args or "", value):
        return [f"{where}: {value!r} does not match {args}"]
    if kind in ("str", "password"):
        low, high = _bounds(args, int)
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            return [f"{where}: {value!r} has a length outside {element}"]
    return []


def check_options(
    schema: dict[str, Any], options: dict[str, Any], where: str = "", defaults: bool = True
) -> list[str]:
    """Problems with options against a schema, as the Supervisor sees them.

    Required entries (no '?', and every list or mapping) must be present. In the add-on's
    defaults (`defaults`), an optional entry given a value becomes required: reported too.
    """
    problems = []
    for key, value in options.items():
        if key not in schema:
            problems.append(f"{where}{key}: option without a schema entry")
            continue
        entry = schema[key]
        if isinstance(entry, list):
            if not isinstance(value, list):
                problems.append(f"{where}{key}: {value!r} is not a list")
                continue
            for index, item in enumerate(value):
                place = f"{where}{key}[{index}]"
                if isinstance(entry[0], dict):
                    if not isinstance(item, dict):
                        problems.append(f"{place}: {item!r} is not a mapping")
                    else:
                        problems += check_options(entry[0], item, f"{place}.", defaults=False)
                else:
                    problems += check_element(entry[0], item, place)
        elif isinstance(entry, dict):
            problems += check_options(entry, value or {}, f"{where}{key}.", defaults)
        elif value is not None:  # None: a required value the user must give
            problems += check_element(entry, value, f"{where}{key}")
    for key, entry in schema.items():
        optional = isinstance(entry, str) and entry.endswith("?")
        if not optional and key not in options:
            problems.append(f"{where}{key}: required but missing")
        if defaults and optional and key in options:
            problems.append(f"{where}{key}: optional but given a default (it becomes required)")
    return problems
