"""Prometheus metrics for /metrics, in a registry of their own (never the process-global one).

Nothing here runs per audio chunk or per text delta: counters move once per finished turn
(an `Activity.on_end` listener), and the gauges and upstream error counts are read from the
live state only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .activity import Activity, first_text_delay
from .realtime.health import UpstreamHealth
from .turn import UNCLAIMED, Outcome, Turn

PREFIX = "wyoming_realtime_text"
# End of speech to first text: a good turn is a few hundred milliseconds; 30 s is the timeout.
FIRST_TEXT_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
disable_created_metrics()  # a `_created` twin of every counter only doubles what is scraped


TOKEN_KINDS = ("input_text", "input_audio", "input_cached", "output_text", "output_audio")


class Metrics:
    """The server's metrics; `render()` is the /metrics body."""

    def __init__(self, activity: Activity, upstream: UpstreamHealth) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            f"{PREFIX}_turns",
            "Turns by how they ended (completed, incomplete, fallback, cancelled, no_speech; "
            "unclaimed: an answer started for Home Assistant that it never asked for)",
            ["outcome"],
            registry=self.registry,
        )
        for ending in (*(outcome.value for outcome in Outcome), UNCLAIMED):
            self.turns.labels(ending)  # every ending from 0, so rates work at once
        self.audio_deltas_dropped = Counter(
            f"{PREFIX}_audio_deltas_dropped",
            "Audio deltas the Realtime API sent although we asked for text only; all dropped",
            registry=self.registry,
        )
        self.first_text = Histogram(
            f"{PREFIX}_first_text_seconds",
            "Seconds from the end of speech to the first answer text (spoken turns)",
            buckets=FIRST_TEXT_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens the Realtime API billed for turns, by kind (from response.done usage; "
            "output_audio stays 0 while it keeps to text only)",
            ["kind"],
            registry=self.registry,
        )
        for kind in TOKEN_KINDS:
            self.tokens.labels(kind)
        self.registry.register(_LiveState(activity, upstream))
        activity.on_end.append(self.turn_ended)

    def turn_ended(self, turn: Turn) -> None:
        self.turns.labels(turn.ending).inc()
        if dropped := turn.audio_deltas_dropped:
            self.audio_deltas_dropped.inc(dropped)
        if turn.usage is not None:
            for kind, count in zip(TOKEN_KINDS, turn.usage.counts(), strict=True):
                if count:
                    self.tokens.labels(kind).inc(count)
        delay = first_text_delay(turn)
        if delay is not None and turn.typed_text is None:
            self.first_text.observe(delay)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveState(Collector):
    """Gauges and the upstream error counts, read at scrape time."""

    def __init__(self, activity: Activity, upstream: UpstreamHealth) -> None:
        self.activity = activity
        self.upstream = upstream

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            f"{PREFIX}_upstream_errors",
            "Realtime API errors by code: failed session opens (http_*, connect_*), lost "
            "connections (closed), error events, failed responses, timeouts",
            labels=["code"],
        )
        for code, count in sorted(self.upstream.errors.items()):
            errors.add_metric([code], count)
        yield errors
        connections = GaugeMetricFamily(
            f"{PREFIX}_connections",
            "Open connections: kind=client, Wyoming clients here (Home Assistant, direct "
            "clients); kind=satellite, satellites this server connects to (hub mode)",
            labels=["kind"],
        )
        for satellite, count in self.activity.connections.items():
            connections.add_metric(["satellite" if satellite else "client"], count)
        yield connections
        yield GaugeMetricFamily(
            f"{PREFIX}_realtime_sessions",
            "Realtime API sessions open now (warm spares included)",
            value=self.upstream.open_sessions,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_upstream_healthy",
            "1 when the last attempt upstream (a session opened, a turn answered) succeeded",
            value=int(self.upstream.healthy),
        )
