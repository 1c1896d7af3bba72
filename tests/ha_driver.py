"""Real Home Assistant core, booted headless and driven by JSON lines: run by HA's own Python.

This file runs inside a Home Assistant environment (a venv, or a Debian chroot for
Python 3.14), never in the test process: it imports only the standard library and
`homeassistant`, and nothing of this project. It is the stand-in for a person at HA's UI:

    python ha_driver.py requirements             # what the integrations below need (JSON)
    python ha_driver.py serve WORKDIR            # boot HA; commands on stdin, answers on stdout

`serve` reads WORKDIR/driver.json ({"http_port": N, "wyoming": [[host, port], ...]}), makes
WORKDIR/config a fresh configuration, boots HA core in-process (loopback only, no frontend,
no default integrations: nothing that reaches out), adds each Wyoming service through the
integration's real config flow, points the preferred Assist pipeline at them, then prints
one JSON line {"ready": ...}. Each later stdin line is a command, {"id", "cmd", ...}; each
answer is one line {"id", "ok", "result" | "error"}. Commands: `entities`, `pipeline` (a WAV
through stt → intent → tts), `converse` (a typed turn), `state` and `set_state` (of an
entity), `stop`.

HA's APIs differ between releases: only those present in 2025.4, 2025.12 and 2026.11 are
used (`assist_pipeline.async_pipeline_from_audio_stream`, `async_update_pipeline`,
`conversation.async_converse`, the config-entry flow manager).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import threading
import time
import traceback
import wave
from pathlib import Path
from typing import Any

# Set up from configuration.yaml; their dependencies come along (http, stt, tts, ...).
CONFIGURED = ["assist_pipeline", "conversation", "intent", "input_boolean", "wyoming"]
LANGUAGE = "en"
CHUNK_SECONDS = 0.02  # what the "microphone" hands HA at a time (HA cuts it to 10 ms)
RUN_TIMEOUT = 60.0  # one pipeline run or typed turn, at most


def component_dir(domain: str) -> Path:
    import homeassistant.components

    return Path(homeassistant.components.__file__).parent / domain


def requirements() -> dict[str, Any]:
    """The pip requirements of CONFIGURED and everything they depend on, from the manifests.

    HA itself would pip-install these at first start; here they are installed once, when
    the environment is built, and HA is booted with skip_pip.
    """
    import homeassistant

    seen: set[str] = set()
    todo = ["homeassistant", "http", *CONFIGURED]
    found: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen or not (component_dir(domain) / "manifest.json").exists():
            continue
        seen.add(domain)
        manifest = json.loads((component_dir(domain) / "manifest.json").read_text())
        found.update(manifest.get("requirements", []))
        todo.extend(manifest.get("dependencies", []))
        todo.extend(manifest.get("after_dependencies", []))
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    return {
        "requirements": sorted(found),
        "constraints": str(constraints) if constraints.exists() else None,
        "integrations": sorted(seen),
    }


def configuration_yaml(http_port: int) -> str:
    """Loopback only; one entity HA's own intents can switch ("turn on the kitchen light")."""
    return f"""\
homeassistant:
  name: Wyoming test home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: US
  language: {LANGUAGE}
  internal_url: http://127.0.0.1:{http_port}
http:
  server_host: 127.0.0.1
  server_port: {http_port}
assist_pipeline:
conversation:
intent:
input_boolean:
  kitchen_light:
    name: Kitchen light
logger:
  default: warning
  logs:
    homeassistant.components.wyoming: debug
    homeassistant.components.assist_pipeline: debug
    homeassistant.components.conversation: debug
"""


class Driver:
    """Home Assistant as a person sets it up and uses it, one command at a time."""

    def __init__(self, hass: Any, workdir: Path, http_port: int) -> None:
        self.hass = hass
        self.workdir = workdir
        self.http_port = http_port
        self.entries: list[dict[str, Any]] = []
        self.pipeline_id: str | None = None
        self.device_id: str | None = None

    # -- setup -------------------------------------------------------------------------

    async def add_wyoming(self, host: str, port: int) -> dict[str, Any]:
        """Settings → Add integration → Wyoming Protocol, host and port typed in."""
        flow = self.hass.config_entries.flow
        result = await flow.async_init("wyoming", context={"source": "user"})
        if result.get("type") != "form":
            raise RuntimeError(f"wyoming flow did not show its form: {result}")
        result = await flow.async_configure(result["flow_id"], {"host": host, "port": port})
        if result.get("type") != "create_entry":
            raise RuntimeError(f"wyoming flow for {host}:{port} ended with {result}")
        entry = result["result"]
        await self.hass.async_block_till_done()
        return {"entry_id": entry.entry_id, "title": entry.title, "state": str(entry.state)}

    def wyoming_entities(self) -> list[dict[str, Any]]:
        """The entities the Wyoming entries made, with the languages HA offers for them."""
        from homeassistant.components import conversation, stt, tts
        from homeassistant.helpers import entity_registry as er

        registry = er.async_get(self.hass)
        found: list[dict[str, Any]] = []
        for entry in self.entries:
            for item in er.async_entries_for_config_entry(registry, entry["entry_id"]):
                domain, eid = item.domain, item.entity_id
                languages: Any = None
                if domain == "stt":
                    entity = stt.async_get_speech_to_text_entity(self.hass, eid)
                    languages = entity.supported_languages if entity else None
                elif domain == "conversation":
                    languages = conversation.async_get_conversation_languages(self.hass, eid)
                elif domain == "tts":
                    engine = tts.get_engine_instance(self.hass, eid)
                    languages = engine.supported_languages if engine else None
                if isinstance(languages, set | frozenset | tuple):
                    languages = sorted(languages)
                state = self.hass.states.get(eid)
                found.append(
                    {
                        "entry_id": entry["entry_id"],
                        "entry_title": entry["title"],
                        "entity_id": eid,
                        "domain": domain,
                        "languages": languages,
                        "state": state.state if state else None,
                    }
                )
        return found

    def engine(self, domain: str, title_part: str) -> str:
        for entity in self.wyoming_entities():
            if entity["domain"] == domain and title_part in entity["entry_title"]:
                return entity["entity_id"]
        raise RuntimeError(f"no {domain} entity from a Wyoming entry titled *{title_part}*")

    async def make_pipeline(self, stt_title: str, tts_title: str) -> None:
        """Settings → Voice assistants: our STT and agent, the other entry's TTS."""
        from homeassistant.components import assist_pipeline

        pipeline = assist_pipeline.async_get_pipeline(self.hass)
        self.pipeline_id = pipeline.id
        await self.update_pipeline(
            conversation_engine=self.engine("conversation", stt_title),
            conversation_language=LANGUAGE,
            language=LANGUAGE,
            stt_engine=self.engine("stt", stt_title),
            stt_language=LANGUAGE,
            tts_engine=self.engine("tts", tts_title),
            tts_language=LANGUAGE,
            tts_voice=None,
            prefer_local_intents=False,
        )

    async def update_pipeline(self, **changes: Any) -> dict[str, Any]:
        from homeassistant.components import assist_pipeline

        pipeline = assist_pipeline.async_get_pipeline(self.hass, self.pipeline_id)
        await assist_pipeline.async_update_pipeline(self.hass, pipeline, **changes)
        return assist_pipeline.async_get_pipeline(self.hass, self.pipeline_id).to_json()

    def add_device(self, entry_id: str, name: str) -> str:
        """A device for spoken requests to come from, as a satellite's would (its id is sent)."""
        from homeassistant.helpers import device_registry as dr

        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=entry_id, identifiers={("ha_driver", name)}, name=name
        )
        self.device_id = device.id
        return device.id

    def expose(self, entity_id: str) -> None:
        """Expose to Assist (HA 2026 matches only exposed entities; 2025 ignores it)."""
        from homeassistant.components.homeassistant import exposed_entities

        exposed_entities.async_expose_entity(self.hass, "conversation", entity_id, True)

    # -- commands ----------------------------------------------------------------------

    async def run(self, command: dict[str, Any]) -> Any:
        name = command["cmd"]
        if name == "entities":
            return self.wyoming_entities()
        if name == "pipeline":
            return await asyncio.wait_for(self.pipeline(command), RUN_TIMEOUT)
        if name == "converse":
            return await asyncio.wait_for(self.converse(command), RUN_TIMEOUT)
        if name == "state":
            state = self.hass.states.get(command["entity_id"])
            return state.state if state else None
        if name == "set_state":
            domain = command["entity_id"].split(".")[0]
            service = "turn_on" if command["on"] else "turn_off"
            await self.hass.services.async_call(
                domain, service, {"entity_id": command["entity_id"]}, blocking=True
            )
            return None
        raise ValueError(f"unknown command {name!r}")

    async def pipeline(self, command: dict[str, Any]) -> dict[str, Any]:
        """A WAV spoken to the Assist pipeline (stt → intent → tts), as a satellite streams it.

        The audio goes at the pace it was "recorded", then silence until HA's VAD ends the
        speech and HA stops reading; the events come back with their times since the start.
        """
        from homeassistant.components import assist_pipeline, stt
        from homeassistant.core import Context

        await self.update_pipeline(prefer_local_intents=bool(command.get("prefer_local")))
        speech = await self.hass.async_add_executor_job(read_wav, self.workdir / command["wav"])
        rate, width = 16000, 2
        step = int(rate * CHUNK_SECONDS) * width
        lead = bytes(int(rate * command.get("lead_seconds", 0.3)) * width)
        tail = bytes(int(rate * command.get("tail_seconds", 4.0)) * width)
        audio = lead + speech + tail
        started = time.monotonic()
        events: list[dict[str, Any]] = []
        sent = {"bytes": 0}

        async def microphone() -> Any:
            for offset in range(0, len(audio), step):
                due = started + offset / (rate * width)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                chunk = audio[offset : offset + step]
                sent["bytes"] += len(chunk)
                yield chunk

        def on_event(event: Any) -> None:
            events.append(
                {
                    "type": str(event.type),
                    "data": _jsonable(event.data),
                    "t": round(time.monotonic() - started, 3),
                }
            )

        metadata = stt.SpeechMetadata(
            language=LANGUAGE,
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
            channel=stt.AudioChannels.CHANNEL_MONO,
        )
        await assist_pipeline.async_pipeline_from_audio_stream(
            self.hass,
            context=Context(),
            event_callback=on_event,
            stt_metadata=metadata,
            stt_stream=microphone(),
            pipeline_id=self.pipeline_id,
            conversation_id=command.get("conversation_id"),
            device_id=self.device_id if command.get("from_device") else None,
            # WAV as the TTS makes it: no conversion, so no ffmpeg (not installed here).
            tts_audio_output={"preferred_format": "wav"},
        )
        result: dict[str, Any] = {
            "events": events,
            "speech_end": round((len(lead) + len(speech)) / (rate * width), 3),
            "audio_seconds": round(len(audio) / (rate * width), 3),
            "audio_sent_seconds": round(sent["bytes"] / (rate * width), 3),
            "elapsed": round(time.monotonic() - started, 3),
        }
        tts_end = next((e for e in events if e["type"] == "tts-end"), None)
        if tts_end is not None:
            result["tts_audio"] = await self.fetch_tts(tts_end["data"]["tts_output"])
        return result

    async def fetch_tts(self, output: dict[str, Any]) -> dict[str, Any]:
        """The spoken answer, fetched from HA's URL as a satellite or browser would."""
        import aiohttp

        url = output["url"]
        if url.startswith("/"):
            url = f"http://127.0.0.1:{self.http_port}{url}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.read()
            fetched: dict[str, Any] = {
                "status": response.status,
                "content_type": response.headers.get("Content-Type"),
                "bytes": len(body),
            }
        if body[:4] == b"RIFF" and b"data" in body[:200]:
            with wave.open(io.BytesIO(body), "rb") as wav:
                frame = wav.getsampwidth() * wav.getnchannels()
                fetched["wav"] = {
                    "rate": wav.getframerate(),
                    "width": wav.getsampwidth(),
                    "channels": wav.getnchannels(),
                    # A streamed WAV's header says 0 frames: count what came after it.
                    "frames": (len(body) - body.index(b"data") - 8) // frame,
                }
        return fetched

    async def converse(self, command: dict[str, Any]) -> dict[str, Any]:
        """A typed turn, as the Assist dialog's text box hands it to the agent."""
        from homeassistant.components import conversation
        from homeassistant.core import Context

        agent = command.get("agent") or self.engine("conversation", command["agent_title"])
        started = time.monotonic()
        result = await conversation.async_converse(
            self.hass,
            command["text"],
            command.get("conversation_id"),
            Context(),
            language=LANGUAGE,
            agent_id=agent,
        )
        response = result.response
        return {
            "speech": (response.speech.get("plain") or {}).get("speech"),
            "response_type": str(response.response_type),
            "conversation_id": result.conversation_id,
            "agent": agent,
            "elapsed": round(time.monotonic() - started, 3),
        }


def read_wav(path: Path) -> bytes:
    """The PCM of a 16 kHz 16-bit mono WAV: the format HA's pipeline takes from a satellite."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
        if shape != (16000, 2, 1):
            raise ValueError(f"{path.name}: {shape}, not 16000 Hz, 2 bytes, 1 channel")
        return wav.readframes(wav.getnframes())


def _jsonable(value: Any) -> Any:
    """Pipeline event data as JSON (HA puts enums, dataclasses and datetimes in it)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "to_json"):
        return value.to_json()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


class Commands:
    """stdin lines → an asyncio queue (a thread: stdin is a pipe; HA owns the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.loop = loop
        threading.Thread(target=self._read, daemon=True, name="driver-stdin").start()

    def _read(self) -> None:
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


async def serve(workdir: Path, out: Any) -> int:
    """Boot, set up, answer commands until `stop` (or stdin closes), shut HA down."""
    from homeassistant import bootstrap
    from homeassistant.const import __version__
    from homeassistant.runner import RuntimeConfig

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    settings = json.loads((workdir / "driver.json").read_text())
    config_dir = workdir / "config"
    (config_dir / "configuration.yaml").write_text(configuration_yaml(settings["http_port"]))
    # Headless: none of the integrations a default install sets up (frontend, cloud,
    # backup, analytics, ...) and so no reason for recovery mode when they are absent.
    bootstrap.DEFAULT_INTEGRATIONS = set()
    bootstrap.CRITICAL_INTEGRATIONS = set()
    started = time.monotonic()
    runtime = RuntimeConfig(
        config_dir=str(config_dir),
        skip_pip=True,
        log_file=str(workdir / "home-assistant.log"),
        log_no_color=True,
    )
    hass = await bootstrap.async_setup_hass(runtime)
    if hass is None:
        say({"ready": False, "error": "bootstrap.async_setup_hass returned None"})
        return 1
    commands = Commands(asyncio.get_running_loop())
    driver = Driver(hass, workdir, settings["http_port"])
    try:
        await hass.async_start()
        booted = time.monotonic() - started
        for host, port in settings["wyoming"]:
            driver.entries.append(await driver.add_wyoming(host, port))
        await driver.make_pipeline(settings["agent_title"], settings["tts_title"])
        driver.expose("input_boolean.kitchen_light")
        device_id = driver.add_device(driver.entries[-1]["entry_id"], "Kitchen speaker")
        say(
            {
                "ready": True,
                "version": __version__,
                "python": sys.version.split()[0],
                "boot_seconds": round(booted, 3),
                "setup_seconds": round(time.monotonic() - started, 3),
                "entries": driver.entries,
                "device_id": device_id,
                "pipeline": await driver.update_pipeline(),
                "components": sorted(hass.config.components),
            }
        )
    except Exception:
        say({"ready": False, "error": traceback.format_exc()})
        await hass.async_stop()
        return 1
    while (line := await commands.queue.get()) is not None:
        command = json.loads(line)
        if command.get("cmd") == "stop":
            say({"id": command.get("id"), "ok": True, "result": None})
            break
        try:
            say({"id": command.get("id"), "ok": True, "result": await driver.run(command)})
        except Exception:
            say({"id": command.get("id"), "ok": False, "error": traceback.format_exc()})
    await hass.async_stop()
    return 0


def main() -> int:
    if sys.argv[1:2] == ["requirements"]:
        print(json.dumps(requirements()))
        return 0
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print(__doc__, file=sys.stderr)
        return 2
    # The command channel is a private copy of stdout; whatever HA prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    from homeassistant import runner

    workdir = Path(sys.argv[2])
    (workdir / "config").mkdir(exist_ok=True)

    async def setup_and_run(_: Any) -> int:
        return await serve(workdir, out)

    # HA's own runner makes the event loop and executor as `hass` does; only what runs in
    # it is ours.
    runner.setup_and_run_hass = setup_and_run
    return runner.run(runner.RuntimeConfig(config_dir=str(workdir / "config")))


if __name__ == "__main__":
    sys.exit(main())
