"""``forum_replay``: play back the forum log where text-only was confirmed and audio came.

The log (packaged as ``forum_replay.jsonl``) is beta-dialect. In GA it is translated
to GA event names and item content types, with the GA-only item events inserted
where the live GA server sends them. Logged ids are replaced with fresh ones per
replay, consistently (the transcription refers to the committed user item).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .responses import ResponseRun, b64_tone
from .scenario import Scenario

if TYPE_CHECKING:
    from .server import SimConnection

FIXTURE = "forum_replay.jsonl"
TRANSCRIPTION = "conversation.item.input_audio_transcription.completed"
TEXT_DELTAS = ("response.audio_transcript.delta", "response.text.delta")
# Without a response.create soon after the commit the logged transcription is sent on
# its own (an STT-only client must still get it); with one, it arrives in logged order.
STANDALONE_TRANSCRIPTION_AFTER = 1.0
_LOGGED_ID = re.compile(r"^(item|resp|sess)_[A-Za-z0-9]{8,}$")


@functools.cache
def rows() -> tuple[dict[str, Any], ...]:
    """The fixture's records (meta, session, commit, response), in logged order."""
    text = resources.files(__package__).joinpath(FIXTURE).read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def phase(name: str) -> list[dict[str, Any]]:
    """Deep copies of the records of one phase, brought up to today's protocol."""
    records = [copy.deepcopy(r) for r in rows() if r["phase"] == name]
    for record in records:
        event = record.get("event") or {}
        if event.get("type") == TRANSCRIPTION:  # the 2024 log predates its required usage
            event.setdefault("usage", p.transcription_usage(event["transcript"]))
    return records


def remap(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every logged id swapped for its fresh id (created on first sight)."""
    if isinstance(value, dict):
        return {k: remap(v, ids) for k, v in value.items() if k != "event_id"}
    if isinstance(value, list):
        return [remap(v, ids) for v in value]
    if isinstance(value, str) and _LOGGED_ID.match(value):
        if value not in ids:
            ids[value] = p.new_id(value.split("_", 1)[0])
        return ids[value]
    return value


class GaTranslator:
    """Rewrites logged beta events into what the GA dialect sends for them."""

    def __init__(self) -> None:
        self._previous: dict[str, Any] = {}  # item id -> previous_item_id

    @staticmethod
    def _ga_content(item: dict[str, Any]) -> None:
        if item.get("role") == "assistant":
            for part in item.get("content") or []:
                part["type"] = p.ITEM_CONTENT["ga"].get(part.get("type"), part.get("type"))

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The GA event(s) standing for one beta event."""
        etype = event["type"]
        event["type"] = p.BETA_TO_GA.get(etype, etype)
        if isinstance(event.get("item"), dict):
            self._ga_content(event["item"])
        for item in (event.get("response") or {}).get("output") or []:
            self._ga_content(item)
        if etype == "conversation.item.created":
            self._previous[event["item"]["id"]] = event.get("previous_item_id")
            if event["item"].get("status") == "completed":
                return [event, {**event, "type": "conversation.item.done"}]
        if etype == "response.output_item.done":
            item = event["item"]
            previous = self._previous.get(item["id"])
            done = {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            return [done, event]
        return [event]


async def _send_all(
    conn: SimConnection, events: list[dict[str, Any]], ga: GaTranslator | None
) -> None:
    for event in events:
        for out in ga.translate(event) if ga else [event]:
            await conn.send(out)


async def replay_commit(conn: SimConnection, scenario: Scenario) -> None:
    """Answer a commit with the logged committed/item events; arm the transcription."""
    conn.replay_ids = {}
    ga = GaTranslator() if conn.dialect == "ga" else None
    events = [remap(r["event"], conn.replay_ids) for r in phase("commit")]
    await _send_all(conn, events, ga)
    for event in events:
        if event["type"] == "conversation.item.created":
            conn.remember_item(event["item"])
    transcription = [
        remap(r["event"], conn.replay_ids)
        for r in phase("response")
        if r["event"]["type"] == TRANSCRIPTION
    ]
    for event in transcription:
        if event["item_id"] in conn.items:
            conn.item_texts[event["item_id"]] = event["transcript"]
    if conn.replay_transcription is not None:
        conn.replay_transcription.cancel()
    delay = STANDALONE_TRANSCRIPTION_AFTER + scenario.transcription_delay
    conn.replay_transcription = conn.spawn(_standalone(conn, transcription, delay))


async def _standalone(conn: SimConnection, events: list[dict[str, Any]], delay: float) -> None:
    await asyncio.sleep(delay)
    for event in events:
        await conn.send(event)


def _patch_response(run: ResponseRun, event: dict[str, Any]) -> None:
    """GA response objects carry fields the 2024 beta log lacks; add them."""
    if run.dialect == "ga" and isinstance(event.get("response"), dict):
        logged = event["response"]
        shaped = run.response_object(
            logged["status"], logged["output"], logged["status_details"], logged["usage"]
        )
        event["response"] = {**shaped, **logged}


async def replay_response(run: ResponseRun) -> None:
    """Send the logged response sequence in logged order, deltas paced by the scenario."""
    conn, scenario = run.conn, run.scenario
    ids = {k: v for k, v in conn.replay_ids.items() if k.startswith("item_")}
    records = phase("response")
    logged_resp = next(
        r["event"]["response"]["id"] for r in records if r["event"]["type"] == "response.created"
    )
    ids[logged_resp] = run.id
    ga = GaTranslator() if conn.dialect == "ga" else None
    produced, item, first = "", None, True
    for record in records:
        event = remap(record["event"], ids)
        etype = event["type"]
        if etype == TRANSCRIPTION:
            pending, conn.replay_transcription = conn.replay_transcription, None
            if pending is None or pending.done():
                continue  # no commit before this response, or already delivered standalone
            pending.cancel()
        if etype in TEXT_DELTAS:
            if await run.pause(scenario.first_token_delay if first else scenario.delta_delay):
                await _cancelled(run, item, produced)
                return
            first = False
        if "audio_bytes" in record:
            event["delta"] = b64_tone(record["audio_bytes"])
            run.audio_ms += record["audio_bytes"] // p.BYTES_PER_MS
        if etype == "response.output_item.added":
            item = event["item"]
        if etype == "response.output_item.done":
            conn.remember_item(event["item"])
        if etype in ("response.created", "response.done"):
            _patch_response(run, event)
        if etype == "response.done":
            run.mark_done()
        await _send_all(conn, [event], ga)
        if etype in TEXT_DELTAS:
            produced += event["delta"]
            if await run.after_delta():
                return


async def _cancelled(run: ResponseRun, item: dict[str, Any] | None, produced: str) -> None:
    """End a replay cut short by response.cancel (only response.done, as a summary)."""
    output = []
    if item is not None:
        content = {"type": p.ITEM_CONTENT[run.dialect]["audio"], "transcript": produced}
        output.append({**item, "status": "incomplete", "content": [content]})
    await run.send_done("cancelled", run.cancel_reason, output, None)
