"""/api/v1 over HTTP: authentication on every route, the OpenAPI document, and clear JSON errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from scrm.app.webapp import create_app
from scrm.core.runtime import Runtime
from tests.conftest import make_customer


@pytest.fixture
async def client(settings: Settings, catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings, runtime=catalog))) as c:
        yield c


def auth(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token.get()}"}


async def test_every_api_route_requires_the_token(client: TestClient, settings: Settings) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert {
        "/api/v1/orders",
        "/api/v1/orders/{number}",
        "/api/v1/orders/{number}/shipments",
        "/api/v1/orders/{number}/cancel",
        "/api/v1/products/{sku}",
    } <= set(paths)
    checked = 0
    for path, methods in paths.items():
        concrete = path.replace("{number}", "SO100001").replace("{sku}", "WATER-550")
        for method in methods:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
                resp = await client.request(method.upper(), concrete, headers=headers)
                assert resp.status == 401, (method, path, headers)
                assert (await resp.json())["error"]["code"] == "unauthorized"
                checked += 1
    assert checked >= 30


async def test_orders_api_shapes(client: TestClient, settings: Settings, catalog: Runtime) -> None:
    cid = await make_customer(catalog, "wmApi")
    order = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 2), ("COLA-330", 1)], source="api", confirm=True)
    resp = await client.get("/api/v1/orders", params={"customer": "wmApi"}, headers=auth(settings))
    body = await resp.json()
    assert resp.status == 200
    item = body["items"][0]
    assert item["number"] == order.number and item["status"] == "confirmed" and item["total_fen"] == 2 * 3600 + 5280
    assert [(ln["sku"], ln["qty"]) for ln in item["lines"]] == [("WATER-550", 2), ("COLA-330", 1)]
    assert (await (await client.get("/api/v1/orders", params={"customer": "nobody"}, headers=auth(settings))).json()) == {"items": []}
    product = await (await client.get("/api/v1/products/WATER-550", headers=auth(settings))).json()
    assert {k: product[k] for k in ("sku", "on_hand", "allocated", "available")} == {
        "sku": "WATER-550",
        "on_hand": 120,
        "allocated": 2,
        "available": 118,
    }
    resp = await client.post(
        f"/api/v1/orders/{order.number}/shipments",
        json={"carrier": "顺丰", "tracking_no": "SF1", "lines": [{"sku": "WATER-550", "qty": 1}]},
        headers=auth(settings),
    )
    assert resp.status == 201
    shipped = await resp.json()
    assert shipped["order"]["status"] == "partially_shipped" and shipped["shipment"].startswith("SH")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": [{"sku": "NOPE", "qty": 1}]}, 404, "product_not_found"),
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": [{"sku": "WATER-550", "qty": 0}]}, 400, "invalid_input"),
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": [{"sku": "WATER-550", "qty": -3}]}, 400, "invalid_input"),
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": [{"sku": "WATER-550", "qty": 10**12}]}, 400, "invalid_input"),
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": [{"sku": "WATER-550", "qty": "3"}]}, 400, "invalid_input"),
        ("POST", "/api/v1/orders", {"customer": "wmBad", "lines": []}, 400, "invalid_input"),
        ("POST", "/api/v1/orders", {"customer": "wmNobody", "lines": [{"sku": "WATER-550", "qty": 1}]}, 404, "not_found"),
        ("POST", "/api/v1/orders", "not json", 400, "invalid_input"),
        ("POST", "/api/v1/orders", [1, 2], 400, "invalid_input"),
        (
            "POST",
            "/api/v1/orders/{shipped}/shipments",
            {"carrier": "顺丰", "tracking_no": "X", "lines": [{"sku": "WATER-550", "qty": 99}]},
            409,
            "invalid_transition",
        ),
        (
            "POST",
            "/api/v1/orders/{open}/shipments",
            {"carrier": "顺丰", "tracking_no": "X", "lines": [{"sku": "WATER-550", "qty": 99}]},
            400,
            "ship_qty_exceeds_allocated",
        ),
        ("POST", "/api/v1/orders/{open}/shipments", {"tracking_no": "X"}, 400, "invalid_input"),
        ("POST", "/api/v1/orders/{shipped}/cancel", {}, 409, "invalid_transition"),
        ("GET", "/api/v1/orders/SO999999", None, 404, "order_not_found"),
        ("GET", "/api/v1/products/NOPE", None, 404, "not_found"),
        ("GET", "/api/v1/inbound-events?limit=0", None, 400, "invalid_input"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    client: TestClient, settings: Settings, catalog: Runtime, method: str, path: str, body: Any, status: int, code: str
) -> None:
    cid = await make_customer(catalog, "wmBad")
    open_order = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 2)], source="api", confirm=True)
    done = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 1)], source="api", confirm=True)
    await shipments.create_shipment(catalog, done.id, carrier="顺丰", tracking_no="SF0")
    before = await (await client.get("/api/v1/products/WATER-550", headers=auth(settings))).json()
    path = path.replace("{open}", open_order.number).replace("{shipped}", done.number)
    kwargs: dict[str, Any] = {"headers": auth(settings)}
    if isinstance(body, str):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    resp = await client.request(method, path, **kwargs)
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"]["code"] == code and payload["error"]["message"]
    after = await (await client.get("/api/v1/products/WATER-550", headers=auth(settings))).json()
    assert after == before
    assert (await orders.get_order(catalog, open_order.id)).status == "confirmed"


async def test_health_ready_metrics(client: TestClient) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["database"] == "ok"
    metrics = await (await client.get("/metrics")).text()
    assert "scrm_http_requests_total" in metrics and "scrm_outbox_pending" in metrics
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_patch_product_sets_reorder_point(client: TestClient, settings: Settings) -> None:
    resp = await client.patch("/api/v1/products/OIL-5L", json={"reorder_point": 8}, headers=auth(settings))
    assert resp.status == 200 and (await resp.json())["reorder_point"] == 8
    bad = await client.patch("/api/v1/products/OIL-5L", json={"reorder_point": -1}, headers=auth(settings))
    assert bad.status == 400
    unknown = await client.patch("/api/v1/products/OIL-5L", json={"colour": "red"}, headers=auth(settings))
    assert unknown.status == 400 and "colour" in (await unknown.json())["error"]["message"]
