"""JSON log lines: a timezone-aware UTC timestamp, extras included, secrets masked, exceptions kept."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

from config.settings import Secret
from scrm.core.logs import JsonFormatter, TextFormatter, resolve_format


def line(record: logging.LogRecord) -> dict[str, object]:
    return json.loads(JsonFormatter().format(record))


def test_timestamp_is_aware_utc_and_extras_are_kept_secrets_masked() -> None:
    record = logging.LogRecord("scrm.test", logging.WARNING, __file__, 1, "付款 %s", ("SO100001",), None)
    record.created = dt.datetime(2026, 12, 2, 16, 30, 5, 250000, tzinfo=dt.UTC).timestamp()
    record.msecs = 250.0
    record.order = "SO100001"
    record.token = Secret("wx-secret-value")
    data = line(record)
    assert data["ts"] == "2026-12-02T16:30:05.250+00:00"
    assert dt.datetime.fromisoformat(str(data["ts"])).tzinfo is not None
    assert (data["level"], data["logger"], data["msg"], data["order"]) == ("warning", "scrm.test", "付款 SO100001", "SO100001")
    assert "wx-secret-value" not in json.dumps(data) and data["token"] == "Secret('**********')"


def test_exceptions_are_logged_with_their_traceback() -> None:
    try:
        raise ValueError("坏数据")
    except ValueError:
        import sys

        record = logging.LogRecord("scrm.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    data = line(record)
    assert "ValueError: 坏数据" in str(data["exc"])


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_log_format_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert resolve_format("auto", _Stream(tty=True)) == "text"
    assert resolve_format("auto", _Stream(tty=False)) == "json"
    assert resolve_format("json", _Stream(tty=True)) == "json" and resolve_format("text", _Stream(tty=False)) == "text"


def test_text_lines_keep_the_extras_readable() -> None:
    record = logging.LogRecord("scrm.test", logging.INFO, __file__, 1, "订单已发货", (), None)
    record.order = "SO100001"
    text = TextFormatter().format(record)
    assert "INFO scrm.test: 订单已发货" in text and "order=SO100001" in text and not text.startswith("{")
