"""Zeroconf (mDNS) announcement, so Home Assistant discovers the server by itself.

Uses the `wyoming` library's own `HomeAssistantZeroconf` (`_wyoming._tcp.local.`), as
wyoming-faster-whisper and wyoming-piper do. Discovery is a convenience: when the network
cannot do multicast the server logs why and keeps serving at its address.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

_LOGGER = logging.getLogger(__name__)
DEFAULT_NAME = "realtime-text"
SERVICE_TYPE = "_wyoming._tcp.local."


class ZeroconfError(ValueError):
    """The server's address cannot be announced (e.g. it listens on a unix socket)."""


def announced_address(server_uri: str) -> tuple[str | None, int]:
    """(host or None to detect the LAN address, port) to announce for server.uri."""
    uri = urlparse(server_uri)
    if uri.scheme != "tcp" or not uri.port:
        raise ZeroconfError(f"zeroconf needs a tcp:// server.uri, not {server_uri!r}")
    host = uri.hostname or ""
    if host.startswith("127.") or host == "localhost":
        raise ZeroconfError(
            f"server.uri {server_uri} only listens on this machine: Home Assistant could "
            "not connect to what zeroconf announces (listen on 0.0.0.0)"
        )
    return (None if host in ("", "0.0.0.0", "::") else host), uri.port


class Announcer:
    """Registers `NAME._wyoming._tcp.local.` while the server runs; says goodbye at stop."""

    def __init__(self, name: str, server_uri: str) -> None:
        self.name = name or DEFAULT_NAME
        self.host, self.port = announced_address(server_uri)
        self._zeroconf = None

    async def start(self) -> bool:
        """Announce; False (after one warning line) when this network cannot do mDNS."""
        from wyoming.zeroconf import HomeAssistantZeroconf  # imports zeroconf: only when used

        try:
            self._zeroconf = HomeAssistantZeroconf(port=self.port, name=self.name, host=self.host)
            await self._zeroconf.register_server()
        except OSError as err:
            _LOGGER.warning(
                "Zeroconf discovery is unavailable here (%s); add the server in Home "
                "Assistant by its address instead",
                err,
            )
            await self.stop()
            return False
        _LOGGER.info(
            "Zeroconf: announced as %s.%s at %s:%d",
            self.name,
            SERVICE_TYPE,
            self._zeroconf.host,
            self.port,
        )
        return True

    async def stop(self) -> None:
        """Unregister (mDNS goodbye), so Home Assistant does not keep a stale entry."""
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is not None:
            # The library's class keeps its AsyncZeroconf private and offers no close.
            await zeroconf._aiozc.async_close()
