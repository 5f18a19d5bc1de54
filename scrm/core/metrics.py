"""Prometheus metrics, one registry per process (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
outbox_pending = Gauge("scrm_outbox_pending", "Outbox rows not yet handled", registry=registry)
