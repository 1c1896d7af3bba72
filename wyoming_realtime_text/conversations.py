"""Conversations, their Realtime sessions, and the one-round-trip hand-over.

Home Assistant asks twice per utterance: STT (audio → transcript) on one connection, then
the agent (transcript → answer) on another. We start the answer upstream the moment the
audio ends, in the session that heard it, and park that turn under its transcript; when
the agent request with the same text arrives, it is answered from the parked turn.

A conversation owns one session, so follow-ups (same `conversation_id`) share its history.
The STT request does not say which conversation it belongs to, so a parked turn is adopted
only by a request that starts a conversation; a follow-up in a conversation that already
has history is asked again as text in its own session (correct, one round trip slower).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .activity import Activity
from .config import Settings
from .home.control import HomeControl
from .home.intents import Toolset
from .home.plan import Memory
from .realtime.dialect import turn_detection
from .realtime.events import RealtimeError
from .realtime.models import base_language, language_hints
from .realtime.pool import SessionPool, too_old
from .realtime.session import DialectChoice, History, RealtimeSession
from .turn import Claim, Outcome, Turn

_LOGGER = logging.getLogger(__name__)
SWEEP_SECONDS = 5.0
# Home Assistant ends a conversation (chat session) five minutes after its last use.
HA_CONVERSATION_SECONDS = 300.0
_ids = itertools.count(1)


def normalise(text: str) -> str:
    """How an agent request's text is matched to a parked turn's transcript."""
    return " ".join(text.split()).casefold()


def _history(turn: Turn) -> History:
    """What a new session is told of `turn`: the words, its calls' outcomes, what was said."""
    told = turn.spoken if turn.spoken is not None else turn.answer.text
    return History(turn.transcript.text, told.strip(), turn.reported)


@dataclass(eq=False)
class Conversation:
    """One session and the turns it remembers."""

    settings: Settings
    pool: SessionPool
    language: str | None = None
    name: str = field(default_factory=lambda: f"conv-{next(_ids)}")
    session: RealtimeSession | None = None
    turns: list[Turn] = field(default_factory=list)
    last_used: float = field(default_factory=time.monotonic)
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    _starting: asyncio.Lock = field(default_factory=asyncio.Lock)
    _current: Turn | None = None
    closed: bool = False  # evicted or swept: a request still queued for it opens nothing
    memory: Memory = field(default_factory=Memory)  # risky commands waiting for a "yes"

    @property
    def current(self) -> Turn | None:
        return self._current

    async def session_ready(self) -> RealtimeSession:
        """The open session; a lost or aging one is replaced and given the history again."""
        async with self._opening:
            if self.closed:  # a session opened now would be closed by nobody
                raise RealtimeError("closed", "the conversation has been closed")
            old = self.session
            if old is not None and old.is_open and not too_old(old):
                return old
            self.session = await self.pool.take(self.language)
            if old is not None:
                await old.close()
                await self._reseed(self.session)
            return self.session

    async def _reseed(self, session: RealtimeSession) -> None:
        """A new session knows nothing: tell it the remembered turns (words, calls, answers)."""
        for turn in self.turns:
            turn.user_item_id, turn.item_ids = None, ()  # their ids died with the old session
        history = [(t, _history(t)) for t in self.turns if t.transcript.text]
        remembered = [(t, h) for t, h in history if h.answer or h.calls]
        if not remembered:
            return
        _LOGGER.info("%s: new session; re-seeding %d turn(s)", self.name, len(remembered))
        ids = await session.add_history([h for _, h in remembered])
        for (turn, _), (user_id, *others) in zip(remembered, ids, strict=True):
            # Their new ids, so that trimming the history still deletes their items.
            turn.user_item_id, turn.item_ids = user_id, tuple(i for i in others if i)

    def rotate_soon(self, now: float) -> bool:
        """Idle with a session near the API's limit: worth replacing before the next turn."""
        idle = self._current is None or self._current.finished
        return idle and self.session is not None and too_old(self.session, now)

    async def start(
        self, *, respond: bool, text: str | None = None, tools: Toolset | None = None
    ) -> Turn:
        """A new turn in this conversation, after the previous one has ended.

        Serialised: concurrent requests for one conversation queue up, so two turns never
        share the session at once (one reader per WebSocket, answers to the right question).
        """
        async with self._starting:
            previous = self._current
            if previous is not None and not previous.finished:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.realtime.response_timeout):
                        await previous.wait()
                if not previous.finished:
                    await previous.cancel()
            turn = Turn(
                self.settings,
                self.session_ready,
                respond=respond,
                text=text,
                tools=tools,
                memory=self.memory,
            )
            self._current = turn
            self.last_used = time.monotonic()
            turn.start()
            return turn

    async def remember(self, turn: Turn) -> None:
        """Keep `turn` in the history; forget the oldest turns beyond the configured bound."""
        await turn.wait()
        if turn.outcome not in (Outcome.COMPLETED, Outcome.INCOMPLETE):
            return
        self.turns.append(turn)
        self.last_used = time.monotonic()
        while len(self.turns) > self.settings.conversation.max_turns:
            old = self.turns.pop(0)
            for item_id in (old.user_item_id, *old.item_ids):
                if item_id and self.session is not None:
                    with contextlib.suppress(RealtimeError):
                        await self.session.delete_item(item_id)

    async def retract(self, turn: Turn) -> None:
        """Undo a turn that never joined the history: its items leave the session."""
        await turn.cancel()
        if self.session is not None and self.session.is_open:
            for item_id in turn.added_items:
                with contextlib.suppress(RealtimeError):
                    await self.session.delete_item(item_id)

    async def close(self, *, in_use: bool = False) -> None:
        """For good: the turn in progress is cancelled, and no session is opened again.

        `in_use`: a client may be following that turn's answer (the conversation is evicted,
        not abandoned), so it gets the fallback text instead of an empty answer.
        """
        self.closed = True
        if self._current is not None and not self._current.finished:
            await self._current.cancel(fallback=in_use)
        async with self._opening:  # one being opened (a rotation) is closed too, once it is
            if self.session is not None:
                await self.session.close()


@dataclass(eq=False)
class _Started:
    """An answer started for Home Assistant at audio-stop, until its agent request claims it."""

    turn: Turn
    conversation: Conversation
    # Running in an existing conversation's session (the likely one), not a session of its own.
    borrowed: bool = False
    key: str = ""  # its normalised transcript
    expires: float = 0.0  # the end of its claim window
    # Claimed or given up: its parking task ends now (it holds the turn and conversation).
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class Assistant:
    """Hands out turns: spoken (with the answer already started) and typed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Where its clients report turns (with the model, for the turns' cost estimates).
        self.activity = Activity(settings.web.enabled, settings.realtime.model)
        self.home = HomeControl(settings)
        realtime = dataclasses.replace(
            settings.realtime, instructions=self.home.instructions(settings.realtime.instructions)
        )
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._started: set[_Started] = set()  # started answers until claimed or given up
        self._parked: dict[str, list[_Started]] = {}  # ... whose transcript is out, by it
        self._unbound: set[Conversation] = set()  # STT-only turns' conversations
        self._last_spoken: dict[str, str] = {}  # client host -> its last spoken conversation
        self._background: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        vad = settings.turn_detection
        dialect = DialectChoice(settings.realtime.dialect)  # one API: one answer on beta
        languages = tuple(language_hints(settings.languages))
        warm = settings.realtime.warm_sessions
        streams = SessionPool(
            realtime,
            # `warm` spares, and one more per satellite served here (docs/configuration.md,
            # realtime.warm_sessions).
            warm + len(settings.satellites) if warm else 0,
            turn_detection(vad.type, vad.eagerness, vad.threshold, vad.silence_ms),
            dialect=dialect,
            languages=languages,
        )
        # Sessions by whether the API's turn detection is on. When it ends Home Assistant's
        # turns too (ha_turns: api), every session has it: typed turns never append audio,
        # so it never fires there, and any conversation can take a spoken follow-up.
        self.pools = {True: streams, False: streams}
        if vad.ha_turns == "ha":
            self.pools[False] = SessionPool(realtime, warm, dialect=dialect, languages=languages)

    def start(self) -> None:
        """Open the warm sessions (call once the event loop runs)."""
        for pool in self._distinct_pools():
            pool.start()
        self._ensure_sweeper()

    async def start_audio_turn(
        self,
        language: str | None,
        conversation_id: str | None = None,
        *,
        respond: bool,
        vad: bool = False,
        client: str | None = None,
        tools: Toolset | None = None,
    ) -> Turn:
        """A spoken turn. Without a conversation id, Home Assistant's STT turn: its answer is
        started now, for the agent request to claim (`client`: the host it comes from).

        `vad`: the audio is a stream with no end of its own (a satellite's microphone), so
        the conversation's session lets the API's turn detection find the end. `tools`: what
        its response may call (home control).
        """
        self._ensure_sweeper()
        if conversation_id is not None:
            conversation = self._conversation(conversation_id, language, vad)
            turn = await conversation.start(respond=respond, tools=tools)
            self._spawn(conversation.remember(turn))
            return turn
        likely = self._likely_conversation(client) if respond and not vad else None
        if likely is not None:
            turn = await likely.start(respond=True, tools=tools)
            self._expect_claim(_Started(turn, likely, borrowed=True))
            return turn
        conversation = Conversation(self.settings, self.pools[vad], base_language(language))
        turn = await conversation.start(respond=respond, tools=tools)
        if respond:
            self._expect_claim(_Started(turn, conversation))
        else:
            self._unbound.add(conversation)
            self._spawn(self._close_after(turn, conversation))
        return turn

    def _likely_conversation(self, client: str | None) -> Conversation | None:
        """Where `client`'s next spoken request will most likely go: its last one's.

        HA 2025.7+ keeps a satellite's conversation_id until five minutes after its last use,
        so an utterance soon after another is usually a follow-up in it. Started there, its
        answer has the history and takes one round trip; if another conversation claims it
        after all (another satellite, a new conversation), it is retracted (`_release`) and
        asked there. Only an idle conversation is borrowed: a busy one would hold this up.
        """
        conversation_id = self._last_spoken.get(client) if client else None
        conversation = self.conversations.get(conversation_id) if conversation_id else None
        if conversation is None or conversation.closed or not conversation.turns:
            return None
        if time.monotonic() - conversation.last_used > HA_CONVERSATION_SECONDS:
            return None  # HA has started a new one by now
        busy = conversation.current is not None and not conversation.current.finished
        return None if busy else conversation

    def _expect_claim(self, started: _Started) -> None:
        started.turn.claim = Claim(pending=True)
        self._started.add(started)
        self._spawn(self._park(started))

    async def answer(
        self,
        text: str,
        conversation_id: str | None,
        language: str | None,
        client: str | None = None,
        tools: Toolset | None = None,
    ) -> Turn:
        """The turn answering `text`: a started spoken turn if it fits, else a typed turn.

        Without a conversation id (Home Assistant up to 2025.6 sends none) nobody can
        continue the conversation: it is closed, session and all, once its turn is over.
        """
        self._ensure_sweeper()
        started = self._unpark(text)
        if started is not None and client and conversation_id:
            self._remember_speaker(client, conversation_id)
        existing = self.conversations.get(conversation_id) if conversation_id else None
        if started is not None:
            if self._fits(started, existing):
                started.turn.claim.decide(True)
                self._keep(conversation_id, started.conversation, started.turn, adopt=True)
                return started.turn
            # Started without this conversation's history: asked again where it belongs,
            # and shown once on the live page, as that turn.
            _LOGGER.debug("%r belongs to %s: asking it there", text, conversation_id)
            started.turn.claim.decide(False)
            if started.borrowed:  # no turn of the conversation it ran in: a "yes" may follow
                started.conversation.memory.give_back()
            self.activity.forget(started.turn)
            self._spawn(self._release(started))
        if conversation_id is None:
            conversation = Conversation(self.settings, self.pools[False], base_language(language))
        else:
            conversation = self._conversation(conversation_id, language)
        turn = await conversation.start(respond=True, text=text, tools=tools)
        self._keep(conversation_id, conversation, turn)
        return turn

    @staticmethod
    def _fits(started: _Started, existing: Conversation | None) -> bool:
        """Whether a started answer answers the request of conversation `existing`.

        One started in that conversation does; one started in a session of its own does
        when the conversation is new (or has nothing to remember yet); one borrowed from
        another conversation never does.
        """
        if started.borrowed:
            return started.conversation is existing
        return existing is None or not existing.turns

    def _remember_speaker(self, client: str, conversation_id: str) -> None:
        """`client`'s spoken request went to `conversation_id` (typed requests do not count:
        the Assist dialog's conversations are not its satellites')."""
        self._last_spoken.pop(client, None)
        self._last_spoken[client] = conversation_id
        while len(self._last_spoken) > self.settings.conversation.max_conversations:
            del self._last_spoken[next(iter(self._last_spoken))]  # the longest unheard host

    def _keep(
        self,
        conversation_id: str | None,
        conversation: Conversation,
        turn: Turn,
        *,
        adopt: bool = False,
    ) -> None:
        """Remember `turn` in its conversation, or close the conversation after it (no id).

        `adopt`: the conversation (a started answer's) becomes `conversation_id`'s now.
        """
        if conversation_id is None:
            self._spawn(self._close_after(turn, conversation))
            return
        if adopt:
            self._adopt(conversation_id, conversation)
        self._spawn(conversation.remember(turn))

    def end_conversation(self, conversation_id: str) -> None:
        """Its only client has left (a direct client's connection): close it, session and
        all, now rather than after `idle_seconds`, since nobody can continue it.

        Not for Home Assistant's conversation ids (HA connects once per request) nor a
        satellite's (kept across its reconnections): those are only swept when idle.
        """
        conversation = self.conversations.pop(conversation_id, None)
        if conversation is not None:
            self._spawn(conversation.close())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        started = [p.conversation for p in self._started if not p.borrowed]
        self._started.clear()
        self._parked.clear()
        conversations = {*self.conversations.values(), *started, *self._unbound}
        self.conversations.clear()
        self._unbound.clear()
        await asyncio.gather(*(c.close() for c in conversations), return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self._distinct_pools()), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _distinct_pools(self) -> list[SessionPool]:
        return list(dict.fromkeys(self.pools.values()))

    def _conversation(
        self, conversation_id: str, language: str | None, vad: bool = False
    ) -> Conversation:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            conversation = Conversation(self.settings, self.pools[vad], base_language(language))
            self._adopt(conversation_id, conversation)
        self.conversations.move_to_end(conversation_id)
        return conversation

    def _adopt(self, conversation_id: str, conversation: Conversation) -> None:
        """`conversation` is `conversation_id`'s; one it replaces is closed (never dropped
        with its session open); the least recently used beyond max_conversations too."""
        displaced = self.conversations.get(conversation_id)
        if displaced is not None and displaced is not conversation:
            self._spawn(displaced.close(in_use=True))
        self.conversations[conversation_id] = conversation
        self.conversations.move_to_end(conversation_id)
        while len(self.conversations) > self.settings.conversation.max_conversations:
            _, oldest = self.conversations.popitem(last=False)
            self._spawn(oldest.close(in_use=True))

    async def _park(self, started: _Started) -> None:
        """Park the answer under its transcript for the agent request; give up after the claim.

        Home Assistant asks within milliseconds of the transcript (a few hundred the first
        time it loads its intents). Past `claim_seconds` it never will: HA answered the
        command itself. The answer is then released (`_release`); a request arriving later
        still, is asked again as text.
        """
        turn = started.turn
        try:
            transcript = await turn.transcript.wait()
            if started not in self._started:
                return  # claimed the moment its transcript was out, or closed
            if not transcript.strip():  # nothing heard: HA asks nothing
                if self._take(started):
                    await self._release(started)
                return
            claim = self.settings.conversation.claim_seconds
            started.key, started.expires = normalise(transcript), time.monotonic() + claim
            self._parked.setdefault(started.key, []).append(started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.settled.wait(), claim)
            if self._take(started):
                _LOGGER.info("Nobody asked for the answer to %r: cancelled", transcript)
                await self._release(started)
        finally:
            turn.claim.decide(False)  # no-op once claimed

    async def _release(self, started: _Started) -> None:
        """A started answer nobody will read: cancel it, and undo it where it ran.

        A session of its own is closed. A borrowed conversation stays as it was before the
        turn: the user's words and the answer are deleted from its session (they never
        joined its history), so its next turn does not see them.
        """
        started.turn.claim.decide(False)
        if started.borrowed:
            await started.conversation.retract(started.turn)
        else:
            await started.turn.cancel()
            await started.conversation.close()

    def _take(self, started: _Started) -> bool:
        """Remove `started` from the waiting answers; False if it was taken already."""
        if started not in self._started:
            return False
        self._started.discard(started)
        entries = self._parked.get(started.key, [])
        if started in entries:
            entries.remove(started)
            if not entries:
                del self._parked[started.key]
        started.settled.set()
        return True

    def _unpark(self, text: str) -> _Started | None:
        """The started answer whose transcript is `text`, taken (the oldest first)."""
        key = normalise(text)
        for started in self._parked.get(key, []):
            self._take(started)
            return started
        # The agent request can race the parking task: match a just-finished transcript too.
        for started in self._started:
            done = started.turn.transcript.done and not started.key
            if done and normalise(started.turn.transcript.text) == key:
                self._take(started)
                return started
        return None

    async def _close_after(self, turn: Turn, conversation: Conversation) -> None:
        await turn.wait()
        self._unbound.discard(conversation)
        await conversation.close()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="conversation sweeper")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await self.sweep()

    async def sweep(self, now: float | None = None) -> None:
        """Close idle conversations and their sessions; rotate aging sessions while idle.

        Unclaimed answers are given up by their own parking task at `claim_seconds`; a sweep
        at a later `now` gives up those whose window has passed by then too.
        """
        now = time.monotonic() if now is None else now
        expired = [p for entries in self._parked.values() for p in entries if p.expires <= now]
        given_up = [self._release(p) for p in expired if self._take(p)]
        await asyncio.gather(*given_up, return_exceptions=True)
        idle = self.settings.conversation.idle_seconds
        ids = [c for c, conv in self.conversations.items() if now - conv.last_used > idle]
        unused = [self.conversations.pop(cid) for cid in ids]
        for conversation in self.conversations.values():
            if conversation.rotate_soon(now):
                self._spawn(conversation.session_ready())  # at an idle moment, not mid-turn
        if unused:
            _LOGGER.debug("Closing %d idle conversation(s)", len(unused))
        closing = [c.close(in_use=True) for c in unused]
        await asyncio.gather(*closing, return_exceptions=True)
