"""Who is connected and what they said: the model behind the live page.

Connections and satellites report here as they come and go, and each turn as it starts. A
task per turn follows its transcript and answer as they stream, marks what changed for the
page's subscribers, and when the turn is over keeps only its text and hands the Turn to the
`on_end` listeners (metrics, upstream health). Everything is bounded: the last
`PER_CLIENT` turns of a client and `TOTAL` in all.

Home Assistant opens a connection per request (STT, then the agent), so connections are
grouped by the client's address; a spoken turn answered on the agent connection is the
same Turn, recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .realtime.models import estimated_cost
from .stream import TextStream
from .turn import UNCLAIMED, Outcome, Turn

PER_CLIENT = 20
TOTAL = 100
_ADDRESS = re.compile(r"(\S+):\d+")  # a connection's label, "HOST:PORT"
STATUS = {
    Outcome.COMPLETED.value: "done",
    Outcome.INCOMPLETE.value: "incomplete",
    Outcome.FALLBACK.value: "fallback",
    Outcome.CANCELLED.value: "cancelled",
    Outcome.NO_SPEECH.value: "no_speech",
    UNCLAIMED: "unclaimed",  # Home Assistant never asked for the answer (it answered itself)
}


DECIDED_SECONDS = 5.0  # from a turn's end to the commands sent for it (milliseconds, really)


def usage_of(turn: Turn, model: str) -> dict[str, Any] | None:
    """A turn's billed tokens and their estimated cost, as the page shows them (None: the
    API reported no usage)."""
    usage = turn.usage
    if usage is None:
        return None
    return {
        "input": usage.input_text + usage.input_audio,
        "input_audio": usage.input_audio,
        "output": usage.output_text + usage.output_audio,
        "output_audio": usage.output_audio,
        "cost": estimated_cost(model, usage),
    }


def client_name(label: str) -> str:
    """The page's name for a pipeline's label: a connection's host, a satellite's label."""
    address = _ADDRESS.fullmatch(label)
    return address.group(1) if address else label


def _told(turn: Turn) -> str:
    """The answer as far as anyone asked for it: none while Home Assistant has not claimed
    it (it may answer the command itself), so an answer nobody heard is never shown."""
    if not turn.claim.asked:
        return ""
    return turn.spoken if turn.spoken is not None else turn.answer.text


def first_text_delay(turn: Turn) -> float | None:
    """Seconds from the end of speech (or a typed message) to the first answer text."""
    ended = turn.speech_stopped_at or turn.audio_ended_at
    if turn.first_text_at is None or ended is None:
        return None
    return max(0.0, turn.first_text_at - ended)


@dataclass(eq=False)
class TurnRecord:
    """One turn as the page shows it; reads the live Turn until it ends, then its copy."""

    id: int
    client: str
    turn: Turn | None
    started: float = field(default_factory=time.time)
    began: float = field(default_factory=time.monotonic)
    transcript: str = ""
    answer: str = ""
    status: str = "streaming"
    reason: str | None = None
    dropped: int = 0
    seconds: float | None = None
    first_text: float | None = None
    ended_by: str | None = None  # who ended the user's audio (Turn.ended_by)
    commands: list[str] = field(default_factory=list)
    model: str = ""  # for the cost estimate
    usage: dict[str, Any] | None = None

    def finish(self, turn: Turn) -> None:
        """Keep the text and how it ended; let the Turn go."""
        self.transcript, self.answer = turn.transcript.text, _told(turn).strip()
        self.commands = list(turn.commands)
        self.usage = usage_of(turn, self.model)
        self.status = STATUS[turn.ending]
        self.reason, self.dropped = turn.reason, turn.audio_deltas_dropped
        self.seconds = time.monotonic() - self.began
        self.first_text = first_text_delay(turn)
        self.ended_by = turn.ended_by
        self.turn = None

    def state(self) -> dict[str, Any]:
        turn = self.turn
        return {
            "id": self.id,
            "client": self.client,
            "started": self.started,
            "transcript": turn.transcript.text if turn else self.transcript,
            "answer": _told(turn) if turn else self.answer,
            "status": self.status,
            "reason": self.reason,
            "dropped": turn.audio_deltas_dropped if turn else self.dropped,
            "seconds": self.seconds,
            "first_text": self.first_text,
            "ended_by": turn.ended_by if turn else self.ended_by,
            "commands": list(turn.commands) if turn else self.commands,
            "usage": usage_of(turn, self.model) if turn else self.usage,
        }


@dataclass(eq=False)
class Client:
    name: str
    satellite: bool
    connections: int = 0
    turns: deque[TurnRecord] = field(default_factory=deque)

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "satellite": self.satellite, "connections": self.connections}


class Subscription:
    """What changed since the subscriber last looked; many changes, one wake-up."""

    def __init__(self) -> None:
        self.clients: set[str] = set()
        self.turns: set[int] = set()
        self.closed = False
        self._changed = asyncio.Event()

    def mark(self, *, client: str | None = None, turn: int | None = None) -> None:
        if client is not None:
            self.clients.add(client)
        if turn is not None:
            self.turns.add(turn)
        self._changed.set()

    async def changes(self) -> tuple[list[str], list[int]]:
        """Wait for a change; the clients and turns changed since the last call."""
        await self._changed.wait()
        self._changed.clear()
        clients, turns = sorted(self.clients), sorted(self.turns)
        self.clients, self.turns = set(), set()
        return clients, turns

    def close(self) -> None:
        self.closed = True
        self._changed.set()


class Activity:
    """Clients, their recent turns, and subscribers to changes."""

    def __init__(self, enabled: bool = True, model: str = "") -> None:
        self.enabled = enabled
        self.model = model  # the Realtime model, for the turns' cost estimates
        self.clients: dict[str, Client] = {}
        self.on_end: list[Callable[[Turn], None]] = []
        self._records: OrderedDict[int, TurnRecord] = OrderedDict()  # oldest first
        self._live: dict[Turn, TurnRecord] = {}
        self._subscribers: set[Subscription] = set()
        self._followers: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    # -- reports --------------------------------------------------------------------------

    def connected(self, label: str, *, satellite: bool = False) -> None:
        if self.enabled:
            client = self._client(client_name(label), satellite)
            client.connections += 1
            self._changed(client)

    def disconnected(self, label: str) -> None:
        client = self.clients.get(client_name(label))
        if client is not None:
            client.connections -= 1
            self._changed(client)

    def track(self, label: str, turn: Turn) -> None:
        """Show `turn` under its client as it streams (once, whoever reports it again)."""
        if not self.enabled or turn in self._live or turn.finished:
            return
        client = self._client(client_name(label), satellite=False)
        record = TurnRecord(next(self._ids), client.name, turn, model=self.model)
        self._live[turn] = record
        self._records[record.id] = record
        client.turns.append(record)
        self._changed(client)
        self._mark(turn=record.id)
        if len(client.turns) > PER_CLIENT:
            self._forget(client.turns[0])
        if len(self._records) > TOTAL:
            self._forget(next(iter(self._records.values())))
        task = asyncio.create_task(self._follow(record, turn), name="activity follower")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    def forget(self, turn: Turn) -> None:
        """Take `turn` off the page: its utterance is shown as another turn (asked again)."""
        record = self._live.get(turn)
        if record is not None and record.id in self._records:
            self._forget(record)

    # -- reading --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "clients": [client.state() for client in self.clients.values()],
            "turns": [record.state() for record in self._records.values()],
        }

    def client_state(self, name: str) -> dict[str, Any]:
        client = self.clients.get(name)
        return client.state() if client is not None else {"name": name, "gone": True}

    def turn_state(self, turn_id: int) -> dict[str, Any]:
        record = self._records.get(turn_id)
        return record.state() if record is not None else {"id": turn_id, "gone": True}

    @property
    def connections(self) -> dict[bool, int]:
        """Open connections: {False: Wyoming clients, True: satellites}."""
        counts = {False: 0, True: 0}
        for client in self.clients.values():
            counts[client.satellite] += client.connections
        return counts

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def close(self) -> None:
        """Stop following turns and end every subscriber's stream."""
        for subscription in self._subscribers:
            subscription.close()
        for task in list(self._followers):
            task.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _client(self, name: str, satellite: bool) -> Client:
        client = self.clients.get(name)
        if client is None:
            client = self.clients[name] = Client(name, satellite)
        return client

    def _forget(self, record: TurnRecord) -> None:
        self._records.pop(record.id, None)
        client = self.clients.get(record.client)
        if client is not None:
            client.turns.remove(record)
            self._changed(client)
        self._mark(turn=record.id)

    def _changed(self, client: Client) -> None:
        """Tell subscribers; a client with no connection and no turn left is dropped."""
        if client.connections <= 0 and not client.turns:
            del self.clients[client.name]
        self._mark(client=client.name)

    def _mark(self, *, client: str | None = None, turn: int | None = None) -> None:
        for subscription in self._subscribers:
            subscription.mark(client=client, turn=turn)

    async def _follow(self, record: TurnRecord, turn: Turn) -> None:
        try:
            await asyncio.gather(
                self._watch(record, turn.transcript), self._watch(record, turn.answer)
            )
            await _ended(turn)
            await turn.claim.wait()  # an answer started for HA: until it is claimed or not
            if turn.calls and turn.claim.asked:  # what was done about them, decided next
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turn.decided.wait(), DECIDED_SECONDS)
        finally:
            record.finish(turn)
            del self._live[turn]
            self._mark(turn=record.id)
        for listener in self.on_end:
            listener(turn)

    async def _watch(self, record: TurnRecord, stream: TextStream) -> None:
        async for _ in stream.follow():
            self._mark(turn=record.id)
        self._mark(turn=record.id)  # a final text may replace the parts without a new one


async def _ended(turn: Turn) -> None:
    """Until the turn's task is over (its count of dropped audio final), however it ended."""
    try:
        await turn.wait()
    except asyncio.CancelledError:
        if not turn.finished:
            raise  # this follower was cancelled, not the turn
