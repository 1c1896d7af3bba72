"""A real server with its web endpoints on (the live page, /healthz, /metrics), for the
tests that read them: test_web.py and test_live_page.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from harness import ServerProcess, free_port, server_config, start_server
from prometheus_client.parser import text_string_to_metric_families

from wyoming_realtime_text.simulator import RealtimeSimulator

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Observed:
    """A server with its web endpoints on."""

    server: ServerProcess
    url: str  # http://127.0.0.1:PORT

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def health(self) -> tuple[int, dict[str, Any]]:
        status, body = await self.get("/healthz")
        return status, json.loads(body)

    async def metrics(self) -> Samples:
        """Every sample, by (name, sorted labels), parsed as Prometheus would."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def web_config(sim: RealtimeSimulator, **extra: Any) -> dict[str, Any]:
    """The tests' server config with the web endpoints on, at a free port on loopback."""
    web = {"enabled": True, "host": "127.0.0.1", "port": free_port()}
    return server_config(sim.url, "ga", web=web, **extra)


async def start_observed(tmp: Path, config: dict[str, Any], *args: str) -> Observed:
    server = await start_server(tmp, config, *args)
    observed = Observed(server, f"http://127.0.0.1:{config['web']['port']}")
    for _ in range(100):  # the web server starts before the Wyoming port listens: a formality
        with contextlib.suppress(aiohttp.ClientError):
            if (await observed.get("/healthz"))[0] in (200, 503):
                return observed
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no web server:\n{server.log()}")
