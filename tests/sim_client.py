"""A plain websockets client of the simulated Realtime server, shared by its tests."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sdk_oracle import connection_errors
from websockets.asyncio.client import ClientConnection, connect

from wyoming_realtime_text.simulator import RealtimeSimulator, SimConnection

DIALECTS = ["beta", "ga"]
TEXT_ONLY: dict[str, dict[str, Any]] = {
    "beta": {"modalities": ["text"], "turn_detection": None},
    "ga": {"type": "realtime", "output_modalities": ["text"]},
}
WITH_TRANSCRIPTION: dict[str, dict[str, Any]] = {
    "beta": {"input_audio_transcription": {"model": "whisper-1"}},
    "ga": {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}},
}
AUDIO_DELTA = {"beta": "response.audio.delta", "ga": "response.output_audio.delta"}
TRANSCRIPT_DELTA = {
    "beta": "response.audio_transcript.delta",
    "ga": "response.output_audio_transcript.delta",
}
TEXT_DELTA = {"beta": "response.text.delta", "ga": "response.output_text.delta"}
ITEM_ADDED = {"beta": "conversation.item.created", "ga": "conversation.item.added"}
# Model names the SDK's models know (beta's session.model is an enum there): the default.
MODEL = {"beta": "gpt-4o-realtime-preview", "ga": "gpt-realtime"}
FORUM_TRANSCRIPT = (
    "こんばんは!本当ですね。これだけ一緒にいると、忙しい日々でもこうやって会える時間が、本当に特別"
)
FORUM_INPUT = "こんばんは、だいぶ涼しくなってきたね\n"


def pcm(ms: int) -> bytes:
    """`ms` of 24 kHz pcm16 (non-silent so a dropped byte would show)."""
    return b"\x01\x02" * (24 * ms)


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait until `condition()` holds (server-side state trails the client's view)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def assert_sdk_valid(connections: Iterable[SimConnection], *, client: bool = False) -> None:
    """Every event the simulator sent on `connections` fits the SDK's server event models;
    with `client`, every event their clients sent fits the client ones (off for the
    simulator's own tests, which send bad events on purpose)."""
    errors = [
        f"connection {i} ({conn.dialect}): {error}"
        for i, conn in enumerate(connections)
        for error in connection_errors(conn, client=client)
    ]
    assert not errors, "\n".join(errors)


class Client:
    """A websockets client that keeps every server event it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, etype: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": etype, **fields}))

    async def append(self, audio: bytes) -> None:
        await self.send("input_audio_buffer.append", audio=base64.b64encode(audio).decode())

    async def recv(self, within: float = 3.0) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        self.events.append(event)
        return event

    async def until(self, etype: str, within: float = 3.0) -> dict[str, Any]:
        while True:
            event = await self.recv(within)
            if event["type"] == etype:
                return event

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await self.recv(seconds)
        except TimeoutError:
            return True
        return False

    async def update(self, session: dict[str, Any]) -> dict[str, Any]:
        await self.send("session.update", session=session)
        event = await self.recv()
        assert event["type"] == "session.updated", event
        return event["session"]

    async def say(self, text: str) -> None:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self.send("conversation.item.create", item=item)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == etype]


@asynccontextmanager
async def client(
    sim: RealtimeSimulator,
    dialect: str = "ga",
    key: str = "sk-test",
    path: str = "/v1/realtime",
    model: str | None = None,
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    if dialect == "beta":
        headers["OpenAI-Beta"] = "realtime=v1"
    url = sim.url.replace("/v1/realtime", path) + f"?model={model or MODEL[dialect]}"
    async with connect(url, additional_headers=headers) as ws:
        c = Client(ws)
        assert (await c.recv())["type"] == "session.created"
        yield c
