"""Home control as the rest of the server sees it: tools for a request, a reply for a turn.

Two ways a command reaches the home:
  * Home Assistant's own requests (its STT turns and agent requests): the answer carries
    Wyoming `intent` events, and HA runs them itself, with its permissions and the
    satellite's context. No token needed.
  * Satellites served here, and direct clients the config names (`home_control.clients`):
    nobody in between runs intents, so the server does, through HA's API — only when
    `homeassistant` is configured (a Wyoming port has no authentication: a client that
    connects in never acts on the home through our token unless named).
With the API configured the home is known as well: its exposed entities go into the
response's instructions, each command is checked against them, and state questions are
answered from live state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from wyoming.event import Event
from wyoming.handle import Handled, HandledStop

from ..config import Settings
from .calls import Command
from .hass import HomeAssistantApi, HomeAssistantError, IntentResult
from .home import Home
from .intents import TARGET, Offer, Toolset
from .peer import Peer
from .plan import Plan, plan
from .reply import intent_events
from .speech import confirmation, phrase

if TYPE_CHECKING:
    from ..turn import Turn

_LOGGER = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You can control the user's home through Home Assistant with the tools a request "
    "offers you. When the user asks to control a device or asks about its state, call the "
    "matching tool right away, with the names and areas as the user said them, without "
    "announcing it first: the system tells the user what was done. Never ask for "
    "confirmation yourself: the system asks the user when a command needs it. If a tool "
    "result says a command was not done, do not claim it was. When no tools are offered, "
    "you cannot control devices from here: say so."
)
HOME_HEADING = (
    "The devices in the home you may control or ask about (exposed to the assistant), "
    "with their names and areas:"
)
# The direct client (a Wyoming client that connected in) or satellite a turn is for.
HUB = Peer(version=(1, 10), device=False, conversation=True)


def by_name(command: Command, home: Home) -> list[dict[str, Any]]:
    """The command's slots for each exposed entity it matches, naming that entity (its name,
    and its area where the intent takes one) instead of the area, floor, domain or device
    class that picked it; the other slots (a brightness) as they are."""
    kept = {k: v for k, v in command.slots.items() if k not in TARGET}
    named = []
    for entity in home.match(**command.filters()):
        slots = {**kept, "name": entity.name}
        if entity.area and "area" in command.spec.slots:
            slots["area"] = entity.area
        named.append(slots)
    return named


class HomeControl:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.home_control
        self._base = settings.realtime.instructions
        self._disabled = frozenset(self.settings.disabled_intents)
        self._clients = frozenset(self.settings.clients)
        hass = settings.homeassistant
        self.api = HomeAssistantApi(hass.url, hass.token) if hass.url.strip() else None
        self._offers: dict[tuple[Any, ...], Toolset] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def home(self) -> Home | None:
        """The exposed entities (None without the API, or until HA has answered)."""
        return self.api.home if self.api is not None and self.enabled else None

    async def start(self) -> None:
        """Connect to HA's API, if configured; a refused token leaves it off, said once.

        A warning, not an error: the server goes on serving (HA's own requests run their
        commands without the token), only without knowing the home. The error's message
        says what HA refused and why (never the token); this line, what it means here.
        """
        if self.api is None or not self.enabled:
            return
        try:
            await self.api.start()
        except HomeAssistantError as err:
            _LOGGER.warning(
                "%s; so the home stays unknown and satellites served here cannot control "
                "devices (check homeassistant.token)",
                err,
            )
            self.api = None
            return
        home = self.api.home
        if home is not None:
            _LOGGER.info("Home Assistant: %d entities exposed to Assist", len(home))

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()

    def instructions(self, base: str) -> str:
        """The session's instructions, with what the model needs to know to use the tools."""
        if not self.enabled:
            return base
        return f"{base.strip()}\n\n{INSTRUCTIONS}".strip()

    # -- what a request is offered ------------------------------------------------------

    def tools(self, peer: Peer | None) -> Toolset:
        """The tools for a request from `peer` (None: not Home Assistant, so none).

        Timers only where HA passes a device, state questions only where the answer can be
        real (HA 2026 renders its template; with the home known, we answer them), and, with
        the home known, only intents for the domains it has.
        """
        if peer is None or not self.enabled:
            return Toolset()
        home = self.home
        domains = frozenset(e.domain for e in home.entities) if home is not None else None
        # What the model is told of the home changes with its entities, not their states.
        described = (
            tuple((e.names, e.domain, e.areas, e.floor) for e in home.entities) if home else ()
        )
        key = (peer.device, peer.multi or home is not None, domains, described)
        toolset = self._offers.get(key)
        if toolset is None:
            if len(self._offers) > 16:  # earlier homes' entries
                self._offers.clear()
            offer = Offer(peer.device, key[1], domains, self._disabled)
            toolset = Toolset(tuple(offer.tools()), self._with_home(home))
            self._offers[key] = toolset
        return toolset

    def for_client(self, host: str, *, satellite: bool) -> Peer | None:
        """Whether a turn for a client served here may act on the home: through the API,
        for our satellites and the direct clients (by address) the config names."""
        if self.api is None or not self.enabled:
            return None
        return HUB if satellite or host in self._clients else None

    def _with_home(self, home: Home | None) -> str | None:
        """The response's instructions with the home's overview (None: the session's)."""
        overview = home.overview() if home is not None else ""
        if not overview:
            return None
        return f"{self.instructions(self._base)}\n\n{HOME_HEADING}\n{overview}"

    # -- what becomes of a turn's calls ---------------------------------------------------

    async def answer(
        self, turn: Turn, peer: Peer, language: str | None, context: dict[str, Any] | None
    ) -> list[Event] | None:
        """The events that end HA's agent answer when `turn` called tools, else None.

        The handled stream already sent (HA skips its chunks) is closed first; then the
        intents, or, when nothing could be sent, a `handled` saying why. A command HA 2025
        would also run on entities not exposed to Assist is run here instead, through HA's
        API with the home known (`_run`), and the `handled` says how it went.
        """
        home, device = self.home, (context or {}).get("device_id")
        area = home.device_area(device) if home is not None else None  # HA would not narrow
        result = self.decide(turn, peer, language, area=area)
        if result is None:
            return None
        if result.send and not peer.multi and any(map(self._by_names, result.send)):
            # HA 2025 would run it on unexposed entities too, and runs one intent only: the
            # command goes light by light through HA's API here, and HA speaks the result.
            turn.spoken = await self._execute(result, language)
            await turn.report(result.outputs)
            return [Handled(text=turn.spoken, context=context).event(), HandledStop().event()]
        await turn.report(result.outputs)
        if result.send:
            return [HandledStop().event(), *intent_events(result, language)]
        return [Handled(text=result.text, context=context).event(), HandledStop().event()]

    def runner(self, language: str | None, area: str | None = None) -> Any:
        """`Turn.on_calls` for a turn served here: its calls run through HA's API."""

        async def run(turn: Turn) -> str:
            result = self.decide(turn, HUB, language, area=area)
            if result is None:
                return ""
            said = await self._execute(result, language)
            if said == turn.answer.text.strip():
                said = ""  # the model's words, streamed already, say it
            turn.spoken = None  # the answer's text (streamed, then `said`) is what was said
            await turn.report(result.outputs)
            turn.decided.set()
            return said

        return run

    async def _execute(self, result: Plan, language: str | None) -> str:
        """Each command through HA's API; what is said about them, replacing `result.text`
        where one failed."""
        assert self.api is not None
        failed: list[str] = []
        spoken: list[str] = []
        for command in result.send:
            done = await self._run(command, language)
            if done.ok:
                spoken.append(done.speech or confirmation(command, language))
            else:
                why = done.error_message or done.error_code or "unknown error"
                _LOGGER.warning("Home Assistant did not run %s: %s", command.describe(), why)
                failed.append(phrase(language, "failed", why=why))
        if not failed:
            return result.text
        return " ".join(dict.fromkeys([*spoken, *failed]))

    async def _run(self, command: Command, language: str | None) -> IntentResult:
        """One command through HA's API.

        HA's intent view before 2026.4 does not count exposure: it would act on every entity
        a command's area or domain matches, exposed to Assist or not (the garage light of
        "turn on the lights"). There a command that names no entity goes as one request per
        exposed entity it matches, each by that entity's own name and area: what the user
        may control, and only that. The first failure is the answer.
        """
        assert self.api is not None
        home, name = self.home, command.spec.name
        if home is None or not self._by_names(command):
            return await self.api.handle_intent(name, command.slots, language)
        results = [
            await self.api.handle_intent(name, slots, language) for slots in by_name(command, home)
        ]
        return next((done for done in results if not done.ok), IntentResult(ok=True))

    def _by_names(self, command: Command) -> bool:
        """Whether the command goes entity by entity (`_run`): it names no entity, the home
        is known, and HA's intent view does not count exposure."""
        api = self.api
        if api is None or self.home is None or api.counts_exposure:
            return False
        return command.spec.targets and not command.slots.get("name")

    def decide(
        self, turn: Turn, peer: Peer, language: str | None, area: str | None = None
    ) -> Plan | None:
        """The plan for `turn`'s calls (None without any), remembered on the turn."""
        if not turn.calls:
            turn.decided.set()
            return None
        result = plan(
            turn.calls,
            turn.tools.names,
            peer,
            language=language,
            said=turn.transcript.text,
            model_text=turn.answer.text,
            confirmable=turn.confirmable,
            home=self.home,
            area=area,
        )
        turn.memory.hold(result.held)
        turn.commands = [command.describe() for command in result.send]
        turn.spoken = result.text
        turn.decided.set()
        for refused in result.refused:
            call = refused.call
            _LOGGER.warning("Not sending %s(%s): %s", call.name, call.arguments[:200], refused.why)
        for held in result.held:
            _LOGGER.info("Asking before %s", held.describe())
        return result
