"""The satellite link in-process: keep-alive with satellites that never answer pings."""

from __future__ import annotations

import asyncio

import pytest
from wyoming.event import async_read_event

from wyoming_realtime_text import satellites
from wyoming_realtime_text.config import parse_settings
from wyoming_realtime_text.conversations import Assistant
from wyoming_realtime_text.satellites import SatelliteLink


async def test_a_quiet_satellite_that_ignores_pings_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """wyoming-satellite 1.0.0 (wyoming 1.4.1) has no ping/pong and is silent between turns."""
    monkeypatch.setattr(satellites, "PING_SECONDS", 0.05)
    connections: list[list[str]] = []

    async def old_satellite(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[str] = []
        connections.append(seen)
        while (event := await async_read_event(reader)) is not None:
            seen.append(event.type)  # never answers anything

    server = await asyncio.start_server(old_satellite, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = parse_settings(
        {"realtime": {"api_key": "k"}, "satellites": [{"uri": f"tcp://127.0.0.1:{port}"}]}
    )
    assistant = Assistant(settings)
    link = SatelliteLink(settings, settings.satellites[0], assistant)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 5)
        await asyncio.sleep(0.6)  # twelve ping intervals without an answer
        assert link.connected.is_set()
        assert len(connections) == 1, "the link was not dropped and reopened"
        assert connections[0][:2] == ["run-satellite", "describe"]
        assert connections[0].count("ping") >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await assistant.close()
        server.close()
        await server.wait_closed()
