"""Structured logs: one JSON object per line (or plain text for people), extras included, secrets never."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import IO, Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            # UTC with its offset, whatever the machine's zone: log lines from several hosts sort and compare
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a person at a terminal (or a text file): date and time to the millisecond, level, logger, message, then
    the extras as ``key=value`` — the full timestamp, because text logs also end up in files read days later."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [
            f"{key}={value if isinstance(value, str | int | float | bool | None) else repr(value)}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        if not extras:
            return text
        head, sep, tail = text.partition("\n")  # keep a traceback below the extras
        return f"{head}  {' '.join(extras)}{sep}{tail}"


def resolve_format(fmt: str, stream: IO[str]) -> str:
    """``auto`` (the default): readable text when the log stream is a terminal, JSON lines otherwise (files, journald,
    a log shipper); ``json`` and ``text`` force one."""
    if fmt in ("json", "text"):
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if resolve_format(fmt, sys.stderr) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel("WARNING")
    logging.getLogger("jieba").setLevel("WARNING")
