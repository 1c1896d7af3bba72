"""`wyoming-realtime-text ask FILE.wav`: one utterance in, the answer printed as it streams.

A small Wyoming client of our own server: what a screen that shows the answer does, and a
quick way to try a set-up from a terminal. With `--speak OUT.wav` it also asks for the tts
end stage and saves the spoken answer. `ask --text "..."` sends a typed request as Home
Assistant's agent does, and prints the commands the answer asks Home Assistant to run
(nothing runs them here): home control, tried without Home Assistant.

Exit codes, for scripts: 0 an answer; 1 an error (no server, an unreadable file, an `error`
event); 2 a usage error; 3 the server's fallback answer (`handled` marked `fallback`: the
Realtime API failed or refused the key) or `not-handled`. The connection's conversation ends
when `ask` disconnects, so nothing is left open on the server.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
import wave
from pathlib import Path
from typing import TextIO

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.intent import Intent, IntentsStart, IntentsStop
from wyoming.pipeline import PipelineStage, RunPipeline

from .wavfile import WavError, read_wav

SAMPLES_PER_CHUNK = 1024
READ_TIMEOUT = 120.0
EXIT_ANSWER, EXIT_ERROR, EXIT_USAGE, EXIT_FALLBACK = 0, 1, 2, 3
STDIN = "-"


class AskError(Exception):
    """One line for the user; the command exits `exit_code`."""

    exit_code = EXIT_ERROR


class FallbackAnswer(AskError):
    """The answer printed is the server's fallback, not the model's: exit 3."""

    exit_code = EXIT_FALLBACK


def uri_problem(uri: str) -> str | None:
    """Why `uri` names no server `ask` can connect to (a usage error), or None."""
    try:
        AsyncClient.from_uri(uri)  # parses it; connects nothing
    except ValueError as err:
        return str(err)
    return None


def _fallback(event: Event) -> FallbackAnswer | None:
    """A `handled` the server marks as its fallback text, or a `not-handled`."""
    if NotHandled.is_type(event.type):
        return FallbackAnswer("the server did not handle the request (not-handled)")
    if Handled.is_type(event.type) and event.data.get("fallback"):
        reason = event.data.get("fallback_reason")
        because = f" ({reason})" if reason else ""
        return FallbackAnswer(f"the answer is the server's fallback text{because}")
    return None


class _Answer:
    """What came back: printed live, audio kept for the WAV."""

    def __init__(self, out: TextIO, speak: bool) -> None:
        self.out = out
        self.speak = speak
        self.errors: list[str] = []
        self.audio = bytearray()
        self.audio_format: AudioStart | None = None
        self.text_done = False
        self.audio_done = not speak
        self.fallback: FallbackAnswer | None = None

    def take(self, event: Event) -> bool:
        """Handle one event; True when nothing more is expected."""
        if event.type == "transcript":
            print(f"you: {event.data.get('text', '')}", file=self.out, flush=True)
        elif event.type == "handled-start":
            print("assistant: ", end="", file=self.out, flush=True)
        elif event.type == "handled-chunk":
            print(event.data.get("text", ""), end="", file=self.out, flush=True)
        elif Handled.is_type(event.type):
            self.fallback = _fallback(event)
        elif event.type == "handled-stop":
            print(file=self.out, flush=True)
            self.text_done = True
        elif AudioStart.is_type(event.type):
            self.audio_format = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            self.audio += event.payload or b""
        elif AudioStop.is_type(event.type):
            self.audio_done = True
        elif Error.is_type(event.type):
            error = Error.from_event(event)
            self.errors.append(error.text)
            if error.code in ("tts-failed", "tts-not-configured"):
                self.audio_done = True
            else:
                return True
        return self.text_done and self.audio_done


async def ask_text(text: str, uri: str, out: TextIO = sys.stdout) -> None:
    """A typed request as Home Assistant's agent sends it; the answer, and its commands."""
    context = {"conversation_id": f"ask-{uuid.uuid4().hex[:12]}"}
    listed = False
    try:
        async with AsyncClient.from_uri(uri, connect_timeout=5) as client:
            await client.write_event(Transcript(text=text, context=context).event())
            async with asyncio.timeout(READ_TIMEOUT):
                while (event := await client.read_event()) is not None:
                    if Handled.is_type(event.type) or NotHandled.is_type(event.type):
                        print(f"assistant: {event.data.get('text', '')}", file=out, flush=True)
                        if (fallback := _fallback(event)) is not None:
                            raise fallback
                        return
                    if Error.is_type(event.type):
                        raise AskError(Error.from_event(event).text)
                    listed = listed or IntentsStart.is_type(event.type)
                    if Intent.is_type(event.type):
                        _print_intent(Intent.from_event(event), out)
                        if not listed:
                            return
                    if IntentsStop.is_type(event.type):
                        return
    except TimeoutError:
        raise AskError(f"the server at {uri} did not answer in time") from None
    except OSError as err:
        reason = err.strerror or err.__class__.__name__
        raise AskError(f"cannot talk to the server at {uri}: {reason}") from None
    raise AskError("the server closed the connection before the answer was complete")


def _print_intent(intent: Intent, out: TextIO) -> None:
    slots = " ".join(f"{e.name}={e.value}" for e in intent.entities)
    print(f"home: {intent.name} {slots} (for Home Assistant to run)".replace("  ", " "), file=out)
    if intent.text and "{{" in intent.text:  # HA 2026 renders it with the matched entity
        print(f"assistant (a template Home Assistant fills in): {intent.text}", file=out)
    elif intent.text:
        print(f"assistant: {intent.text}", file=out, flush=True)


def load(path: Path) -> list[Event]:
    """The recording (`-`: read from stdin) as audio-start, audio-chunk*, audio-stop."""
    stdin = str(path) == STDIN
    name = "stdin" if stdin else str(path)
    try:
        data = sys.stdin.buffer.read() if stdin else path.read_bytes()
        recording = read_wav(data)
    except OSError as err:
        raise AskError(f"cannot read {name}: {err.strerror or err}") from None
    except WavError as err:
        raise AskError(f"cannot read {name} as a WAV file: {err}") from None
    fmt = {"rate": recording.rate, "width": 2, "channels": 1}
    step = SAMPLES_PER_CHUNK * 2
    pcm = recording.pcm
    chunks = [AudioChunk(audio=pcm[i : i + step], **fmt) for i in range(0, len(pcm), step)]
    return [AudioStart(**fmt).event(), *(c.event() for c in chunks), AudioStop().event()]


async def ask(path: Path, uri: str, speak_to: Path | None, out: TextIO = sys.stdout) -> None:
    """Send the recording as one utterance; print the transcript and the streaming answer."""
    events = load(path)
    answer = _Answer(out, speak=speak_to is not None)
    end_stage = PipelineStage.TTS if speak_to else PipelineStage.HANDLE
    try:
        async with AsyncClient.from_uri(uri, connect_timeout=5) as client:
            await client.write_event(RunPipeline(PipelineStage.ASR, end_stage).event())
            for event in events:
                await client.write_event(event)
            async with asyncio.timeout(READ_TIMEOUT):
                while (event := await client.read_event()) is not None:
                    if answer.take(event):
                        break
    except TimeoutError:
        raise AskError(f"the server at {uri} did not answer in time") from None
    except OSError as err:
        reason = err.strerror or err.__class__.__name__
        raise AskError(f"cannot talk to the server at {uri}: {reason}") from None
    if speak_to is not None and answer.audio_format is not None:
        fmt = answer.audio_format
        with wave.open(str(speak_to), "wb") as wav:
            wav.setnchannels(fmt.channels)
            wav.setsampwidth(fmt.width)
            wav.setframerate(fmt.rate)
            wav.writeframes(bytes(answer.audio))
        print(f"(spoken answer saved to {speak_to})", file=out)
    if answer.errors:
        raise AskError("; ".join(answer.errors))
    if not answer.text_done:
        raise AskError("the server closed the connection before the answer was complete")
    if answer.fallback is not None:
        raise answer.fallback
