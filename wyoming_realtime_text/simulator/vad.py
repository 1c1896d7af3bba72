"""Turn detection (``server_vad`` / ``semantic_vad``) for the simulated Realtime server.

Appended audio (pcm16, 24 kHz mono) is cut into 20 ms frames as it arrives; a frame
is *speech* when its level exceeds the level the session's ``threshold`` maps to.
Time is audio time: bytes received since the session began, never the wall clock,
so a test can push a minute of audio in one event.

Documented behaviour followed here (OpenAI API reference, beta and GA; the
openai-python types ``realtime_audio_input_turn_detection.py``,
``input_audio_buffer_speech_started/stopped_event.py``,
``input_audio_buffer_timeout_triggered.py``):
  * ``speech_started {audio_start_ms, item_id}``: ms from the start of all audio of
    the session, *including* ``prefix_padding_ms``; ``item_id`` is the user item the
    commit will create.
  * ``speech_stopped {audio_end_ms, item_id}``: ms since the session started,
    *including* the silence duration (the end of the silence that ended the turn).
  * Then the server commits the buffer itself (``committed`` + item events +
    transcription, as for a manual commit) and, if ``create_response`` (default
    true), creates a response with the session's settings.
  * ``interrupt_response`` (default true): speech starting cancels a response that
    writes to the default conversation (``response.done`` cancelled, reason
    ``turn_detected``).
  * ``semantic_vad`` ``eagerness``: ``auto`` = ``medium``; ``low``/``medium``/``high``
    have documented MAX timeouts of 8 s / 4 s / 2 s.
  * ``idle_timeout_ms`` (server_vad only): counted from ``response.done`` plus the
    response's audio playback time; when it passes without speech the server sends
    ``input_audio_buffer.timeout_triggered {audio_start_ms, audio_end_ms, item_id}``,
    commits the (silent) audio and creates a response.

Choices where the documentation is silent (simplest plausible behaviour):
  * Level: RMS of a frame relative to full scale, in dB (a full-scale square wave is
    0 dB, a -6 dBFS sine about -9 dB, digital silence -120 dB). Speech when the
    level exceeds ``-50 + 40 * threshold`` dB: threshold 0 -> -50 dB, the default
    0.5 -> -30 dB, 1.0 -> -10 dB. A -6 dBFS tone is speech at every threshold;
    digital silence, faint noise and the near-silent fixtures used elsewhere (about
    -36 dB) are not at the default.
  * One speech frame starts a turn (no minimum speech duration).
  * ``semantic_vad`` cannot judge words here, so it treats every utterance as
    finished and waits a fixed silence per eagerness: high 300 ms, medium/auto
    800 ms, low 1500 ms (well under the documented max timeouts above). Its
    detector uses the server_vad defaults (threshold 0.5, prefix padding 300 ms),
    since threshold/prefix/silence are documented as server_vad-only.
  * The committed audio is the turn: from ``audio_start_ms`` (never before the start
    of the uncommitted buffer) to ``audio_end_ms``; earlier audio is dropped, later
    audio stays in the buffer for the next turn.
  * A manual commit or ``input_audio_buffer.clear`` during speech ends the turn
    silently (no ``speech_stopped``).
  * With ``create_response`` on and a response still running that is not being
    interrupted (``interrupt_response`` false), no new response is created and no
    error is sent (the reference only says it "may fail").
  * The idle timeout always creates a response, whatever ``create_response`` says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import protocol as p

if TYPE_CHECKING:
    from .server import SimConnection

FRAME_MS = 20
FRAME_BYTES = FRAME_MS * p.BYTES_PER_MS
SILENCE_DB = -120.0  # level reported for digital silence
_FRAME_SAMPLES = FRAME_BYTES // 2
# semantic_vad: silence that ends a turn per eagerness (chosen; documented maxima 2/4/8 s).
SEMANTIC_SILENCE_MS = {"high": 300, "medium": 800, "auto": 800, "low": 1500}


def speech_level_db(threshold: float) -> float:
    """The frame level (dB re full scale RMS) above which a frame counts as speech."""
    return -50.0 + 40.0 * min(max(threshold, 0.0), 1.0)


def frame_levels_db(frames: bytes) -> np.ndarray:
    """RMS level in dB of each 20 ms frame of `frames` (a whole number of frames).

    From the exact integer energy of each frame (one einsum rather than square, mean and
    sqrt: the simulator runs this on every append, 50 a second per client).
    """
    samples = np.frombuffer(frames, dtype="<i2").astype(np.int64).reshape(-1, _FRAME_SAMPLES)
    energy = np.einsum("ij,ij->i", samples, samples) / (_FRAME_SAMPLES * 32768.0 * 32768.0)
    return 10.0 * np.log10(np.maximum(energy, 10 ** (SILENCE_DB / 10)))


@dataclass(frozen=True)
class TurnConfig:
    """The session's turn detection, reduced to what the simulation needs."""

    kind: str
    threshold: float
    prefix_padding_ms: int
    silence_ms: int
    create_response: bool
    interrupt_response: bool
    idle_timeout_ms: int | None


def _setting(settings: dict[str, Any], key: str, default: Any) -> Any:
    value = settings.get(key)
    return default if value is None else value


def turn_config(dialect: p.Dialect, session: dict[str, Any]) -> TurnConfig | None:
    """The session's turn detection, or None when it is off (``turn_detection: null``)."""
    if dialect == "beta":
        settings = session.get("turn_detection")
    else:
        settings = session["audio"]["input"].get("turn_detection")
    if not isinstance(settings, dict):
        return None
    kind = _setting(settings, "type", "server_vad")
    create = bool(_setting(settings, "create_response", True))
    interrupt = bool(_setting(settings, "interrupt_response", True))
    defaults = p.VAD_DEFAULTS
    if kind == "semantic_vad":
        silence = SEMANTIC_SILENCE_MS.get(_setting(settings, "eagerness", "auto"), 800)
        return TurnConfig(
            kind,
            defaults["threshold"],
            defaults["prefix_padding_ms"],
            silence,
            create,
            interrupt,
            None,  # idle timeout is documented as server_vad only
        )
    idle = settings.get("idle_timeout_ms")
    return TurnConfig(
        kind,
        float(_setting(settings, "threshold", defaults["threshold"])),
        int(_setting(settings, "prefix_padding_ms", defaults["prefix_padding_ms"])),
        int(_setting(settings, "silence_duration_ms", defaults["silence_duration_ms"])),
        create,
        interrupt,
        int(idle) if idle else None,
    )


@dataclass(frozen=True)
class Decision:
    """What the detector decided at one frame of an appended chunk.

    ``at``: byte offset into the chunk where the frame ends (the buffer must hold the
    chunk up to there before acting). ``start``/``end``: session byte offsets of the
    audio a commit takes (speech_stopped, timeout_triggered).
    """

    kind: str  # speech_started | speech_stopped | timeout_triggered
    at: int
    audio_ms: int
    item_id: str
    start: int = 0
    end: int = 0

    def moved(self, offset: int) -> Decision:
        """This decision with ``at`` made relative to a chunk starting at `offset`."""
        return replace(self, at=self.at - offset)


def _ms(offset: int) -> int:
    return offset // p.BYTES_PER_MS


class Vad:
    """The detector's state for one connection; fed every appended chunk."""

    def __init__(self) -> None:
        self.total = 0  # bytes of input audio received in the session
        self.buffer_start = 0  # session offset where the uncommitted buffer begins
        self.item_id: str | None = None  # set while a turn (speech) is in progress
        self.turn_start = 0  # session offset of the turn's audio (prefix included)
        self.idle_from: int | None = None  # session offset the idle timeout counts from
        self._silence = 0  # bytes of non-speech since the last speech frame
        self._carry = b""  # the incomplete last frame

    def reset(self) -> None:
        """The buffer was committed or cleared by the client: any turn ends here."""
        self.buffer_start = self.total
        self.item_id = None
        self._silence = 0

    def arm_idle(self, playback_bytes: int) -> None:
        """A response ended: the idle timeout counts from after its audio would play."""
        self.idle_from = self.total + playback_bytes

    def feed(self, pcm: bytes, config: TurnConfig | None) -> list[Decision]:
        """Analyse `pcm` (just appended); the decisions come in audio order."""
        data = self._carry + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        base = self.total - len(self._carry)  # session offset of data[0]
        self._carry = data[whole:]
        self.total += len(pcm)
        if config is None:
            self.item_id = None
            return []
        decisions: list[Decision] = []
        speech_db = speech_level_db(config.threshold)
        offset = self.total - len(pcm)  # session offset of pcm[0]
        for i, level in enumerate(frame_levels_db(data[:whole])):
            end = base + (i + 1) * FRAME_BYTES
            decision = self._step(bool(level > speech_db), end, config)
            if decision is not None:
                decisions.append(decision)
        return [d.moved(offset) for d in decisions]

    def _step(self, speech: bool, end: int, config: TurnConfig) -> Decision | None:
        """One frame ending at session offset `end`."""
        bpm = p.BYTES_PER_MS
        if self.item_id is None:
            if speech:
                onset = end - FRAME_BYTES
                padding = config.prefix_padding_ms * bpm
                self.turn_start = max(self.buffer_start, onset - padding)
                self.item_id = p.new_id("item")
                self.idle_from = None
                self._silence = 0
                return Decision("speech_started", end, _ms(self.turn_start), self.item_id)
            idle = config.idle_timeout_ms
            if idle and self.idle_from is not None and end - self.idle_from >= idle * bpm:
                # start: where the idle time began; the commit takes what the buffer has of it
                decision = Decision(
                    "timeout_triggered", end, _ms(end), p.new_id("item"), self.idle_from, end
                )
                self.idle_from = None
                self.buffer_start = end
                return decision
            return None
        self._silence = 0 if speech else self._silence + FRAME_BYTES
        if self._silence < config.silence_ms * bpm:
            return None
        decision = Decision("speech_stopped", end, _ms(end), self.item_id, self.turn_start, end)
        self.item_id = None
        self.buffer_start = end
        return decision


# --- acting on decisions (needs the connection) ------------------------------------------


async def act(conn: SimConnection, decision: Decision, config: TurnConfig) -> None:
    """Send what `decision` means and do what the real server does next."""
    conn.record(conn.vad_events, (decision.kind, decision.audio_ms))
    item_id = decision.item_id
    if decision.kind == "speech_started":
        await conn.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": decision.audio_ms,
                "item_id": item_id,
            }
        )
        run = conn.active_response()
        if config.interrupt_response and run is not None and run.write_conversation:
            run.cancel("turn_detected")
        return
    if decision.kind == "speech_stopped":
        event = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": decision.audio_ms}
    else:
        event = {
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": _ms(decision.start),
            "audio_end_ms": decision.audio_ms,
        }
    await conn.send({**event, "item_id": item_id})
    # The buffer holds the audio up to decision.end; the turn is its tail.
    size = decision.end - decision.start
    pcm = bytes(conn._buffer[-size:]) if size > 0 else b""
    conn._buffer.clear()
    await conn.commit_audio(pcm, item_id)
    if decision.kind == "timeout_triggered" or config.create_response:
        await auto_response(conn)


async def auto_response(conn: SimConnection) -> None:
    """The response a turn end creates, with the SESSION's settings (no overrides)."""
    run = conn.active_response()
    if run is not None:
        if not run.cancel_requested or run.task is None:
            return  # not interrupted: the model keeps answering, no second response
        await asyncio.wait({run.task})  # the interrupted one ends first
    await conn.create_response({})
