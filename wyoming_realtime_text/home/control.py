"""Home control as the rest of the server sees it: tools for a request, a reply for a turn.

Only Home Assistant's own requests (its STT turns and its agent requests) are offered
tools: HA runs the intents we send back, with its own permissions and the satellite's
context. Other clients get none, so their assistant says it cannot control devices.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from wyoming.event import Event
from wyoming.handle import Handled, HandledStop

from ..config import HomeControlSettings
from .intents import Offer
from .peer import Peer
from .plan import Plan, plan
from .reply import intent_events

if TYPE_CHECKING:
    from ..turn import Turn

_LOGGER = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You can control the user's home through Home Assistant with the tools a request "
    "offers you. When the user asks to control a device or asks about its state, call the "
    "matching tool right away, with the names and areas as the user said them, and say in "
    "a few words what you are doing. Never ask for confirmation yourself: the system asks "
    "the user when a command needs it. If a tool result says a command was not done, do "
    "not claim it was. When no tools are offered, you cannot control devices from here: "
    "say so."
)


class HomeControl:
    def __init__(self, settings: HomeControlSettings) -> None:
        self.settings = settings
        self._disabled = frozenset(settings.disabled_intents)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def instructions(self, base: str) -> str:
        """The session's instructions, with what the model needs to know to use the tools."""
        if not self.enabled:
            return base
        return f"{base.strip()}\n\n{INSTRUCTIONS}".strip()

    def tools(self, peer: Peer | None) -> tuple[dict[str, Any], ...]:
        """The tools for a request from `peer` (None: not Home Assistant, so none)."""
        if peer is None or not self.enabled:
            return ()
        return self._tools(peer.device, peer.multi)

    @functools.cache  # noqa: B019 - one instance per server, a handful of keys
    def _tools(self, device: bool, questions: bool) -> tuple[dict[str, Any], ...]:
        offer = Offer(device=device, questions=questions, disabled=self._disabled)
        return tuple(offer.tools())

    async def answer(
        self, turn: Turn, peer: Peer, language: str | None, context: dict[str, Any] | None
    ) -> list[Event] | None:
        """The events that end the agent's answer when `turn` called tools, else None.

        The handled stream already sent (HA skips its chunks) is closed first; then the
        intents, or, when nothing could be sent, a `handled` saying why.
        """
        result = self.decide(turn, peer, language)
        if result is None:
            return None
        await turn.report(result.outputs)
        if result.send:
            return [HandledStop().event(), *intent_events(result, language)]
        return [Handled(text=result.text, context=context).event(), HandledStop().event()]

    def decide(self, turn: Turn, peer: Peer, language: str | None) -> Plan | None:
        """The plan for `turn`'s calls (None without any), remembered on the turn."""
        if not turn.calls:
            return None
        offered = {tool["name"] for tool in turn.tools}
        result = plan(
            turn.calls,
            offered,
            peer,
            language=language,
            said=turn.transcript.text,
            model_text=turn.answer.text,
            confirmable=turn.confirmable,
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
