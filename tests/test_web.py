"""The live page's data, /healthz, /metrics and JSON logs: the real server, against the
simulator. The page itself, in a real browser, is test_live_page.py."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from harness import (
    FALLBACK,
    SECRET_KEY,
    HomeAssistant,
    server_config,
    speech,
    start_server,
    stop_server,
    tone,
)
from web_rig import Observed, Samples, start_observed, web_config

from wyoming_realtime_text import web as live_page
from wyoming_realtime_text.activity import Activity
from wyoming_realtime_text.config import ConfigError, parse_settings
from wyoming_realtime_text.realtime.events import CONVERSATION_CLOSED, RealtimeError
from wyoming_realtime_text.realtime.health import UpstreamHealth
from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario
from wyoming_realtime_text.simulator.satellite import SimulatedSatellite
from wyoming_realtime_text.simulator.tts import SimulatedTts
from wyoming_realtime_text.turn import Turn

asyncio_test = pytest.mark.asyncio(loop_scope="module")

M = "wyoming_realtime_text_"
FORUM_TRANSCRIPT = "こんばんは、だいぶ涼しくなってきたね"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def observed(
    sim: RealtimeSimulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    """One server for the module, logging JSON lines."""
    tmp = tmp_path_factory.mktemp("web")
    server = await start_observed(tmp, web_config(sim), "--log-format", "json")
    yield server
    assert await stop_server(server.server) == 0, server.server.log()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Until `check` holds: a turn is counted a moment after its client has the answer."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((M + name, tuple(sorted(labels.items()))), 0.0)


def growth(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a metric moved between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


async def after_outcome(observed: Observed, before: Samples, outcome: str) -> Samples:
    """The first scrape counting one more turn that ended with `outcome` (counted when done)."""

    async def counted() -> bool:
        return growth(before, await observed.metrics(), "turns_total", outcome=outcome) > 0

    await eventually(counted)
    return await observed.metrics()


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


# --- /metrics ------------------------------------------------------------------------------


@asyncio_test
async def test_metrics_count_a_turn_that_came_with_audio(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    """The forum replay: answered as audio although text-only, cut by the content filter."""
    before = await observed.metrics()
    sim.scenario = Scenario(mode="forum_replay")
    ha = HomeAssistant(observed.server.uri)
    transcript, _ = await ha.stt(tone(1.5), language="ja")
    assert transcript.text == FORUM_TRANSCRIPT
    await ha.converse(transcript.text, conversation_id=uuid.uuid4().hex)
    after = await after_outcome(observed, before, "incomplete")
    dropped = growth(before, after, "audio_deltas_dropped_total")
    assert dropped == 23, "the forum log's 23 audio deltas"
    assert growth(before, after, "turns_total", outcome="completed") == 0
    assert growth(before, after, "first_text_seconds_count") == 1
    assert value(after, "first_text_seconds_bucket", le="+Inf") >= 1
    assert value(after, "upstream_healthy") == 1
    assert value(after, "connections", kind="client") == 0, "both HA connections are closed"
    # The page's model has the same turn: heard, answered, and its dropped audio.
    _, body = await observed.get("/api/activity")
    turn = [t for t in json.loads(body)["turns"] if t["transcript"] == FORUM_TRANSCRIPT][-1]
    assert turn["status"] == "incomplete" and turn["reason"] == "content_filter"
    assert turn["dropped"] == 23 and turn["answer"]


@asyncio_test
async def test_tokens_are_counted_by_kind_and_each_turn_shows_its_cost(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    """response.done's usage: /metrics by kind, the page per turn with its estimated cost."""
    before = await observed.metrics()
    said = unique("How far away is the moon")
    sim.scenario = Scenario(reply="About 384,000 km.")
    ha = HomeAssistant(observed.server.uri)
    await ha.converse(said, conversation_id=uuid.uuid4().hex)
    after = await after_outcome(observed, before, "completed")
    billed = {
        kind: growth(before, after, "tokens_total", kind=kind)
        for kind in ("input_text", "input_audio", "output_text", "output_audio")
    }
    connection = sim.connections[-1]
    (done,) = [e for e in connection.sent if e["type"] == "response.done"][-1:]
    usage = done["response"]["usage"]
    assert billed["output_text"] == usage["output_token_details"]["text_tokens"] > 0
    assert billed["input_text"] == usage["input_token_details"]["text_tokens"] > 0
    assert billed["output_audio"] == 0 and billed["input_audio"] == 0  # typed, text only
    _, body = await observed.get("/api/activity")
    (turn,) = [t for t in json.loads(body)["turns"] if t["transcript"] == said]
    shown = turn["usage"]
    assert (shown["input"], shown["output"]) == (billed["input_text"], billed["output_text"])
    # gpt-realtime-2.1-mini's list prices: $0.60 per 1M text tokens in, $2.40 out.
    expected = (billed["input_text"] * 0.60 + billed["output_text"] * 2.40) / 1e6
    assert shown["cost"] == pytest.approx(expected)


@asyncio_test
async def test_metrics_count_a_fallback_and_the_error_code(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    before = await observed.metrics()
    sim.scenario = Scenario(error_code="server_error")
    handled, _ = await HomeAssistant(observed.server.uri).converse(unique("fault"))
    assert handled.text == FALLBACK
    after = await after_outcome(observed, before, "fallback")
    errors = growth(before, after, "upstream_errors_total", code="server_error")
    assert errors >= 1, "each server_error event counts (retries included)"
    assert value(after, "upstream_healthy") == 0
    assert value(after, "realtime_sessions") >= 0


@asyncio_test
async def test_connections_and_sessions_are_gauges(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    counting = "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve."
    sim.scenario = Scenario(reply=counting, delta_delay=0.2)  # about 1.5 s of streaming
    ha = HomeAssistant(observed.server.uri)
    answering = asyncio.create_task(ha.converse(unique("count me")))

    async def busy() -> bool:
        now = await observed.metrics()
        return value(now, "connections", kind="client") == 1 and value(now, "realtime_sessions") > 0

    await eventually(busy)
    await answering

    async def idle() -> bool:
        return value(await observed.metrics(), "connections", kind="client") == 0

    await eventually(idle)


# --- /healthz ------------------------------------------------------------------------------


@asyncio_test
async def test_healthz_is_503_after_an_upstream_failure_and_200_after_a_success(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    ha = HomeAssistant(observed.server.uri)
    sim.scenario = Scenario(reply="All good.")
    assert (await ha.converse(unique("hello")))[0].text == "All good."
    status, health = await observed.health()
    assert status == 200 and health["healthy"] is True and health["last_ok"]

    before = await observed.metrics()
    sim.scenario = Scenario(reject_handshake=503)
    assert (await ha.converse(unique("are you down")))[0].text == FALLBACK
    await eventually(lambda: _status_is(observed, 503))
    _, health = await observed.health()
    assert health["healthy"] is False
    assert health["last_error"]["code"] == "http_503"
    assert "HTTP 503" in health["last_error"]["message"] and health["last_error"]["at"]
    after = await observed.metrics()
    assert growth(before, after, "upstream_errors_total", code="http_503") > 0

    sim.scenario = Scenario(reply="Back again.")
    assert (await ha.converse(unique("back")))[0].text == "Back again."
    await eventually(lambda: _status_is(observed, 200))
    _, health = await observed.health()
    assert health["last_error"]["code"] == "http_503", "the last error is still told"


async def _status_is(observed: Observed, status: int) -> bool:
    return (await observed.health())[0] == status


@asyncio_test
async def test_nothing_served_holds_the_key(sim: RealtimeSimulator, observed: Observed) -> None:
    sim.scenario = Scenario(reject_handshake=401)
    handled, _ = await HomeAssistant(observed.server.uri).converse(unique("my key"))
    assert "API key" in handled.text
    await eventually(lambda: _status_is(observed, 503))
    bodies = [(await observed.get(path))[1] for path in ("/", "/healthz", "/metrics")]
    bodies.append((await observed.get("/api/activity"))[1])
    async with aiohttp.ClientSession() as session, session.get(observed.url + "/events") as events:
        bodies.append((await events.content.readuntil(b"\n\n")).decode())
    assert "http_401" in bodies[1], "the failure itself is told"
    assert "snapshot" in bodies[-1]
    for body in bodies:
        assert SECRET_KEY not in body and SECRET_KEY[-8:] not in body
    sim.scenario = Scenario()


# --- logs ----------------------------------------------------------------------------------


@asyncio_test
async def test_the_page_and_the_log_say_who_ended_the_speech(
    sim: RealtimeSimulator, observed: Observed
) -> None:
    """HA 2026 streaming the words and its VAD's silence: the API's turn detection ended the
    turn, and the page and the turn's JSON log line say so (how a user tunes eagerness)."""
    said = unique("What is the weather like")
    sim.scenario = Scenario(transcript=said, reply="Sunny all day.")
    ha = HomeAssistant(observed.server.uri, version=(2026, 11))
    await ha.stt(speech("kitchen") + bytes(16000 * 2 * 13 // 10))
    assert ha.audio_stopped_at is None
    await ha.ask(said, uuid.uuid4().hex)

    def logged() -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in observed.server.log().splitlines() if line]
        return [e for e in entries if (e.get("turn") or {}).get("transcript") == said]

    async def shown() -> bool:
        _, body = await observed.get("/api/activity")
        turns = [t for t in json.loads(body)["turns"] if t["transcript"] == said]
        return bool(turns) and turns[0]["status"] != "streaming" and bool(logged())

    await eventually(shown)
    _, body = await observed.get("/api/activity")
    (turn,) = [t for t in json.loads(body)["turns"] if t["transcript"] == said]
    assert turn["ended_by"] == "vad"
    assert [e["turn"]["ended_by"] for e in logged()] == ["vad"]


async def test_json_logs_are_one_object_per_line_without_the_key(observed: Observed) -> None:
    lines = observed.server.log().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]  # every line parses
    assert entries and all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
    assert all(e["time"].endswith("+00:00") for e in entries)
    turns = [e for e in entries if "audio deltas dropped" in e["message"]]
    assert any(FORUM_TRANSCRIPT in e["message"] for e in turns), "one line per turn, as before"
    assert any("23 audio deltas dropped" in e["message"] for e in turns)
    # The same facts as fields, for a log collector: whole, not cut at 80 characters.
    forum = [e for e in turns if e["turn"]["transcript"] == FORUM_TRANSCRIPT][-1]
    assert forum["turn"]["audio_deltas_dropped"] == 23 and forum["turn"]["answer"]
    assert f"({forum['turn']['outcome']}" in forum["message"]
    assert all(isinstance(e["turn"]["seconds"], float) and e["turn"]["client"] for e in turns)
    assert any(e["level"] == "WARNING" for e in entries), "the faults above were logged"
    assert SECRET_KEY not in observed.server.log()


def test_the_key_mask_applies_to_json_lines() -> None:
    """The mask is on the handler, so it applies whatever the format: try to log the key."""
    code = (
        "import logging, sys\n"
        "from wyoming_realtime_text import logs\n"
        "from wyoming_realtime_text.__main__ import redact_secret\n"
        "logs.configure(False, 'json')\n"
        "redact_secret(sys.argv[1])\n"
        "logging.getLogger('x').warning('key %s in an argument', sys.argv[1])\n"
        "logging.getLogger('y').error('key ' + sys.argv[1] + ' in the message')\n"
        "turn = {'transcript': 'say ' + sys.argv[1], 'seconds': 1.5}\n"
        "logging.getLogger('z').info('a turn', extra={logs.TURN_FIELDS: turn})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, SECRET_KEY], capture_output=True, text=True, timeout=30
    )
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["message"] for e in entries] == [
        "key *** in an argument",
        "key *** in the message",
        "a turn",
    ]
    assert [e["logger"] for e in entries] == ["x", "y", "z"]
    assert entries[2]["turn"] == {"transcript": "say ***", "seconds": 1.5}
    assert SECRET_KEY not in done.stderr


def test_healthz_masks_the_key_should_a_message_quote_it() -> None:
    health = UpstreamHealth()
    health.unreachable(
        RealtimeError("connect_failed", f"cannot reach wss://x/?api-key={SECRET_KEY}")
    )
    report = health.report(SECRET_KEY)
    assert report["healthy"] is False and report["last_error"]["code"] == "connect_failed"
    assert report["last_error"]["message"] == "cannot reach wss://x/?api-key=***"
    assert health.errors == {"connect_failed": 1}


def test_a_turn_cut_off_by_its_conversations_eviction_says_nothing_of_the_api() -> None:
    health = UpstreamHealth()
    health.turn_ended("completed", None)
    health.turn_ended("fallback", CONVERSATION_CLOSED)  # max_conversations, not the API
    assert health.report("")["healthy"] is True and not health.errors
    health.turn_ended("fallback", "server_error")
    assert health.report("")["healthy"] is False


@asyncio_test
async def test_the_history_is_bounded_per_client_and_overall() -> None:
    settings = parse_settings({"realtime": {"api_key": "sk-test"}})
    activity = Activity()

    async def no_session() -> Any:
        raise AssertionError("never started")

    try:
        for index in range(30):
            turn = Turn(settings, no_session, respond=True, text=f"a{index}")
            activity.track("10.0.0.1:1000", turn)
        assert len(activity.snapshot()["turns"]) == 20, "20 per client"
        dens = [f"satellite Den {n}" for n in range(5)]
        for index in range(20):
            for den in dens:
                activity.track(den, Turn(settings, no_session, respond=True, text=f"{den} {index}"))
        snapshot = activity.snapshot()
        heard = [turn["transcript"] for turn in snapshot["turns"]]
        assert len(heard) == 100, "100 in all: the oldest go first"
        assert heard[0] == "satellite Den 0 0" and heard[-1] == "satellite Den 4 19"
        names = [client["name"] for client in snapshot["clients"]]
        assert names == dens, "a client with no turn and no connection left is dropped"
    finally:
        await activity.close()


@asyncio_test
async def test_a_hub_satellite_is_a_client_with_its_turns(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    """Hub mode: the satellite's link counts as a connection, its turns show under its name."""
    heard = unique("kitchen asks")
    sim.scenario = Scenario(transcript=heard, reply="The oven is off.")
    async with (
        SimulatedTts(streaming=True) as tts,
        SimulatedSatellite(name="Kitchen", audio=tone(1.0)) as kitchen,
    ):
        config = web_config(sim, tts={"uri": tts.uri})
        config["satellites"] = [{"uri": kitchen.uri, "name": "Kitchen"}]
        hub = await start_observed(tmp_path, config)
        try:
            await kitchen.wait_connected(10)
            await eventually(lambda: _gauge_is(hub, "satellite", 1))
            await kitchen.trigger()
            await kitchen.wait_played(15)

            async def answered() -> bool:
                turns = json.loads((await hub.get("/api/activity"))[1])["turns"]
                return any(t["transcript"] == heard and t["status"] == "done" for t in turns)

            await eventually(answered)
            snapshot = json.loads((await hub.get("/api/activity"))[1])
            (turn,) = [t for t in snapshot["turns"] if t["transcript"] == heard]
            assert turn["client"] == "satellite Kitchen" and turn["answer"] == "The oven is off."
            kitchen_client = {"name": "satellite Kitchen", "satellite": True, "connections": 1}
            assert kitchen_client in snapshot["clients"]
            await kitchen.stop()
            await eventually(lambda: _gauge_is(hub, "satellite", 0))
        finally:
            assert await stop_server(hub.server) == 0, hub.server.log()


async def _gauge_is(observed: Observed, kind: str, count: int) -> bool:
    return value(await observed.metrics(), "connections", kind=kind) == count


def test_the_page_asks_for_everything_by_relative_url() -> None:
    """Home Assistant's ingress serves the add-on's page under /api/hassio_ingress/TOKEN/: a
    request for "/events" would miss the add-on, "events" reaches it."""
    page = (Path(live_page.__file__).parent / "live.html").read_text(encoding="utf-8")
    urls = re.findall(r"""(?:EventSource|fetch)\(\s*["'`]([^"'`]*)""", page)
    assert sorted(set(urls)) == ["events", "healthz"]
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']/""", page)


@asyncio_test
async def test_the_page_may_be_framed_by_its_own_origin_only(observed: Observed) -> None:
    """Ingress shows the page in an iframe of Home Assistant's frontend, which is the page's
    own origin there; any other site framing it (clickjacking) stays refused."""
    async with aiohttp.ClientSession() as session, session.get(observed.url + "/") as response:
        policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["frame-ancestors"] == "'self'"
    assert directives["default-src"] == "'none'"


# --- config and start-up -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ({"port": 0}, "web.port must be between 1 and 65535"),
        ({"port": 70000}, "web.port must be between 1 and 65535"),
        ({"port": 10310}, "web.port must differ from the Wyoming port"),
        ({"host": " "}, "web.host must not be empty"),
        ({"enabled": "yes"}, "web.enabled must be true or false"),
        ({"prot": 1}, "did you mean 'web.port'"),
    ],
)
def test_web_settings_are_checked(web: dict[str, Any], message: str) -> None:
    raw = {"realtime": {"api_key": "sk-test"}, "web": web}
    with pytest.raises(ConfigError, match=message):
        parse_settings(raw)


def test_a_disabled_page_needs_no_port() -> None:
    raw = {"realtime": {"api_key": "sk-test"}, "web": {"enabled": False, "port": 0}}
    assert parse_settings(raw).web.enabled is False


@asyncio_test
async def test_a_busy_web_port_leaves_the_assistant_running(
    sim: RealtimeSimulator, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = {"enabled": True, "host": "127.0.0.1", "port": port}
        server = await start_server(tmp_path, server_config(sim.url, "ga", web=web))
        try:
            sim.scenario = Scenario(reply="Still answering.")
            handled, _ = await HomeAssistant(server.uri).converse(unique("page or not"))
        finally:
            assert await stop_server(server) == 0
    assert handled.text == "Still answering."
    assert "No live page: cannot listen on" in server.log()
