"""JSON log lines: a timezone-aware UTC timestamp, extras included, secrets masked, exceptions kept."""

from __future__ import annotations

import datetime as dt
import json
import logging

from config.settings import Secret
from scrm.core.logs import JsonFormatter


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
