"""The simulated model's tool use: which function calls a response makes.

A stand-in for a model's judgement, deterministic so tests can assert on it. A few English
command shapes become calls of Home Assistant intents (tool names) with HA's slot names
(parameters), and only with what the session or the response OFFERS: a tool is used when
its name is offered and every argument is a key of its JSON schema's
``parameters.properties``; otherwise the model answers in words, as a real one without the
tool would. Matching ignores case and trailing punctuation; names keep the user's case.

  ========================================  ==============================================
  said                                      call (arguments)
  ========================================  ==============================================
  turn on|off the X                         HassTurnOn|HassTurnOff {"name": X}
  turn on|off the lights in the X / the X   HassTurnOn|HassTurnOff {"area": X,
  lights                                    "domain": ["light"]} (the string "light" when
                                            the offered ``domain`` is typed string)
  turn on|off the lights                    HassTurnOn|HassTurnOff {"domain": ["light"]}
  set|dim the X to N percent / N%           HassLightSet {"name": X, "brightness": N}
  set the X to N degrees                    HassClimateSetTemperature {"name": X,
                                            "temperature": N}
  set|start a timer for N minutes           HassStartTimer {"minutes": N} (seconds,
                                            hours alike; N digits, a word up to twenty, a/an)
  is the X on|off / what is the X <reading> HassGetState {"name": X, "state": "on"|"off"}
                                            / {"name": X}
  lock|unlock the X                         HassTurnOn|HassTurnOff {"name": X,
                                            "domain": ["lock"]}
  open|close the X                          HassTurnOn|HassTurnOff {"name": X}
  <verb> the X and the Y                    one call per target, in one response
  turn it|that on|off (again)               the last call's target (name/area/domain)
  and the X too                             the last call's tool and arguments, name X
  ========================================  ==============================================

"The last call" is the latest function_call item of the response's context (the
conversation, or the response's own ``input``) whose arguments are a JSON object.

``tool_choice``: ``none`` never calls. A forced function (GA ``{type: "function", name}``;
beta's ``tool_choice`` is a plain string, so any string besides the three modes names the
function) calls only that tool: the understood calls of it, else one call with the
understood arguments that its schema takes (``{}`` when none), as a forced model must
call it whatever was said. ``required`` calls the understood tools, else the first offered
function tool the same way. Neither makes a call when the tool is not offered (whether the
live API refuses that instead is not known; no error is invented), nor does a forced MCP
tool (MCP is not simulated). ``parallel_tool_calls: false`` (GA, session or response)
keeps only the first call.

A model acts once per user turn: when function calls already follow the last user message,
an ``auto`` response answers in words about their outputs (``Scenario.output_reply``)
instead of calling again, so a client's usual call -> output -> response.create loop ends.
``required`` and forced functions call again, as the real constraint does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import protocol as p
from .scenario import Scenario

Intent = tuple[str, dict[str, Any]]  # (tool name, arguments)
# A response's context: its items with what the model understood of each (user text).
Context = list[tuple[dict[str, Any], str | None]]

_WORDS = (  # noqa: SIM905 (a list literal would take 21 lines)
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
NUMBER_WORDS = {word: value for value, word in enumerate(_WORDS)}
_WORD = "|".join(_WORDS)
_INT = rf"\d+|{_WORD}"
_DECIMAL = rf"\d+(?:\.\d+)?|{_WORD}"
_THE = r"(?:the\s+)?"
_NAME = r"(?P<x>.+?)"
_READINGS = "temperature|humidity|state|status|level|battery|position|brightness"
_PUNCTUATION = r"[\s.!?。,;:]+$"
ARGUMENT_DELTA_CHARS = 8  # arguments stream in pieces of this many characters


@dataclass(frozen=True)
class Call:
    """A function call the response makes: the tool's name and its raw arguments string."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Offer:
    """What a response may call: its own tools/tool_choice/parallel_tool_calls, else the
    session's (a response.create setting replaces the session's for that response)."""

    tools: dict[str, dict[str, Any]]  # function tools by name, in the order offered
    choice: Any
    parallel: bool

    @classmethod
    def of(cls, session: dict[str, Any], params: dict[str, Any]) -> Offer:
        def setting(key: str, default: Any) -> Any:
            if key in params:
                return params[key]
            value = session.get(key)
            return default if value is None else value

        tools: dict[str, dict[str, Any]] = {}
        for tool in setting("tools", []) or []:
            name = tool.get("name")
            if tool.get("type", "function") == "function" and isinstance(name, str):
                tools.setdefault(name, tool)
        return cls(tools, setting("tool_choice", "auto"), setting("parallel_tool_calls", True))

    def forced(self) -> str | None:
        """The function tool_choice forces, if it forces one."""
        choice = self.choice
        if isinstance(choice, dict):
            return choice.get("name") if choice.get("type") == "function" else None
        return choice if choice not in ("auto", "none", "required") else None


def properties(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool's parameters' ``properties`` (its argument names and their schemas)."""
    parameters = tool.get("parameters")
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    return props if isinstance(props, dict) else {}


def _is_string(schema: Any) -> bool:
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return "string" in kinds and "array" not in kinds


def fit(intent: Intent, tools: dict[str, dict[str, Any]]) -> Intent | None:
    """`intent` as the offered tool takes it, or None when the tool or an argument is not
    offered. A ``domain`` list becomes its one string where the schema types it string."""
    name, args = intent
    if name not in tools:
        return None
    props = properties(tools[name])
    if not args.keys() <= props.keys():
        return None
    args = dict(args)
    domain = args.get("domain")
    if isinstance(domain, list) and len(domain) == 1 and _is_string(props["domain"]):
        args["domain"] = domain[0]
    return name, args


# --- understanding --------------------------------------------------------------------


def _number(text: str) -> int | float:
    text = text.lower()
    if text in NUMBER_WORDS:
        return NUMBER_WORDS[text]
    if text in ("a", "an"):
        return 1
    value = float(text)
    return int(value) if value.is_integer() else value


def _target(text: str) -> dict[str, Any]:
    """What one target of a switch command names: a device, or an area's lights."""
    text = re.sub(r"^the\s+", "", text.strip(), flags=re.IGNORECASE)
    if re.fullmatch(r"lights?", text, re.IGNORECASE):
        return {"domain": ["light"]}
    area = re.fullmatch(rf"lights?\s+in\s+{_THE}(?P<x>.+)", text, re.IGNORECASE)
    area = area or re.fullmatch(r"(?P<x>.+?)\s+lights", text, re.IGNORECASE)
    if area:
        return {"area": area["x"], "domain": ["light"]}
    return {"name": text}


def _targets(text: str) -> list[dict[str, Any]]:
    return [_target(t) for t in re.split(r"\s+and\s+", text, flags=re.IGNORECASE) if t.strip()]


# (pattern, arguments added to each target's): an "on" verb turns on, the others off.
_SWITCHES = (
    (r"turn\s+(?P<verb>on|off)\s+(?P<t>.+)", {}),
    (r"(?P<verb>lock|unlock)\s+(?P<t>.+)", {"domain": ["lock"]}),
    (r"(?P<verb>open|close)\s+(?P<t>.+)", {}),
)
_ON_VERBS = {"on", "lock", "open"}
_UNITS = {"second": "seconds", "minute": "minutes", "hour": "hours"}


def _follow_up(text: str, last: Intent | None) -> list[Intent] | None:
    """A command that refers to the last call; None when `text` is not one."""
    again = re.fullmatch(r"turn\s+(?:it|that)\s+(?P<verb>on|off)(?:\s+again)?", text, re.I)
    too = re.fullmatch(rf"and\s+{_THE}{_NAME}\s+(?:too|as\s+well)", text, re.I)
    if not (again or too):
        return None
    if last is None:
        return []
    tool, args = last
    if again:
        kept = {k: v for k, v in args.items() if k in ("name", "area", "domain")}
        on = again["verb"].lower() == "on"
        return [("HassTurnOn" if on else "HassTurnOff", kept)] if kept else []
    assert too is not None
    return [(tool, {**{k: v for k, v in args.items() if k != "area"}, "name": too["x"]})]


def _normalize(text: str) -> str:
    """`text` without trailing punctuation and a polite "please" at either end."""
    for pattern in (_PUNCTUATION, r"^please\s+", r",?\s+please$", _PUNCTUATION):
        text = re.sub(pattern, "", text.strip(), flags=re.IGNORECASE)
    return text


def understand(text: str, last: Intent | None = None) -> list[Intent]:
    """The calls `text` asks for, by tool name and arguments (offered or not)."""
    text = _normalize(text)
    follow = _follow_up(text, last)
    if follow is not None:
        return follow
    match = lambda pattern: re.fullmatch(pattern, text, re.IGNORECASE)  # noqa: E731
    if m := match(rf"(?:set|dim)\s+{_THE}{_NAME}\s+to\s+(?P<n>{_INT})\s*(?:%|percent)"):
        return [("HassLightSet", {"name": m["x"], "brightness": int(_number(m["n"]))})]
    if m := match(rf"set\s+{_THE}{_NAME}\s+to\s+(?P<n>{_DECIMAL})\s*(?:°|degrees?)(?:\s+\w+)?"):
        return [("HassClimateSetTemperature", {"name": m["x"], "temperature": _number(m["n"])})]
    units = "|".join(_UNITS)
    if m := match(
        rf"(?:set|start)\s+a\s+timer\s+for\s+(?P<n>{_DECIMAL}|an?)\s+(?P<u>{units})s?"
    ) or match(rf"(?:set|start)\s+an?\s+(?P<n>{_DECIMAL})[\s-]+(?P<u>{units})s?\s+timer"):
        return [("HassStartTimer", {_UNITS[m["u"].lower()]: _number(m["n"])})]
    if m := match(rf"is\s+{_THE}{_NAME}\s+(?P<state>on|off)"):
        return [("HassGetState", {"name": m["x"], "state": m["state"].lower()})]
    # Only a reading of the home: "what is the weather like" is a question for words.
    if m := match(rf"what(?:\s+is|'s)\s+{_THE}(?P<x>.+?\s(?:{_READINGS}))"):
        return [("HassGetState", {"name": m["x"]})]
    for pattern, extra in _SWITCHES:
        if m := match(pattern):
            tool = "HassTurnOn" if m["verb"].lower() in _ON_VERBS else "HassTurnOff"
            return [(tool, {**target, **extra}) for target in _targets(m["t"])]
    return []


# --- choosing -------------------------------------------------------------------------


def _forced_call(name: str, understood: list[Intent], offer: Offer) -> list[Intent]:
    """The calls of `name` understood, else one with the understood arguments it takes."""
    own = [c for i in understood if i[0] == name and (c := fit(i, offer.tools))]
    if own:
        return own
    props = properties(offer.tools[name])
    args = {k: v for k, v in (understood[0][1] if understood else {}).items() if k in props}
    return [fit((name, args), offer.tools) or (name, {})]


def choose(understood: list[Intent], offer: Offer) -> list[Intent]:
    """The calls a response makes of what was understood, under the offer's constraints."""
    mcp = isinstance(offer.choice, dict) and offer.choice.get("type") != "function"
    if offer.choice == "none" or mcp or not offer.tools:
        return []  # an MCP tool_choice forces an MCP tool: not simulated, no function call
    forced = offer.forced()
    if forced is not None:
        calls = _forced_call(forced, understood, offer) if forced in offer.tools else []
    elif offer.choice == "required":
        calls = [c for i in understood if (c := fit(i, offer.tools))]
        calls = calls or _forced_call(next(iter(offer.tools)), understood, offer)
    else:
        calls = [c for i in understood if (c := fit(i, offer.tools))]
    return calls if offer.parallel is not False else calls[:1]


@dataclass(frozen=True)
class Turn:
    """What the context says about the current user turn."""

    acted: bool  # function calls already follow the last user message
    outputs: list[str]  # the outputs given for them, in order
    last_call: Intent | None  # the latest function_call with object arguments


def read_turn(context: Context) -> Turn:
    last_user = max(
        (i for i, (item, _) in enumerate(context) if item.get("role") == "user"), default=-1
    )
    after = [item for item, _ in context[last_user + 1 :]]
    last_call = None
    for item, _ in reversed(context):
        if item.get("type") == "function_call":
            try:
                args = json.loads(item.get("arguments") or "")
            except ValueError:
                continue
            if isinstance(args, dict) and isinstance(item.get("name"), str):
                last_call = (item["name"], args)
                break
    return Turn(
        acted=any(i.get("type") == "function_call" for i in after),
        outputs=[str(i.get("output")) for i in after if i.get("type") == "function_call_output"],
        last_call=last_call,
    )


def arguments_json(args: dict[str, Any]) -> str:
    """Arguments as a model writes them: compact JSON (``{"a":2,"b":3}`` in public logs)."""
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def plan(
    scenario: Scenario, offer: Offer, context: Context, user_text: str
) -> tuple[list[Call], str | None]:
    """The response's function calls and the text of its message item (None: none)."""
    turn = read_turn(context)
    fresh = not turn.acted
    scripted = scenario.resolve_calls(user_text) if fresh else None
    if scripted is not None:
        calls = [Call(name, arguments) for name, arguments in scripted]
    elif fresh or offer.choice == "required" or offer.forced() is not None:
        intents = choose(understand(user_text, turn.last_call), offer)
        calls = [Call(name, arguments_json(args)) for name, args in intents]
    else:
        calls = []
    if calls:
        return calls, scenario.call_text
    if turn.acted:
        return [], scenario.resolve_output_reply(turn.outputs, user_text)
    return [], scenario.resolve_reply(user_text)


def split_arguments(arguments: str) -> list[str]:
    """The arguments string in streaming pieces (at least one, even when empty)."""
    size = ARGUMENT_DELTA_CHARS
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


# --- function_call_output -------------------------------------------------------------


def check_outputs(items: Iterable[dict[str, Any]], context: Iterable[dict[str, Any]]) -> None:
    """Refuse a function_call_output among `items` whose call_id no function_call of
    `context` (or of `items` before it) has, as the API refuses it."""
    known = {i.get("call_id") for i in context if i.get("type") == "function_call"}
    for item in items:
        if item.get("type") == "function_call":
            known.add(item.get("call_id"))
        elif item.get("type") == "function_call_output" and item.get("call_id") not in known:
            raise p.unknown_tool_call(str(item.get("call_id")))
