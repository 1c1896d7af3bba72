"""Client events that feed the conversation: session, input audio, items, transcription.

Split from :mod:`.server` to keep modules small; :class:`ConversationMixin` is only
meant to be mixed into :class:`.server.SimConnection`, which provides the plumbing
declared below (sending, errors, background tasks) and the per-connection state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from . import protocol as p
from . import tools, vad
from .replay import replay_commit
from .responses import split_deltas
from .scenario import Scenario

if TYPE_CHECKING:
    from .server import RealtimeSimulator

MAX_BUFFER_BYTES = 300 * 1000 * p.BYTES_PER_MS  # keep at most 5 min of uncommitted audio
MAX_ITEMS = 1000  # oldest conversation items are forgotten beyond this (the API truncates too)


class ConversationMixin:
    """Handlers for session.update, input_audio_buffer.* and conversation.item.*."""

    sim: RealtimeSimulator
    dialect: p.Dialect
    session: dict[str, Any]
    commits: list[bytes]
    items: dict[str, dict[str, Any]]
    item_texts: dict[str, str]
    tool_outputs: list[dict[str, Any]]
    last_item_id: str | None
    _buffer: bytearray
    vad: vad.Vad

    async def send(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        raise NotImplementedError

    def record(self, records: list[Any], value: Any) -> None:
        raise NotImplementedError

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        session = p.merge_session(self.dialect, self.session, event["session"])
        if self.sim.scenario.mode == "forum_replay":
            p.force_text_only(self.dialect, session)  # the log's session.updated said text
        self.session = session
        await self.send({"type": "session.updated", "session": session})

    async def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise p.ProtocolError(
                "invalid_value", "Invalid 'audio': expected base64.", "audio"
            ) from None
        config = vad.turn_config(self.dialect, self.session)
        done = 0
        for decision in self.vad.feed(pcm, config):
            self._buffer_audio(pcm[done : decision.at])  # the buffer reaches the decision
            done = decision.at
            assert config is not None  # decisions come only with turn detection on
            await vad.act(self, decision, config)  # type: ignore[arg-type]
        self._buffer_audio(pcm[done:])

    def _buffer_audio(self, pcm: bytes) -> None:
        self._buffer += pcm
        if len(self._buffer) > MAX_BUFFER_BYTES:
            del self._buffer[: len(self._buffer) - MAX_BUFFER_BYTES]

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self.vad.reset()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if len(self._buffer) < p.MIN_COMMIT_BYTES:
            ms = len(self._buffer) / p.BYTES_PER_MS
            raise p.ProtocolError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {ms:.2f}ms of audio.",
            )
        pcm = bytes(self._buffer)
        self._buffer.clear()
        self.vad.reset()  # a turn the VAD was following ends here, without speech_stopped
        await self.commit_audio(pcm)

    async def commit_audio(self, pcm: bytes, item_id: str | None = None) -> None:
        """Turn committed audio into a user item (client commit or turn detection)."""
        self.record(self.commits, pcm)
        scenario = self.sim.scenario
        if scenario.mode == "forum_replay":
            await replay_commit(self, scenario)  # the log's ids, whoever committed
            return
        item_id = item_id or p.new_id("item")
        previous = self.last_item_id
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        content = [{"type": "input_audio", "transcript": None}]
        item = {"id": item_id, "type": "message", "status": "completed", "role": "user"}
        text = scenario.resolve_transcript(pcm)
        await self.add_item({**item, "content": content}, previous, text)
        if p.transcription_enabled(self.dialect, self.session):
            self.spawn(self._transcribe(item_id, text, scenario))

    async def _transcribe(self, item_id: str, text: str, scenario: Scenario) -> None:
        """Input transcription: independent of (and racing with) any response."""
        await asyncio.sleep(scenario.transcription_delay)
        base = {"item_id": item_id, "content_index": 0}
        prefix = "conversation.item.input_audio_transcription."
        if scenario.transcription_fails:
            error = {
                "type": "transcription_error",
                "code": "audio_unintelligible",
                "message": "The audio could not be transcribed.",
                "param": None,
            }
            await self.send({"type": prefix + "failed", **base, "error": error})
            return
        for piece in split_deltas(text):
            await self.send({"type": prefix + "delta", **base, "delta": piece})
        usage = p.transcription_usage(text)
        done = {"type": prefix + "completed", **base, "transcript": text, "usage": usage}
        languages = p.transcription_languages(self.dialect, self.session)
        if languages:  # "detected": the simulator cannot tell, it names the first possible
            done["languages"] = [{"code": languages[0]}]
        await self.send(done)

    # --- conversation items ---------------------------------------------------------------

    async def add_item(self, item: dict[str, Any], previous: str | None, text: str | None) -> None:
        """Add a finished item to the conversation and announce it in the dialect's words."""
        if item.get("type", "message") in p.PLAIN_ITEM_TYPES:
            item = {"id": item["id"], "object": "realtime.item", **item}
        self.remember_item(item, text)
        await self.send(
            {
                "type": p.EVENTS[self.dialect]["item_added"],
                "previous_item_id": previous,
                "item": item,
            }
        )
        if self.dialect == "ga":
            await self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )

    def remember_item(self, item: dict[str, Any], text: str | None = None) -> None:
        """Append `item` to the conversation (bounded) and make it the latest one."""
        self.items[item["id"]] = item
        if text is not None:
            self.item_texts[item["id"]] = text
        self.last_item_id = item["id"]
        while len(self.items) > MAX_ITEMS:
            oldest = next(iter(self.items))
            del self.items[oldest]
            self.item_texts.pop(oldest, None)

    def last_user_text(self) -> str:
        """The text of the latest user item (transcript or input_text), or ''."""
        for item_id in reversed(self.items):
            if self.items[item_id].get("role") == "user":
                return self.item_texts.get(item_id, "")
        return ""

    async def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event["item"]
        full = {**item, "id": item.get("id") or p.new_id("item")}
        full.pop("object", None)
        if full.get("type", "message") in p.PLAIN_ITEM_TYPES:
            full = {"status": "completed", **full}
        if full.get("type") == "function_call_output":
            self._check_output(full)
        texts = [c.get("text", "") for c in full.get("content") or [] if isinstance(c, dict)]
        previous = event.get("previous_item_id") or self.last_item_id
        await self.add_item(full, previous, " ".join(t for t in texts if t))
        if full.get("type") == "function_call_output":
            self.record(self.tool_outputs, self.items[full["id"]])

    def _check_output(self, item: dict[str, Any]) -> None:
        """A function_call_output needs its function_call in the conversation (the API
        checks it: see protocol.unknown_tool_call). It creates no response: the model
        speaks about it on the next response.create. Beta's items type every field as
        optional, but the live beta API refused an output without ``call_id`` (OpenAI forum,
        topic 966495: ``Missing required parameter: 'item.call_id'.``)."""
        if "call_id" not in item:
            raise p.ProtocolError(
                "missing_required_parameter",
                "Missing required parameter: 'item.call_id'.",
                "item.call_id",
            )
        tools.check_outputs([item], self.items.values())

    def _known_item(self, event: dict[str, Any], action: str) -> str:
        item_id = event["item_id"]
        if item_id not in self.items:
            # Code not confirmed against the live API; it is an error event either way.
            raise p.ProtocolError(
                "item_not_found",
                f"Error {action} item: the item with id '{item_id}' does not exist.",
                "item_id",
            )
        return item_id

    async def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item_id = self._known_item(event, "deleting")
        del self.items[item_id]
        self.item_texts.pop(item_id, None)
        self.last_item_id = next(reversed(self.items), None)
        await self.send({"type": "conversation.item.deleted", "item_id": item_id})

    async def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item_id = self._known_item(event, "retrieving")
        await self.send({"type": "conversation.item.retrieved", "item": self.items[item_id]})

    async def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id = self._known_item(event, "truncating")
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event["content_index"],
                "audio_end_ms": event["audio_end_ms"],
            }
        )
