"""Zeroconf: the running server is found on mDNS as Home Assistant finds Wyoming services."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from harness import server_config, start_server, stop_server
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from wyoming_realtime_text.config import ConfigError, load_settings
from wyoming_realtime_text.discovery import SERVICE_TYPE, ZeroconfError, announced_address


async def resolve(name: str, timeout_ms: int = 3000) -> tuple[int, list[str]] | None:
    """Ask the network for NAME._wyoming._tcp.local. as Home Assistant's zeroconf does."""
    zeroconf = AsyncZeroconf()
    try:
        info = await zeroconf.async_get_service_info(
            SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", timeout=timeout_ms
        )
    finally:
        await zeroconf.async_close()
    return None if info is None else (info.port, info.parsed_addresses())


async def test_zeroconf_announces_the_server_and_says_goodbye(sim, tmp_path: Path) -> None:
    name = f"rt-test-{secrets.token_hex(4)}"
    full_name = f"{name}.{SERVICE_TYPE}"
    seen: dict[ServiceStateChange, asyncio.Event] = {
        ServiceStateChange.Added: asyncio.Event(),
        ServiceStateChange.Removed: asyncio.Event(),
    }

    def on_change(service_type: str, name: str, state_change: ServiceStateChange, **_: Any) -> None:
        if name == full_name and state_change in seen:
            seen[state_change].set()

    listener = AsyncZeroconf()  # stays up: it hears the announcement and the goodbye
    browser = AsyncServiceBrowser(listener.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        server = await start_server(
            tmp_path, server_config(sim.url, "ga"), "--zeroconf", name, host="0.0.0.0"
        )
        try:
            found = await resolve(name)
            assert found is not None, server.log()
            port, addresses = found
            assert port == server.port
            assert addresses and not addresses[0].startswith("127."), addresses
            assert f"Zeroconf: announced as {full_name}" in server.log()
            async with asyncio.timeout(5):
                await seen[ServiceStateChange.Added].wait()
        finally:
            assert await stop_server(server) == 0
        # The goodbye on shutdown, not the records' 2-minute expiry, removes it at once.
        async with asyncio.timeout(5):
            await seen[ServiceStateChange.Removed].wait()
    finally:
        await browser.async_cancel()
        await listener.async_close()


async def test_zeroconf_is_off_by_default(sim, tmp_path: Path) -> None:
    server = await start_server(tmp_path, server_config(sim.url, "ga"), host="0.0.0.0")
    try:
        assert "Zeroconf" not in server.log()
    finally:
        await stop_server(server)


def test_announced_address() -> None:
    assert announced_address("tcp://0.0.0.0:10310") == (None, 10310)
    assert announced_address("tcp://192.168.1.5:10310") == ("192.168.1.5", 10310)
    with pytest.raises(ZeroconfError, match="tcp://"):
        announced_address("unix:///run/realtime.sock")
    with pytest.raises(ZeroconfError, match="only listens on this machine"):
        announced_address("tcp://127.0.0.1:10310")


def test_zeroconf_on_a_loopback_uri_is_a_config_error() -> None:
    overrides = {"server": {"zeroconf": True, "uri": "tcp://127.0.0.1:10310"}}
    with pytest.raises(ConfigError, match=r"^server\.zeroconf: .*listen on 0\.0\.0\.0"):
        load_settings(env={"OPENAI_API_KEY": "sk-x"}, overrides=overrides)
