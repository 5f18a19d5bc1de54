"""Prometheus metrics (``/metrics``): one registry per process, or — when ``PROMETHEUS_MULTIPROC_DIR`` is set, as
``run.py serve --workers N`` does before anything imports prometheus_client — every server process's values
kept in files there and combined on each scrape, whichever process answers it."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

registry = CollectorRegistry(auto_describe=True)

http_requests = Counter("scrm_http_requests_total", "HTTP requests served", ["route", "method", "status"], registry=registry)
http_latency = Histogram(
    "scrm_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=registry,
)
callbacks = Counter("scrm_callbacks_total", "Callbacks received by outcome", ["channel", "outcome"], registry=registry)
outbound = Counter("scrm_outbound_messages_total", "Outbound messages by channel and outcome", ["channel", "outcome"], registry=registry)
wecom_api_calls = Counter(
    "scrm_wecom_api_calls_total", "Calls to WeCom/WeChat APIs by path and errcode", ["path", "errcode"], registry=registry
)
# Read from the database on each scrape; with several processes the freshest reading counts, not their sum.
outbox_pending = Gauge("scrm_outbox_pending", "Outbox rows not yet handled", registry=registry, multiprocess_mode="livemax")


def exposition() -> bytes:
    """The text ``/metrics`` serves: this process's metrics, or every server process's combined (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)
    return generate_latest(registry)
