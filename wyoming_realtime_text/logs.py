"""Log output: Python's logging format, or (`--log-format json`) one JSON object per line.

JSON lines are for log collectors (Loki, Elasticsearch, journald's JSON export): each record
is `{"time", "level", "logger", "message"}`, plus `exception` when there is one, and `turn`
(client, transcript, answer, outcome, reason, seconds, audio_deltas_dropped) on the one line
each voice or agent turn ends with. The record is rendered after the handler's filters have
run, so the API key mask applies to both forms, fields included.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

JSON = "json"
TURN_FIELDS = "turn_fields"  # a record's attribute (logging's `extra`) with a turn's facts


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if (fields := getattr(record, TURN_FIELDS, None)) is not None:
            entry["turn"] = fields
        return json.dumps(entry, ensure_ascii=False)


_FIELD = re.compile(r"%\(([^)]*)\)")
EXAMPLE = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_format(log_format: str) -> None:
    """ValueError, one line naming --log-format, unless every record can be formatted with it.

    Python's logging would report a bad format once per record (a traceback each), or at
    start-up with a traceback; this says what is wrong before anything is logged.
    """
    if log_format == JSON:
        return
    sample = logging.LogRecord("wyoming_realtime_text", logging.INFO, __file__, 1, "hi", None, None)
    fields = set(vars(sample)) | {"message", "asctime"}
    unknown = [name for name in _FIELD.findall(log_format) if name not in fields]
    if unknown:
        raise ValueError(
            f"--log-format: %({unknown[0]})s is not a field of a log record "
            f"(e.g. asctime, levelname, name, message), in {log_format!r}"
        )
    try:
        logging.Formatter(log_format).format(sample)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"--log-format {log_format!r} is not a Python logging format ({err}); "
            f"e.g. {EXAMPLE!r}, or json"
        ) from None


def configure(debug: bool, log_format: str) -> None:
    """Root logging for the server: `log_format` is a logging format string, or "json"."""
    level = logging.DEBUG if debug else logging.INFO
    if log_format == JSON:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format=log_format)
    # websockets logs request headers (the key among them) at DEBUG: never let it.
    logging.getLogger("websockets").setLevel(logging.INFO if debug else logging.WARNING)
