"""Replenishment: pure suggestion/receipt rules with plain values, then purchase → receipt → backorder release
against real SQLite and PostgreSQL, and the API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.catalog import services as catalog_services
from fulfillment.catalog.domain import ProductNotFound
from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_movements
from fulfillment.orders import services as orders
from fulfillment.purchasing import domain as d
from fulfillment.purchasing import domain as ps_domain
from fulfillment.purchasing import services as ps
from fulfillment.purchasing import web as purchasing_web
from fulfillment.purchasing.models import PurchaseStatus as P
from fulfillment.purchasing.models import purchase_order_lines, purchase_receipts
from scrm.app.webapp import create_app
from scrm.core.clock import FrozenClock
from scrm.core.errors import InvalidInput
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from tests.conftest import make_customer


# ---- pure rules -------------------------------------------------------------------------------------------
def test_suggested_qty_examples() -> None:
    q = d.suggested_qty
    assert q(available=4, on_order=0, backordered=0, reorder_point=10, reorder_qty=None) == 16  # up to twice the point
    assert q(available=4, on_order=0, backordered=0, reorder_point=10, reorder_qty=30) == 26
    assert q(available=4, on_order=6, backordered=0, reorder_point=10, reorder_qty=None) == 10  # on order counts
    assert q(available=11, on_order=0, backordered=0, reorder_point=10, reorder_qty=None) == 0  # above the point
    assert q(available=10, on_order=0, backordered=0, reorder_point=10, reorder_qty=None) == 10  # at the point
    assert q(available=0, on_order=0, backordered=5, reorder_point=None, reorder_qty=None) == 5  # waiting customers
    assert q(available=0, on_order=5, backordered=5, reorder_point=None, reorder_qty=None) == 0  # already coming
    assert q(available=50, on_order=0, backordered=3, reorder_point=10, reorder_qty=None) == 0  # stock is there
    assert q(available=0, on_order=0, backordered=0, reorder_point=0, reorder_qty=None) == 0  # never ≤ 0
    assert q(available=0, on_order=0, backordered=0, reorder_point=None, reorder_qty=None) == 0


@given(
    available=st.integers(0, 1000),
    on_order=st.integers(0, 1000),
    backordered=st.integers(0, 1000),
    reorder_point=st.none() | st.integers(0, 500),
    reorder_qty=st.none() | st.integers(1, 2000),
)
def test_suggestion_fills_up_to_the_target(
    available: int, on_order: int, backordered: int, reorder_point: int | None, reorder_qty: int | None
) -> None:
    qty = d.suggested_qty(
        available=available, on_order=on_order, backordered=backordered, reorder_point=reorder_point, reorder_qty=reorder_qty
    )
    assert qty >= 0
    batch = reorder_qty or 2 * (reorder_point or 0)
    if qty:
        assert available + on_order + qty == backordered + batch
        assert d.needs_reorder(available=available, on_order=on_order, backordered=backordered, reorder_point=reorder_point)


def test_grouping_puts_unassigned_last() -> None:
    def pos(sku: str, supplier: int | None) -> d.StockPosition:
        return d.StockPosition(1, sku, sku, "箱", 0, 0, 1, None, None, supplier, 100)

    groups = d.group_by_supplier(d.suggest([pos("B", None), pos("A", 7), pos("C", 2), pos("D", 7)]))
    assert [(k, [s.sku for s in v]) for k, v in groups.items()] == [(2, ["C"]), (7, ["A", "D"]), (None, ["B"])]


def test_validate_receipt() -> None:
    outstanding = {"A": 5, "B": 0, "C": 2}
    assert d.validate_receipt(outstanding, None) == {"A": 5, "C": 2}
    assert d.validate_receipt(outstanding, [("A", 2), ("A", 1)]) == {"A": 3}
    with pytest.raises(d.ReceiptExceedsOrdered):
        d.validate_receipt(outstanding, [("A", 4), ("A", 2)])
    with pytest.raises(d.ReceiptExceedsOrdered):
        d.validate_receipt(outstanding, [("B", 1)])
    with pytest.raises(InvalidInput):
        d.validate_receipt(outstanding, [("Z", 1)])
    with pytest.raises(InvalidInput):
        d.validate_receipt(outstanding, [("A", 0)])
    with pytest.raises(d.NothingToReceive):
        d.validate_receipt({"A": 0}, None)
    with pytest.raises(InvalidInput):
        d.validate_reference("  ")
    assert d.status_after_receipt([(5, 5), (2, 1)]) == P.PARTIALLY_RECEIVED
    assert d.status_after_receipt([(5, 5), (2, 2)]) == P.RECEIVED


# ---- against the databases --------------------------------------------------------------------------------
async def pid(rt: Runtime, sku: str) -> int:
    async with rt.db.read() as conn:
        return int((await conn.execute(sa.select(products.c.id).where(products.c.sku == sku))).scalar_one())


async def level(rt: Runtime, sku: str) -> inventory.Level:
    async with rt.db.read() as conn:
        return await inventory.level(conn, rt.db.dialect, await pid(rt, sku))


async def set_stock(rt: Runtime, sku: str, qty: int) -> None:
    product_id = await pid(rt, sku)
    async with rt.db.write() as conn:
        wh = await inventory.default_warehouse(conn, rt.db.dialect)
        await inventory.set_on_hand(conn, rt.db.dialect, product_id, wh, qty, rt.clock.now())


async def filled_notices(rt: Runtime) -> list[dict]:
    async with rt.db.read() as conn:
        rows = await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == "order.backorder_filled").order_by(outbox.c.id))
        return [r.payload for r in rows]


async def snapshot(rt: Runtime, number: str) -> tuple:
    """Everything a refused receipt must leave alone."""
    order = await ps.get_purchase_order(rt, number)
    async with rt.db.read() as conn:
        moves = (await conn.execute(sa.select(sa.func.count()).select_from(stock_movements))).scalar_one()
        receipts = (await conn.execute(sa.select(sa.func.count()).select_from(purchase_receipts))).scalar_one()
        costs = [r.cost_fen for r in await conn.execute(sa.select(products.c.cost_fen).order_by(products.c.id))]
    levels = [await level(rt, ln.sku) for ln in order.lines]
    return order.status, order.version, [(ln.sku, ln.received_qty) for ln in order.lines], moves, receipts, costs, levels


async def no_drift(rt: Runtime) -> None:
    async with rt.db.read() as conn:
        assert await inventory.reconcile(conn) == []


async def test_purchase_partial_receipt_releases_backorders_oldest_first(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    await set_stock(rt, "OIL-5L", 0)
    waiting = []
    for who, qty in (("wmOld", 3), ("wmMid", 2), ("wmNew", 4)):
        cid = await make_customer(rt, who)
        waiting.append(await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", qty)], source="api", confirm=True))
        clock.advance(minutes=5)
    supplier = await ps.create_supplier(rt, name="粮油批发<总店>", contact="王经理", phone="13800000000", lead_time_days=2)
    draft = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("OIL-5L", 10, 9000), ("RICE-5KG", 5, 3500)])
    assert draft.number == "PO100001" and draft.status == P.DRAFT and draft.total_fen == 10 * 9000 + 5 * 3500
    with pytest.raises(d.InvalidPurchaseTransition):  # a draft cannot be received
        await ps.receive_purchase(rt, draft.number, reference="DN-0")
    placed = await ps.place_purchase_order(rt, draft.number)
    assert placed.status == P.ORDERED and placed.expected_on is not None
    assert (await ps.place_purchase_order(rt, draft.number)).version == placed.version  # placing twice changes nothing

    first = await ps.receive_purchase(rt, draft.number, [("OIL-5L", 4)], reference="DN-1", actor="仓库小李")
    assert first.received == {"OIL-5L": 4} and not first.duplicate
    assert first.backorders_filled == {"OIL-5L": 4}
    assert first.order.status == P.PARTIALLY_RECEIVED
    got = [await orders.get_order(rt, o.id) for o in waiting]
    assert [o.lines[0].allocated_qty for o in got] == [3, 1, 0]  # oldest first: 3 to the first, 1 to the second
    notices = await filled_notices(rt)
    assert [n["order_id"] for n in notices] == [waiting[0].id, waiting[1].id]
    assert [n["lines"][0]["qty"] for n in notices] == [3, 1]
    assert await level(rt, "OIL-5L") == inventory.Level(4, 4)
    async with rt.db.read() as conn:
        cost = (await conn.execute(sa.select(products.c.cost_fen).where(products.c.sku == "OIL-5L"))).scalar_one()
        refs = [r.reference for r in await conn.execute(sa.select(stock_movements.c.reference).where(stock_movements.c.kind == "receipt"))]
    assert cost == 9000 and refs == ["PO100001 DN-1"]

    before = await snapshot(rt, draft.number)
    again = await ps.receive_purchase(rt, draft.number, [("OIL-5L", 4)], reference="DN-1")
    assert again.duplicate and again.received == {} and again.backorders_filled == {}
    assert await snapshot(rt, draft.number) == before and len(await filled_notices(rt)) == 2

    full = await ps.receive_purchase(rt, draft.number, reference="DN-2")
    assert full.received == {"OIL-5L": 6, "RICE-5KG": 5}
    assert full.order.status == P.RECEIVED and full.order.closed_at is not None
    got = [await orders.get_order(rt, o.id) for o in waiting]
    assert [o.lines[0].allocated_qty for o in got] == [3, 2, 4]
    assert [n["order_id"] for n in await filled_notices(rt)] == [waiting[0].id, waiting[1].id, waiting[1].id, waiting[2].id]
    assert await level(rt, "OIL-5L") == inventory.Level(10, 9)
    assert await level(rt, "RICE-5KG") == inventory.Level(35, 0)
    with pytest.raises(d.InvalidPurchaseTransition):  # everything arrived: a new delivery note is refused
        await ps.receive_purchase(rt, draft.number, reference="DN-3")
    with pytest.raises(d.PurchaseHasReceipts):
        await ps.cancel_purchase_order(rt, draft.number)
    await no_drift(rt)

    from fulfillment.orders import notices

    text = notices.render(
        "backorder_filled", number=got[0].number, lines=notices.format_lines(notices_lines := (await filled_notices(rt))[0]["lines"])
    )
    assert got[0].number in text and notices_lines[0]["name"] in text


async def test_bad_receipts_and_cancellation_change_nothing(catalog: Runtime) -> None:
    rt = catalog
    supplier = await ps.create_supplier(rt, name="日化供应商")
    order = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("TISSUE-3", 10, 1800)])
    await ps.place_purchase_order(rt, order.number)
    await ps.receive_purchase(rt, order.number, [("TISSUE-3", 3)], reference="DN-A")
    before = await snapshot(rt, order.number)
    with pytest.raises(d.ReceiptExceedsOrdered):
        await ps.receive_purchase(rt, order.number, [("TISSUE-3", 8)], reference="DN-B")
    with pytest.raises(InvalidInput):
        await ps.receive_purchase(rt, order.number, [("COLA-330", 1)], reference="DN-B")
    with pytest.raises(InvalidInput):
        await ps.receive_purchase(rt, order.number, [("TISSUE-3", 1)], reference="")
    with pytest.raises(d.PurchaseHasReceipts):
        await ps.cancel_purchase_order(rt, order.number, reason="供应商缺货")
    with pytest.raises(d.PurchaseNotFound):
        await ps.receive_purchase(rt, "PO999999", reference="DN-B")
    assert await snapshot(rt, order.number) == before

    other = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("TISSUE-3", 5, 0)])
    with pytest.raises(d.PurchaseCostMissing):
        await ps.place_purchase_order(rt, other.number)
    other = await ps.set_draft_lines(rt, other.number, [("TISSUE-3", 6, 1750)])
    await ps.place_purchase_order(rt, other.number)
    cancelled = await ps.cancel_purchase_order(rt, other.number, reason="改单")
    assert cancelled.status == P.CANCELLED and "改单" in cancelled.note
    assert (await ps.cancel_purchase_order(rt, other.number)).version == cancelled.version
    with pytest.raises(d.InvalidPurchaseTransition):
        await ps.receive_purchase(rt, other.number, reference="DN-C")

    with pytest.raises(ProductNotFound):
        await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("NOPE", 1, 100)])
    with pytest.raises(InvalidInput):
        await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("TISSUE-3", 0, 100)])
    with pytest.raises(d.DuplicateSupplier):
        await ps.create_supplier(rt, name="日化供应商")
    await ps.deactivate_supplier(rt, supplier.id)
    with pytest.raises(d.SupplierInactive):
        await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("TISSUE-3", 1, 100)])
    updated = await ps.update_supplier(rt, supplier.id, active=True, phone="021-1234", lead_time_days=7)
    assert updated.active and updated.phone == "021-1234" and updated.lead_time_days == 7
    with pytest.raises(InvalidInput):
        await ps.update_supplier(rt, supplier.id, lead_time_days=-1)
    await no_drift(rt)


async def test_suggestions_from_the_database(catalog: Runtime) -> None:
    rt = catalog
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await catalog_services.update_product(conn, "WATER-550", now, reorder_point=130)  # 120 ≤ 130 → up to 260
        await catalog_services.update_product(conn, "RICE-5KG", now, reorder_point=5)  # plenty
        await catalog_services.update_product(conn, "COLA-330", now, reorder_point=50)
        await catalog_services.update_product(conn, "TISSUE-3", now, reorder_point=95)
        await conn.execute(products.update().where(products.c.sku == "TISSUE-3").values(reorder_qty=200))
    s1 = await ps.create_supplier(rt, name="饮料厂")
    s2 = await ps.create_supplier(rt, name="纸品厂")
    cola = await ps.create_purchase_order(rt, supplier_id=s1.id, lines=[("COLA-330", 30, 4000)])  # 40 + 30 on order > 50
    tissue = await ps.create_purchase_order(rt, supplier_id=s2.id, lines=[("TISSUE-3", 10, 1600)])
    await ps.place_purchase_order(rt, tissue.number)
    await ps.receive_purchase(rt, tissue.number, reference="DN-T")  # TISSUE: 90 available, last bought from s2
    await set_stock(rt, "OIL-5L", 10)
    cid = await make_customer(rt, "wmSuggest")
    await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 12)], source="api", confirm=True)  # 2 backordered

    groups = await ps.suggest_purchases(rt)
    got = [(g.supplier.name if g.supplier else None, [(s.sku, s.qty) for s in g.suggestions]) for g in groups]
    assert got == [("纸品厂", [("TISSUE-3", 110)]), (None, [("OIL-5L", 2), ("WATER-550", 140)])]
    assert groups[0].suggestions[0].position.unit_cost_fen == 1600 and groups[0].total_fen == 110 * 1600
    assert cola.status == P.DRAFT

    draft = await ps.draft_from_suggestions(rt, supplier_id=s2.id)
    assert [(ln.sku, ln.qty, ln.unit_cost_fen) for ln in draft.lines] == [("TISSUE-3", 110, 1600)]
    with pytest.raises(d.NothingToPurchase):  # the draft is on order now: pressing twice makes one draft
        await ps.draft_from_suggestions(rt, supplier_id=s2.id)
    await ps.draft_from_suggestions(rt, supplier_id=s1.id, skus=["WATER-550", "oil-5l"])
    assert await ps.suggest_purchases(rt) == []
    # Cancelling the cola draft puts COLA back below its point: 2 × 50 − 40 = 60, last supplier s1.
    await ps.cancel_purchase_order(rt, cola.number)
    groups = await ps.suggest_purchases(rt)
    assert [(g.supplier.id if g.supplier else None, [(s.sku, s.qty) for s in g.suggestions]) for g in groups] == [
        (s1.id, [("COLA-330", 60)])
    ]
    assert groups[0].suggestions[0].position.unit_cost_fen == 4000  # a cancelled order still names supplier and price
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(purchase_order_lines))).scalar_one() == 5


# ---- the API ----------------------------------------------------------------------------------------------
@pytest.fixture
async def api(catalog: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(catalog.settings, runtime=catalog)
    purchasing_web.setup_routes(app)
    async with TestClient(TestServer(app)) as client:
        client.session.headers["Authorization"] = f"Bearer {catalog.settings.admin_token.get()}"
        yield client


async def test_api_purchase_flow(api: TestClient, catalog: Runtime) -> None:
    resp = await api.post("/api/v1/suppliers", json={"name": "饮料厂", "lead_time_days": 2})
    assert resp.status == 201
    supplier = await resp.json()
    resp = await api.post(
        "/api/v1/purchase-orders", json={"supplier_id": supplier["id"], "lines": [{"sku": "COLA-330", "qty": 10, "unit_cost_fen": 4100}]}
    )
    assert resp.status == 201
    number = (await resp.json())["number"]
    assert (await api.post(f"/api/v1/purchase-orders/{number}/place")).status == 200
    resp = await api.post(
        f"/api/v1/purchase-orders/{number}/receive", json={"reference": "DN-9", "lines": [{"sku": "COLA-330", "qty": 11}]}
    )
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "receipt_exceeds_ordered"
    resp = await api.post(f"/api/v1/purchase-orders/{number}/receive", json={"reference": "DN-9", "lines": [{"sku": "COLA-330", "qty": 4}]})
    assert resp.status == 201 and (await resp.json())["purchase_order"]["status"] == P.PARTIALLY_RECEIVED
    resp = await api.post(f"/api/v1/purchase-orders/{number}/receive", json={"reference": "DN-9", "lines": [{"sku": "COLA-330", "qty": 4}]})
    assert resp.status == 200 and (await resp.json())["duplicate"] is True
    resp = await api.post(f"/api/v1/purchase-orders/{number}/cancel")
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "purchase_has_receipts"
    resp = await api.get("/api/v1/purchase-suggestions")
    assert resp.status == 200 and "groups" in await resp.json()
    resp = await api.post(f"/api/v1/suppliers/{supplier['id']}/deactivate")
    assert resp.status == 200 and (await resp.json())["active"] is False
    assert (await api.get("/api/v1/purchase-orders/PO999999")).status == 404
    resp = await api.get("/api/v1/purchase-orders", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401


async def test_concurrent_receipts_post_once_and_never_exceed_the_order(catalog: Runtime) -> None:
    import asyncio

    rt = catalog
    supplier = await ps.create_supplier(rt, name="并发供应商")
    order = await ps.create_purchase_order(rt, supplier_id=supplier.id, lines=[("SOY-DARK", 10, 800)])
    await ps.place_purchase_order(rt, order.number)
    same = await asyncio.gather(*(ps.receive_purchase(rt, order.number, [("SOY-DARK", 2)], reference="DN-SAME") for _ in range(6)))
    assert sum(not r.duplicate for r in same) == 1
    assert (await ps.get_purchase_order(rt, order.number)).lines[0].received_qty == 2
    results = await asyncio.gather(
        *(ps.receive_purchase(rt, order.number, [("SOY-DARK", 3)], reference=f"DN-{k}") for k in range(5)), return_exceptions=True
    )
    posted = [r for r in results if isinstance(r, ps_domain.ReceiptResult)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(posted) == 2 and all(isinstance(e, d.ReceiptExceedsOrdered) for e in refused)
    final = await ps.get_purchase_order(rt, order.number)
    assert final.lines[0].received_qty == 8 and final.status == P.PARTIALLY_RECEIVED
    assert await level(rt, "SOY-DARK") == inventory.Level(45 + 8, 0)
    await no_drift(rt)


def test_match_sku() -> None:
    assert d.match_sku(" oil-5l ", {"OIL-5L"}) == "OIL-5L"
    assert d.match_sku("tea-a", {"tea-a", "TEA-A"}) == "tea-a"  # exact wins
    assert d.match_sku("nope", {"OIL-5L"}) == "nope"
