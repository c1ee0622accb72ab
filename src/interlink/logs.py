"""Structured logs: one JSON object per line, or one text line with the same fields as
``key=value`` pairs; either way every ``extra`` field is kept."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The ``extra`` fields of ``record``, in the order given."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _text_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=\\' for c in text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <event> key=value key="a value"``: the JSON format's fields,
    for a terminal (values with spaces, quotes or ``=`` are JSON-quoted; empty ones too)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in fields(record).items())
        if not extra:
            return line
        head, sep, trace = line.partition("\n")  # a traceback stays below the line
        return f"{head} {extra}{sep}{trace}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str, fmt: str, redactor: logging.Filter | None = None) -> None:
    """One handler on stderr in ``fmt``; ``redactor`` (:class:`interlink.log_privacy.LogRedactor`,
    the hub's ``[log_privacy]``) rewrites every record before it is formatted."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    if redactor is not None:
        handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
