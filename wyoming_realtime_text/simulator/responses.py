"""One model response: the event sequence from response.created to response.done.

Runs as a task beside the connection's reader so that ``response.cancel`` (and any
other client event) is handled mid-response, as on the real server.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from . import protocol as p
from . import tools
from .scenario import Scenario

if TYPE_CHECKING:
    from .server import SimConnection


def split_deltas(text: str, words: int = 2) -> list[str]:
    """Cut `text` into small streaming pieces whose concatenation is exactly `text`.

    Pieces carry their leading space (" there") like real deltas; text without spaces
    (e.g. Japanese) is cut every three characters.
    """
    tokens = re.findall(r"\s*\S+", text)
    if len(tokens) <= 1:
        return [text[i : i + 3] for i in range(0, len(text), 3)]
    tail = text[len("".join(tokens)) :]
    pieces = ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    pieces[-1] += tail
    return pieces


def pcm_tone(n_bytes: int, freq: float = 440.0) -> bytes:
    """`n_bytes` of quiet 24 kHz pcm16 sine: audio nobody should ever play."""
    t = np.arange(n_bytes // 2) / p.SAMPLE_RATE
    samples = (800 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    return samples.tobytes() + b"\0" * (n_bytes % 2)


def b64_tone(n_bytes: int) -> str:
    """Base64 of :func:`pcm_tone`, as carried by ``*.audio.delta``."""
    return base64.b64encode(pcm_tone(n_bytes)).decode("ascii")


def status_details(status: str, reason: str | None) -> dict[str, Any] | None:
    """``status_details`` for a finished response."""
    if status == "completed":
        return None
    return {"type": status, "reason": reason}


class ResponseRun:
    """A single response; the connection allows one active at a time."""

    def __init__(self, conn: SimConnection, params: dict[str, Any], scenario: Scenario) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.params = params
        self.scenario = scenario
        self.id = p.new_id("resp")
        self.deltas = 0  # text / audio-transcript / function-call argument deltas sent so far
        self.done_sent = False
        self.audio_ms = 0  # audio produced: its playback delays the VAD's idle timeout
        self.task: asyncio.Task[None] | None = None  # set by the connection that runs it
        self.cancel_reason = "client_cancelled"
        self._cancel = asyncio.Event()
        self.write_conversation = params.get("conversation", "auto") != "none"
        key = p.MODALITY_KEY[self.dialect]
        self.modalities: list[str] = params.get(key) or p.session_modalities(
            self.dialect, conn.session
        )

    def cancel(self, reason: str = "client_cancelled") -> None:
        """Ask the response to end as ``cancelled`` (with `reason`) at its next step."""
        if not self._cancel.is_set():
            self.cancel_reason = reason
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel (client or turn detection) is pending or was applied."""
        return self._cancel.is_set()

    def mark_done(self) -> None:
        """Call just before sending ``response.done``: arms the VAD's idle timeout."""
        self.done_sent = True
        self.conn.vad.arm_idle(self.audio_ms * p.BYTES_PER_MS)

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a cancel arrived (now or meanwhile)."""
        if self._cancel.is_set():
            return True
        try:
            await asyncio.wait_for(self._cancel.wait(), max(seconds, 0.0))
        except TimeoutError:
            return False
        return True

    def response_object(
        self, status: str, output: list[dict[str, Any]], details: Any = None, use: Any = None
    ) -> dict[str, Any]:
        """The ``response`` resource in this dialect's shape."""
        session = self.conn.session
        obj: dict[str, Any] = {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": self.conn.conversation_id if self.write_conversation else None,
        }
        if self.dialect == "beta":
            obj.update(
                modalities=self.modalities,
                voice=session.get("voice"),
                output_audio_format=session.get("output_audio_format"),
                temperature=session.get("temperature"),
                max_output_tokens=session.get("max_response_output_tokens"),
            )
        else:
            out = session["audio"]["output"]
            obj.update(
                output_modalities=self.modalities,
                max_output_tokens=session.get("max_output_tokens"),
                audio={"output": {"format": out["format"], "voice": out["voice"]}},
            )
        obj.update(usage=use, metadata=self.params.get("metadata"))
        return obj

    async def send_done(
        self, status: str, reason: str | None, output: list[dict[str, Any]], use: Any
    ) -> None:
        """Send ``response.done`` (GA: then ``rate_limits.updated``, as observed live)."""
        obj = self.response_object(status, output, status_details(status, reason), use)
        self.mark_done()
        await self.conn.send({"type": "response.done", "response": obj})
        if self.dialect == "ga":
            await self.send_rate_limits()

    async def send_rate_limits(self) -> None:
        """A ``rate_limits.updated`` event with plausible numbers."""
        limits = [
            {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006},
            {"name": "tokens", "limit": 2000000, "remaining": 1995112, "reset_seconds": 0.146},
        ]
        await self.conn.send({"type": "rate_limits.updated", "rate_limits": limits})

    async def after_delta(self) -> bool:
        """Apply the per-delta faults; True if the response must stop right here."""
        self.deltas += 1
        return await self.connection_fault()

    async def connection_fault(self) -> bool:
        """Drop or expire the connection once `deltas` reaches the scenario's count."""
        scenario = self.scenario
        if scenario.disconnect_after is not None and self.deltas >= scenario.disconnect_after:
            self.conn.drop()
            return True
        if (
            scenario.session_expired_after is not None
            and self.deltas >= scenario.session_expired_after
        ):
            await self.conn.expire()
            return True
        return False

    def user_text(self) -> str:
        """The user input this response answers: response.input text, else the last user item."""
        texts = [
            c.get("text", "")
            for item in self.params.get("input") or []
            if isinstance(item, dict)
            for c in item.get("content") or []
            if isinstance(c, dict) and c.get("type") == "input_text"
        ]
        return " ".join(texts) if texts else self.conn.last_user_text()

    async def run(self) -> None:
        """The whole response; faults and modes decide what is sent."""
        scenario = self.scenario
        if scenario.mode == "forum_replay" and not (scenario.silent or scenario.error_code):
            from .replay import replay_response  # replay imports this module

            await replay_response(self)
            return
        await self.conn.send(
            {"type": "response.created", "response": self.response_object("in_progress", [])}
        )
        if scenario.error_code is not None:  # error_delivery == "response_failed"
            code = scenario.error_code
            error = {"type": p.error_type(code), "code": code, "message": p.error_message(code)}
            obj = self.response_object("failed", [], {"type": "failed", "error": error}, None)
            self.mark_done()
            await self.conn.send({"type": "response.done", "response": obj})
            return
        if scenario.silent:
            await self._cancel.wait()
            await self.send_done("cancelled", self.cancel_reason, [], None)
            return
        if self.dialect == "beta":
            await self.send_rate_limits()  # beta sent it right after response.created
        audio = scenario.mode == "audio_despite_text" or "audio" in self.modalities
        await self._generate("audio" if audio else "text")

    def context(self) -> tools.Context:
        """What this response sees, with the text understood of each item: its ``input``
        (item references resolved in the conversation), else the conversation."""
        conn = self.conn
        given = self.params.get("input")
        if given is None:
            return [(item, conn.item_texts.get(item_id)) for item_id, item in conn.items.items()]
        context: tools.Context = []
        for item in given:
            if item.get("type") == "item_reference":
                if item.get("id") in conn.items:
                    context.append((conn.items[item["id"]], conn.item_texts.get(item["id"])))
                continue
            texts = [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
            context.append((item, " ".join(t for t in texts if t)))
        return context

    async def _generate(self, kind: str) -> None:
        """The output items (a message, function calls or both), then response.done."""
        offer = tools.Offer.of(self.conn.session, self.params)
        calls, text = tools.plan(self.scenario, offer, self.context(), self.user_text())
        output: list[dict[str, Any]] = []
        status, reason = "completed", None
        if text is not None:
            step = await self._message(kind, text, len(output))
            if step is None:
                return  # connection dropped or expired: no done events, like the real thing
            item, status, reason = step
            output.append(item)
        for call in calls:
            if status != "completed":
                break
            step = await self._function_call(call, len(output))
            if step is None:
                return
            item, status, reason = step
            output.append(item)
        await self.send_done(
            status, reason, output, p.response_usage(self.dialect, self.deltas, self.audio_ms // 50)
        )

    async def _add_output_item(self, item: dict[str, Any], index: int) -> str | None:
        """Announce a new output item (and add it to the conversation); returns the id of
        the item before it, which its conversation.item.done repeats."""
        conn, previous = self.conn, self.conn.last_item_id
        await conn.send(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": index,
                "item": item,
            }
        )
        if self.write_conversation:
            conn.remember_item(item)
            await conn.send(
                {
                    "type": p.EVENTS[self.dialect]["item_added"],
                    "previous_item_id": previous,
                    "item": item,
                }
            )
        return previous

    async def _finish_output_item(
        self, item: dict[str, Any], index: int, previous: str | None
    ) -> None:
        """Store the finished item and announce it done (GA: conversation.item.done first,
        the live GA order)."""
        conn = self.conn
        if self.write_conversation:
            conn.items[item["id"]] = item
            if self.dialect == "ga":
                await conn.send(
                    {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
                )
        await conn.send(
            {
                "type": "response.output_item.done",
                "response_id": self.id,
                "output_index": index,
                "item": item,
            }
        )

    async def _next_delta(self) -> tuple[str, str | None] | None:
        """Wait for the next delta; the status to end with if a cancel came, else None."""
        first = self.deltas == 0
        delay = self.scenario.first_token_delay if first else self.scenario.delta_delay
        if await self.pause(delay):
            return "cancelled", self.cancel_reason
        return None

    def _cut(self, more: bool) -> bool:
        """Whether `cut_after` ends the response here (only while more would follow)."""
        cut = self.scenario.cut_after
        return cut is not None and self.deltas >= cut and more

    async def _message(
        self, kind: str, text: str, index: int
    ) -> tuple[dict[str, Any], str, str | None] | None:
        """A message item streamed as text or audio; (item, status, reason), or None when
        the connection went away."""
        conn, names = self.conn, p.EVENTS[self.dialect]
        item_id = p.new_id("item")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        previous = await self._add_output_item(item, index)
        field = "transcript" if kind == "audio" else "text"
        ids = {
            "response_id": self.id,
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
        }
        part = {"type": p.PART_TYPE[self.dialect][kind], field: ""}
        await conn.send({"type": "response.content_part.added", **ids, "part": part})
        if await self.connection_fault():  # a count of 0: before any text
            return None

        pieces = split_deltas(text)
        produced, status, reason = "", "completed", None
        for i, piece in enumerate(pieces):
            if (stop := await self._next_delta()) is not None:
                status, reason = stop
                break
            if kind == "audio":
                await conn.send({"type": names["transcript_delta"], **ids, "delta": piece})
                ms = min(300, 100 * max(1, len(piece.split())))
                self.audio_ms += ms
                await conn.send(
                    {"type": names["audio_delta"], **ids, "delta": b64_tone(ms * p.BYTES_PER_MS)}
                )
            else:
                await conn.send({"type": names["text_delta"], **ids, "delta": piece})
            produced += piece
            if await self.after_delta():
                return None
            if self._cut(more=i < len(pieces) - 1):
                status, reason = "incomplete", self.scenario.cut_reason
                break

        if kind == "audio":
            await conn.send({"type": names["audio_done"], **ids})
            await conn.send({"type": names["transcript_done"], **ids, "transcript": produced})
        else:
            await conn.send({"type": names["text_done"], **ids, "text": produced})
        await conn.send(
            {"type": "response.content_part.done", **ids, "part": {**part, field: produced}}
        )
        content = {"type": p.ITEM_CONTENT[self.dialect][kind], field: produced}
        done_item = {
            **item,
            "status": "completed" if status == "completed" else "incomplete",
            "content": [content],
        }
        await self._finish_output_item(done_item, index, previous)
        return done_item, status, reason

    async def _function_call(
        self, call: tools.Call, index: int
    ) -> tuple[dict[str, Any], str, str | None] | None:
        """A function_call item whose arguments stream in deltas; (item, status, reason),
        or None when the connection went away.

        Its deltas count like text deltas for the faults (cut_after, disconnect_after,
        session_expired_after) and the usage; a cut or cancelled call ends ``incomplete``
        with the arguments so far, and ``...arguments.done`` is still sent, as the
        reference says it is for an interrupted response.
        """
        conn = self.conn
        item_id, call_id = p.new_id("item"), p.new_id("call", 16)
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        previous = await self._add_output_item(item, index)
        if await self.connection_fault():  # a count of 0: before any arguments
            return None
        ids = {
            "response_id": self.id,
            "item_id": item_id,
            "output_index": index,
            "call_id": call_id,
        }
        pieces = tools.split_arguments(call.arguments)
        produced, status, reason = "", "completed", None
        for i, piece in enumerate(pieces):
            if (stop := await self._next_delta()) is not None:
                status, reason = stop
                break
            await conn.send(
                {"type": "response.function_call_arguments.delta", **ids, "delta": piece}
            )
            produced += piece
            if await self.after_delta():
                return None
            if self._cut(more=i < len(pieces) - 1):
                status, reason = "incomplete", self.scenario.cut_reason
                break
        done = {"type": "response.function_call_arguments.done", **ids, "arguments": produced}
        if p.ARGUMENTS_DONE_NAMES_FUNCTION[self.dialect]:
            done["name"] = call.name
        await conn.send(done)
        done_item = {
            **item,
            "status": "completed" if status == "completed" else "incomplete",
            "arguments": produced,
        }
        await self._finish_output_item(done_item, index, previous)
        conn.record(conn.calls, done_item)
        return done_item, status, reason
