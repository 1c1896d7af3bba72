"""The live page, /healthz and /metrics over HTTP (aiohttp), beside the Wyoming server.

`/` is one static page (`live.html`); it follows `/events`, a server-sent event stream: a
snapshot of the activity, then each client and turn whose state changed, as a whole state
(so a missed event costs nothing and a reconnect starts from a new snapshot). Changes are
sent at most every FLUSH_SECONDS, however fast the answer streams. Nothing served here holds
the API key: the page shows what was said, /healthz masks the key in any error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from . import __version__
from .activity import Activity, Subscription
from .config import WebSettings
from .metrics import Metrics
from .realtime.health import UpstreamHealth

_LOGGER = logging.getLogger(__name__)
FLUSH_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0  # a comment line: proxies keep the stream, a gone browser is noticed
MAX_STREAMS = 32  # pages open at once; each is told every change
SHUTDOWN_SECONDS = 2.0


def _page() -> tuple[bytes, str]:
    """The page and a Content-Security-Policy allowing exactly its inline style and script."""
    text = resources.files(__package__).joinpath("live.html").read_text(encoding="utf-8")
    hashes = {
        kind: " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in re.findall(rf"<{kind}>(.*?)</{kind}>", text, re.S)
        )
        for kind in ("style", "script")
    }
    policy = (
        f"default-src 'none'; style-src {hashes['style']}; script-src {hashes['script']}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )
    return text.encode(), policy


class WebServer:
    """Serves the page and the endpoints; `start` and `stop` beside the Wyoming server."""

    def __init__(
        self,
        settings: WebSettings,
        activity: Activity,
        upstream: UpstreamHealth,
        secret: str,
    ) -> None:
        self.settings = settings
        self.activity = activity
        self.upstream = upstream
        self.metrics = Metrics(activity, upstream)
        self._secret = secret
        self._page, self._policy = _page()
        self._streams: set[Subscription] = set()
        self._runner: web.AppRunner | None = None
        activity.on_end.append(
            lambda turn: upstream.turn_ended(turn.outcome or "fallback", turn.reason)
        )

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}/"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)
        app.router.add_get("/api/activity", self._activity)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> bool:
        """Listen; False (after a warning) when the port cannot be had: the server runs on."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, self.settings.host, self.settings.port, shutdown_timeout=SHUTDOWN_SECONDS
        )
        try:
            await site.start()
        except OSError as err:
            _LOGGER.warning(
                "No live page: cannot listen on %s: %s (set web.port, or web.enabled: false)",
                self.url,
                err.strerror or err,
            )
            await runner.cleanup()
            return False
        self._runner = runner
        _LOGGER.info("Live page on %s (also /healthz and /metrics)", self.url)
        return True

    async def stop(self) -> None:
        for stream in self._streams:
            stream.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- handlers -------------------------------------------------------------------------

    async def _index(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self._page,
            content_type="text/html",
            charset="utf-8",
            headers={**_NO_STORE, "Content-Security-Policy": self._policy},
        )

    async def _activity(self, _: web.Request) -> web.Response:
        return _json(self.activity.snapshot())

    async def _healthz(self, _: web.Request) -> web.Response:
        report = self.upstream.report(self._secret)
        connections = self.activity.connections
        report["connections"] = {"client": connections[False], "satellite": connections[True]}
        report["version"] = __version__
        return _json(report, status=200 if report["healthy"] else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render(), headers=_NO_STORE)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_STREAMS} live pages at once")
        response = web.StreamResponse(
            headers={**_NO_STORE, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        with self.activity.subscribe() as changes, contextlib.suppress(ConnectionError):
            self._streams.add(changes)
            try:
                await _send(response, "snapshot", self.activity.snapshot())
                await self._follow(response, changes)
            finally:
                self._streams.discard(changes)
        return response

    async def _follow(self, response: web.StreamResponse, changes: Subscription) -> None:
        """Each changed client and turn, whole; a comment line when nothing happens."""
        while not changes.closed:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    clients, turns = await changes.changes()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            for name in clients:
                await _send(response, "client", self.activity.client_state(name))
            for turn_id in turns:
                await _send(response, "turn", self.activity.turn_state(turn_id))
            await asyncio.sleep(FLUSH_SECONDS)  # what changes meanwhile goes in one batch


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    # json.dumps escapes newlines, so the data is always one `data:` line.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {payload}\n\n".encode())


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=_NO_STORE)
