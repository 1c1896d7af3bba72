"""`wyoming-realtime-text ask FILE.wav`: one utterance in, the answer printed as it streams.

A small Wyoming client of our own server: what a screen that shows the answer does, and a
quick way to try a set-up from a terminal. With `--speak OUT.wav` it also asks for the tts
end stage and saves the spoken answer. `ask --text "..."` sends a typed request as Home
Assistant's agent does, and prints the commands the answer asks Home Assistant to run
(nothing runs them here): home control, tried without Home Assistant.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
import wave
from pathlib import Path
from typing import TextIO

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop, wav_to_chunks
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.intent import Intent, IntentsStart, IntentsStop
from wyoming.pipeline import PipelineStage, RunPipeline

SAMPLES_PER_CHUNK = 1024
READ_TIMEOUT = 120.0


class AskError(Exception):
    """One line for the user; the command exits 1."""


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

    def take(self, event: Event) -> bool:
        """Handle one event; True when nothing more is expected."""
        if event.type == "transcript":
            print(f"you: {event.data.get('text', '')}", file=self.out, flush=True)
        elif event.type == "handled-start":
            print("assistant: ", end="", file=self.out, flush=True)
        elif event.type == "handled-chunk":
            print(event.data.get("text", ""), end="", file=self.out, flush=True)
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


async def ask(path: Path, uri: str, speak_to: Path | None, out: TextIO = sys.stdout) -> None:
    """Send the recording as one utterance; print the transcript and the streaming answer."""
    try:
        with wave.open(str(path), "rb") as wav:
            chunks = list(wav_to_chunks(wav, SAMPLES_PER_CHUNK, start_event=True, stop_event=True))
    except (OSError, wave.Error, EOFError) as err:
        raise AskError(f"cannot read {path} as a WAV file: {err}") from None
    answer = _Answer(out, speak=speak_to is not None)
    end_stage = PipelineStage.TTS if speak_to else PipelineStage.HANDLE
    try:
        async with AsyncClient.from_uri(uri, connect_timeout=5) as client:
            await client.write_event(RunPipeline(PipelineStage.ASR, end_stage).event())
            for chunk in chunks:
                await client.write_event(chunk.event())
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
