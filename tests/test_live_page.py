"""The live page in a real headless browser (Playwright driving Debian's chromium): the answer
must show up while it still streams, before the client has its handled-stop; transcripts
stay text; an open page does not hold up SIGTERM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness import FALLBACK, HomeAssistant, stop_server, tone
from playwright.async_api import Browser, Page, async_playwright
from web_rig import start_observed, web_config
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

asyncio_test = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert HAVE_CHROMIUM, "install it: apt-get install -y chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


TURN_JS = """said => {
  const item = [...document.querySelectorAll("li.turn")]
    .find(li => li.querySelector(".transcript").textContent === said);
  return item ? {
    status: item.dataset.status,
    label: item.querySelector(".status").textContent,
    answer: item.querySelector(".answer").textContent,
    dropped: item.querySelector(".dropped").textContent,
    client: item.closest("section").querySelector(".name").textContent,
    did: getComputedStyle(item.querySelector(".did")).display === "none"
      ? null : item.querySelector(".commands").textContent,
  } : null;
}"""


async def turn_on_page(page: Page, said: str) -> dict[str, str] | None:
    return await page.evaluate(TURN_JS, said)


async def until_on_page(page: Page, said: str, condition: str) -> None:
    """Wait in the browser until the turn that heard `said` meets `condition` (JS on `t`)."""
    await page.wait_for_function(
        f"said => {{ const t = ({TURN_JS})(said); return t !== null && ({condition}); }}",
        arg=said,
        timeout=10_000,
    )


async def agent_request(uri: str, said: str, stopped: asyncio.Event) -> str:
    """Home Assistant's agent call; `stopped` is set the moment handled-stop arrives."""
    async with AsyncTcpClient.from_uri(uri) as client:
        await client.write_event(Transcript(text=said).event())
        handled = ""
        while (event := await client.read_event()) is not None:
            if event.type == "handled":
                handled = event.data["text"]
            if event.type == "handled-stop":
                stopped.set()
                return handled
    raise AssertionError("the connection closed before handled-stop")


@asyncio_test
async def test_the_page_shows_the_answer_while_it_streams(
    sim: RealtimeSimulator, browser: Browser, tmp_path: Path
) -> None:
    web = await start_observed(tmp_path, web_config(sim, realtime={"response_timeout": 15}))
    page = await browser.new_page(viewport={"width": 420, "height": 860})
    try:
        await page.goto(web.url + "/")
        await page.wait_for_selector("body[data-live='yes']", timeout=10_000)
        ha = HomeAssistant(web.server.uri)
        # Some history, as a screenshot would show it: done, cut short with audio, fallback.
        said = "What's the weather like in Lisbon?"
        sim.scenario = Scenario(transcript=said, reply="Sunny and 24 degrees, light wind.")
        await ha.stt(tone(1.0))
        await ha.converse(said)
        await until_on_page(page, said, "t.status === 'done'")
        cut = "Tell me a long story about the sea"
        story = "Once upon a time a small boat set out from the harbour at dawn, to find whales."
        sim.scenario = Scenario(mode="audio_despite_text", reply=story, cut_after=4)
        await ha.converse(cut)
        await until_on_page(page, cut, "t.status === 'incomplete'")
        assert (await turn_on_page(page, cut))["dropped"] == "4 audio deltas dropped"
        broken = "Turn off the porch light"
        sim.scenario = Scenario(error_code="server_error")
        await ha.converse(broken)
        await until_on_page(page, broken, "t.status === 'fallback'")
        assert (await turn_on_page(page, broken))["did"] is None
        # A command: what was sent to Home Assistant, beside what was said.
        command = "Turn on the kitchen light"
        sim.scenario = Scenario()
        await ha.ask(command)
        await until_on_page(page, command, "t.did === 'HassTurnOn name=kitchen light'")
        assert (await turn_on_page(page, command))["answer"] == "Turned on kitchen light."

        # The answer streams slowly, after a pause (so the turn's first update has no text):
        # the page must show it growing, twice, before the client has its handled-stop.
        asked = "Which plants like shade?"
        answer = (
            "Ferns, hostas and foxgloves do well in shade, and so do wild garlic, hellebores "
            "and lily of the valley."
        )
        sim.scenario = Scenario(reply=answer, first_token_delay=0.4, delta_delay=0.25)
        stopped = asyncio.Event()
        client = asyncio.create_task(agent_request(web.server.uri, asked, stopped))
        seen = [""]
        for _ in range(2):
            await until_on_page(page, asked, f"t.answer.length > {len(seen[-1])}")
            partial = await turn_on_page(page, asked)
            assert not stopped.is_set(), "the page must show the answer before handled-stop"
            assert partial["status"] == "streaming" and partial["label"] == "streaming"
            assert answer.startswith(partial["answer"]) and partial["answer"] != answer
            seen.append(partial["answer"])
        await page.screenshot(path=tmp_path / "streaming.png")
        if os.environ.get("UPDATE_SCREENSHOT"):
            await page.screenshot(path=REPO / "docs" / "screenshot.png")
        assert await client == answer
        await until_on_page(page, asked, "t.status === 'done'")
        done = await turn_on_page(page, asked)
        assert done["answer"] == answer and done["label"] == "done"
        assert done["client"] == "127.0.0.1", "HA's connections are one client, by address"
        assert (await turn_on_page(page, broken))["answer"] == FALLBACK

        # Transcripts are user content: shown as text, never run as markup.
        markup = '<img src=x onerror="document.body.dataset.owned=1"><b>bold</b>'
        sim.scenario = Scenario(reply="Noted.")
        await ha.converse(markup)
        await until_on_page(page, markup, "t.status === 'done'")
        assert (await turn_on_page(page, markup))["answer"] == "Noted."
        assert await page.evaluate("document.querySelectorAll('img, .transcript *').length") == 0
        assert await page.evaluate("document.body.dataset.owned") is None

        # An open page (an event stream that never ends by itself) does not hold up SIGTERM.
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await stop_server(web.server) == 0, web.server.log()
        assert loop.time() - started < 2.0, "0.3 s here; 4 s when the stream holds it up"
        await page.wait_for_selector("body[data-live='no']", timeout=5_000)
        health = await page.text_content("#health")
        assert health is not None and "reachable" not in health and "unknown" in health
        await asyncio.sleep(5.5)  # a health check's tick later, still not "reachable"
        assert "reachable" not in (await page.text_content("#health") or "")
    finally:
        await page.close()
        if web.server.process.returncode is None:
            await stop_server(web.server)
