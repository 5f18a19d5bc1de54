"""Orders, allocation, shipments and the stock ledger against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from fulfillment.catalog.domain import ProductNotFound
from fulfillment.catalog.models import products
from fulfillment.inventory import services as inventory
from fulfillment.inventory.models import stock_levels
from fulfillment.orders import backorders as orders_backorders
from fulfillment.orders import discounts
from fulfillment.orders import models as orders_models
from fulfillment.orders import services as orders
from fulfillment.orders import shipments as shipments
from fulfillment.orders.domain import DraftExpired, InvalidTransition, NothingToShip, ShipmentTooLarge
from fulfillment.orders.models import OrderStatus, order_history
from scrm.core.clock import FrozenClock
from scrm.core.errors import InvalidInput
from scrm.core.outbox import outbox
from scrm.core.runtime import Runtime
from tests.conftest import make_customer


async def stock(rt: Runtime, sku: str) -> inventory.Level:
    async with rt.db.read() as conn:
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == sku))).scalar_one()
        return await inventory.level(conn, rt.db.dialect, pid)


async def set_stock(rt: Runtime, sku: str, qty: int) -> None:
    async with rt.db.write() as conn:
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == sku))).scalar_one()
        wh = await inventory.default_warehouse(conn, rt.db.dialect)
        await inventory.set_on_hand(conn, rt.db.dialect, pid, wh, qty, rt.clock.now())


async def topics(rt: Runtime) -> list[str]:
    async with rt.db.read() as conn:
        return [r.topic for r in await conn.execute(sa.select(outbox.c.topic).order_by(outbox.c.id))]


async def no_drift(rt: Runtime) -> None:
    async with rt.db.read() as conn:
        assert await inventory.reconcile(conn) == []


async def test_draft_quote_then_confirm_allocates(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmA")
    draft = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 3), ("TISSUE-3", 2)], source="chat")
    assert draft.status == OrderStatus.PENDING and draft.number.startswith("SO")
    assert draft.total_fen == 3 * 3600 + 2 * 2590
    assert (await stock(rt, "WATER-550")).allocated == 0  # a draft holds nothing
    confirmed = await orders.confirm_order(rt, draft.id, actor="test")
    assert confirmed.status == OrderStatus.CONFIRMED
    assert [(ln.sku, ln.allocated_qty) for ln in confirmed.lines] == [("WATER-550", 3), ("TISSUE-3", 2)]
    assert await stock(rt, "WATER-550") == inventory.Level(120, 3)
    again = await orders.confirm_order(rt, draft.id)
    assert again.version == confirmed.version  # confirming twice changes nothing
    assert (await topics(rt)).count("order.confirmed") == 1
    await no_drift(rt)


async def test_short_stock_becomes_backorder_and_receipt_fills_it(catalog: Runtime) -> None:
    rt = catalog
    await set_stock(rt, "OIL-5L", 4)
    cid = await make_customer(rt, "wmB")
    order = await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 6)], source="api", confirm=True)
    assert order.lines[0].allocated_qty == 4 and order.lines[0].backordered_qty == 2
    async with rt.db.read() as conn:
        payload = (await conn.execute(sa.select(outbox.c.payload).where(outbox.c.topic == "order.confirmed"))).scalar_one()
    assert payload["backordered"][0]["qty"] == 2
    async with rt.db.write() as conn:
        pid = (await conn.execute(sa.select(products.c.id).where(products.c.sku == "OIL-5L"))).scalar_one()
        await inventory.receive(conn, rt.db.dialect, pid, await inventory.default_warehouse(conn, rt.db.dialect), 5, rt.clock.now())
    assert await orders_backorders.fill_backorders(rt, pid) == 2
    filled = await orders.get_order(rt, order.id)
    assert filled.lines[0].allocated_qty == 6
    assert await stock(rt, "OIL-5L") == inventory.Level(9, 6)
    assert "order.backorder_filled" in await topics(rt)
    await no_drift(rt)


@pytest.mark.parametrize("repeat", range(3))
async def test_concurrent_confirmations_never_oversell(catalog: Runtime, repeat: int) -> None:
    rt = catalog
    await set_stock(rt, "RICE-5KG", 10)
    await set_stock(rt, "OIL-5L", 7)
    drafts = []
    for i in range(64):
        cid = await make_customer(rt, f"wmC{repeat}-{i}")
        items = [("RICE-5KG", 1 + i % 3)] + ([("OIL-5L", 1)] if i % 2 else [])
        drafts.append(await orders.create_order(rt, customer_id=cid, items=items, source="chat"))
    results = await asyncio.gather(*(orders.confirm_order(rt, d.id) for d in drafts))
    assert all(r.status == OrderStatus.CONFIRMED for r in results)
    rice = sum(ln.allocated_qty for r in results for ln in r.lines if ln.sku == "RICE-5KG")
    oil = sum(ln.allocated_qty for r in results for ln in r.lines if ln.sku == "OIL-5L")
    assert rice == 10 and oil == 7  # everything available went out, nothing more
    assert await stock(rt, "RICE-5KG") == inventory.Level(10, 10)
    assert await stock(rt, "OIL-5L") == inventory.Level(7, 7)
    async with rt.db.read() as conn:
        bad = (await conn.execute(sa.select(sa.func.count()).where(stock_levels.c.allocated > stock_levels.c.on_hand))).scalar_one()
    assert bad == 0
    await no_drift(rt)


async def test_cancel_releases_and_shipped_order_cannot_be_cancelled(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmD")
    order = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 5)], source="api", confirm=True)
    cancelled = await orders.cancel_order(rt, order.id, actor="test", reason="客户改主意")
    assert cancelled.status == OrderStatus.CANCELLED and cancelled.lines[0].allocated_qty == 0
    assert await stock(rt, "COLA-330") == inventory.Level(40, 0)
    assert (await orders.cancel_order(rt, order.id)).version == cancelled.version  # idempotent

    shipped = await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 2)], source="api", confirm=True)
    await shipments.create_shipment(rt, shipped.id, carrier="顺丰", tracking_no="SF100")
    with pytest.raises(InvalidTransition):
        await orders.cancel_order(rt, shipped.id)
    assert (await orders.get_order(rt, shipped.id)).status == OrderStatus.SHIPPED
    await no_drift(rt)


async def test_partial_shipments_delivery_and_shipment_cancel(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmE")
    order = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 5), ("RICE-5KG", 2)], source="api", confirm=True)
    with pytest.raises(ShipmentTooLarge):
        await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF1", lines=[("WATER-550", 6)])
    with pytest.raises(InvalidInput):
        await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF1", lines=[("NOPE", 1)])
    with pytest.raises(InvalidInput):
        await shipments.create_shipment(rt, order.id, carrier=" ", tracking_no="SF1")
    assert await stock(rt, "WATER-550") == inventory.Level(120, 5)  # refused shipments changed nothing
    first, number1 = await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF1", lines=[("WATER-550", 3)])
    assert first.status == OrderStatus.PARTIALLY_SHIPPED
    assert await stock(rt, "WATER-550") == inventory.Level(117, 2)
    second, number2 = await shipments.create_shipment(rt, order.id, carrier="中通", tracking_no="ZT2")
    assert second.status == OrderStatus.SHIPPED
    assert {(s.number, s.tracking_no) for s in second.shipments} == {(number1, "SF1"), (number2, "ZT2")}
    with pytest.raises(InvalidTransition):
        await shipments.create_shipment(rt, order.id, carrier="中通", tracking_no="ZT3")
    back = await shipments.cancel_shipment(rt, number2)
    assert back.status == OrderStatus.PARTIALLY_SHIPPED
    assert await stock(rt, "RICE-5KG") == inventory.Level(30, 2)  # back on hand, still reserved for the order
    _, number3 = await shipments.create_shipment(rt, order.id, carrier="中通", tracking_no="ZT3")
    await shipments.mark_delivered(rt, number1)
    done = await shipments.mark_delivered(rt, number3)
    assert done.status == OrderStatus.COMPLETED
    assert (await topics(rt)).count("order.shipped") == 3
    await no_drift(rt)


async def test_nothing_to_ship_when_fully_backordered(catalog: Runtime) -> None:
    rt = catalog
    await set_stock(rt, "OIL-5L", 0)
    cid = await make_customer(rt, "wmF")
    order = await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 1)], source="api", confirm=True)
    with pytest.raises(NothingToShip):
        await shipments.create_shipment(rt, order.id, carrier="顺丰", tracking_no="SF9")


@pytest.mark.parametrize("confirm", [False, True])
@pytest.mark.parametrize(
    "items", [[("NOPE", 1)], [("WATER-550", 1), ("NOPE", 1)], [("WATER-550", 0)], [("WATER-550", -2)], [("WATER-550", 10**9)], []]
)
async def test_bad_items_are_refused(catalog: Runtime, items: list[tuple[str, int]], confirm: bool) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmG")
    with pytest.raises((ProductNotFound, InvalidInput)):
        await orders.create_order(rt, customer_id=cid, items=items, source="api", confirm=confirm)
    assert await stock(rt, "WATER-550") == inventory.Level(120, 0)
    async with rt.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(order_history))).scalar_one() == 0


async def test_drafts_expire_and_cannot_be_confirmed(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmH")
    draft = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="chat")
    clock.advance(hours=3)
    with pytest.raises(DraftExpired):
        await orders.confirm_order(rt, draft.id)
    assert (await orders.get_order(rt, draft.id)).status == OrderStatus.EXPIRED
    other = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="chat")
    clock.advance(hours=3)
    assert await orders.expire_drafts(rt) == 1
    assert (await orders.get_order(rt, other.id)).status == OrderStatus.EXPIRED
    assert (await stock(rt, "WATER-550")).allocated == 0


class _ReleaseRefusedFor:
    """A discount provider (the port coupons plug into) that cannot give back one order's discount."""

    def __init__(self, order_id: int) -> None:
        self.order_id = order_id

    async def hold(self, conn: Any, dialect: str, *, order_id: int, customer_id: int, lines: Any, now: Any) -> Any:
        return discounts.NO_DISCOUNT

    async def held(self, conn: Any, *, order_id: int) -> Any:
        return discounts.NO_DISCOUNT

    async def redeem(self, conn: Any, dialect: str, *, order_id: int, now: Any) -> None:
        return None

    async def release(self, conn: Any, dialect: str, *, order_id: int, now: Any) -> None:
        if order_id == self.order_id:
            raise RuntimeError("coupon store unavailable for this order")


async def test_one_draft_that_cannot_expire_does_not_keep_the_others_pending(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmExpiry")
    stuck = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="chat")
    others = []
    for i in range(2):
        other_customer = await make_customer(rt, f"wmExp{i}")
        others.append(await orders.create_order(rt, customer_id=other_customer, items=[("WATER-550", 1)], source="chat"))
    discounts.install(rt, _ReleaseRefusedFor(stuck.id))
    clock.advance(hours=3)
    assert await orders.expire_drafts(rt) == 2
    assert [(await orders.get_order(rt, o.id)).status for o in others] == [OrderStatus.EXPIRED] * 2
    assert (await orders.get_order(rt, stuck.id)).status == OrderStatus.PENDING  # rolled back alone, tried again
    discounts.install(rt, _ReleaseRefusedFor(-1))
    assert await orders.expire_drafts(rt) == 1
    assert (await orders.get_order(rt, stuck.id)).status == OrderStatus.EXPIRED


async def test_steps_with_a_ref_apply_once(catalog: Runtime) -> None:
    rt = catalog
    cid = await make_customer(rt, "wmI")
    a = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="chat", ref="inbound:1")
    b = await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 1)], source="chat", ref="inbound:1")
    assert a.id == b.id
    c = await orders.set_draft_lines(rt, a.id, [("WATER-550", 2)], expected_version=a.version, ref="inbound:2")
    d = await orders.set_draft_lines(rt, a.id, [("WATER-550", 4)], expected_version=a.version, ref="inbound:2")
    assert c.version == d.version and d.lines[0].qty == 2


async def test_low_stock_alert_once_a_day(catalog: Runtime, clock: FrozenClock) -> None:
    rt = catalog
    async with rt.db.write() as conn:
        await conn.execute(products.update().where(products.c.sku == "OIL-5L").values(reorder_point=8))
    cid = await make_customer(rt, "wmJ")
    for _ in range(3):
        await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 1)], source="api", confirm=True)
    assert (await topics(rt)).count("stock.low") == 1
    clock.advance(days=1)
    await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 1)], source="api", confirm=True)
    assert (await topics(rt)).count("stock.low") == 2


def test_number_formats() -> None:
    from fulfillment.orders.domain import order_number, shipment_number, status_after_shipping

    assert order_number(1) == "SO100001" and shipment_number(7) == "SH100007"
    assert status_after_shipping([(3, 3), (2, 1)]) == OrderStatus.PARTIALLY_SHIPPED
    assert status_after_shipping([(3, 3)]) == OrderStatus.SHIPPED
    assert dt.timedelta(hours=2) == orders.DRAFT_TTL


async def test_the_order_create_returns_is_what_the_database_holds(catalog: Runtime) -> None:
    """create_order builds its answer from what it just wrote instead of reading it back: it must equal a fresh
    read for a draft, a confirmed order with a backorder, and a confirmed order with a coupon redeemed."""
    from scrm.campaigns.coupons import discounts as coupons_discounts
    from scrm.campaigns.coupons import services as coupons
    from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms

    coupons_discounts.install(catalog)
    cid = await make_customer(catalog, "wmView")
    draft = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 2)], source="api")
    short = await orders.create_order(catalog, customer_id=cid, items=[("OIL-5L", 12), ("WATER-550", 1)], source="api", confirm=True)
    tpl = await coupons.create_template(
        catalog, TemplateTerms(name="满100减10", rule=CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000))
    )
    coupon = await coupons.issue_coupon(catalog, tpl.id, cid, source="console")
    with_coupon = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 3)], source="api", confirm=True)
    for view in (draft, short, with_coupon):
        assert view == await orders.get_order(catalog, view.id)
    assert [ln.backordered_qty for ln in short.lines] == [2, 0]
    assert (with_coupon.subtotal_fen, with_coupon.discount_fen, with_coupon.total_fen) == (10800, 1000, 9800)
    assert [(c.id, c.status) for c in await coupons.coupons_of_customer(catalog, cid)] == [(coupon.id, "redeemed")]


@pytest.mark.parametrize("repeat", range(2))
async def test_concurrent_confirmed_creates_never_oversell(catalog: Runtime, repeat: int) -> None:
    """64 orders created confirmed at once (on PostgreSQL the one-statement placement): what was available went
    out, nothing more; every order's lines, counters and ledger agree."""
    rt = catalog
    await set_stock(rt, "RICE-5KG", 10)
    await set_stock(rt, "OIL-5L", 7)
    cids = [await make_customer(rt, f"wmP{repeat}-{i}") for i in range(64)]

    async def place(i: int) -> Any:
        items = [("OIL-5L", 1)] if i % 3 == 0 else [("RICE-5KG", 1 + i % 3)] + ([("OIL-5L", 1)] if i % 2 else [])
        return await orders.create_order(rt, customer_id=cids[i], items=items, source="api", confirm=True)

    results = await asyncio.gather(*(place(i) for i in range(64)))
    assert all(r.status == OrderStatus.CONFIRMED for r in results)
    assert len({r.number for r in results}) == 64
    rice = sum(ln.allocated_qty for r in results for ln in r.lines if ln.sku == "RICE-5KG")
    oil = sum(ln.allocated_qty for r in results for ln in r.lines if ln.sku == "OIL-5L")
    assert rice == 10 and oil == 7
    assert await stock(rt, "RICE-5KG") == inventory.Level(10, 10)
    assert await stock(rt, "OIL-5L") == inventory.Level(7, 7)
    for r in results[::9]:
        assert r == await orders.get_order(rt, r.id)  # the answer is what the database holds
    await no_drift(rt)


async def test_a_confirmed_create_writes_history_news_and_ledger(catalog: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a confirmed create writes besides the order — the same on either path (one statement on PostgreSQL,
    the general path on SQLite and for customers with a credit limit or a coupon)."""
    from fulfillment.billing import services as billing
    from fulfillment.inventory.models import stock_movements
    from fulfillment.orders import placement

    rt = catalog
    placed_in_one: list[int] = []
    one_statement = placement.place_confirmed

    async def spy(*args: Any, **kw: Any) -> Any:
        placed = await one_statement(*args, **kw)
        if placed is not None:
            placed_in_one.append(placed[0].id)
        return placed

    monkeypatch.setattr(placement, "place_confirmed", spy)
    await set_stock(rt, "OIL-5L", 2)
    plain = await make_customer(rt, "wmPlain")
    limited = await make_customer(rt, "wmLimited")
    await billing.set_account(rt, limited, credit_limit_fen=10**9)
    for cid in (plain, limited):
        view = await orders.create_order(
            rt, customer_id=cid, items=[("WATER-550", 2), ("OIL-5L", 3)], source="api", actor="test", confirm=True
        )
        assert view == await orders.get_order(rt, view.id)
        async with rt.db.read() as conn:
            history = (
                await conn.execute(
                    sa.select(order_history.c.from_status, order_history.c.to_status, order_history.c.event, order_history.c.actor)
                    .where(order_history.c.order_id == view.id)
                    .order_by(order_history.c.id)
                )
            ).all()
            news = (
                await conn.execute(
                    sa.select(outbox.c.topic, outbox.c.payload)
                    .where(outbox.c.topic.in_(["order.confirmed", "billing.order_confirmed"]))
                    .order_by(outbox.c.id.desc())
                    .limit(2)
                )
            ).all()
            ledger = (
                await conn.execute(
                    sa.select(
                        stock_movements.c.kind,
                        stock_movements.c.allocated_delta,
                        stock_movements.c.on_hand_delta,
                        stock_movements.c.reference,
                    )
                    .where(stock_movements.c.order_id == view.id)
                    .order_by(stock_movements.c.product_id)
                )
            ).all()
        assert [tuple(h) for h in history] == [(None, "pending", "created", "test"), ("pending", "confirmed", "confirmed", "test")]
        oil_short = next(ln for ln in view.lines if ln.sku == "OIL-5L")
        expected_short = [
            {
                "sku": "OIL-5L",
                "name": oil_short.name,
                "unit": oil_short.unit,
                "qty": 3 - oil_short.allocated_qty,
                "allocated": oil_short.allocated_qty,
            }
        ]
        assert [tuple(n) for n in reversed(news)] == [
            ("order.confirmed", {"order_id": view.id, "backordered": expected_short, "told_in_chat": False}),
            ("billing.order_confirmed", {"order_id": view.id}),
        ]
        assert sorted(ln.allocated_qty for ln in view.lines if ln.allocated_qty) == sorted(m.allocated_delta for m in ledger)
        assert all(m.kind == "allocation" and m.on_hand_delta == 0 and m.reference == view.number for m in ledger)
        on_fast_path = rt.db.dialect == "postgresql" and cid == plain  # a credit limit sends the order the general way
        assert (view.id in placed_in_one) == on_fast_path
    await no_drift(rt)


async def test_concurrent_confirmed_creates_of_every_kind_are_each_all_or_nothing(catalog: Runtime) -> None:
    """Orders placed at once go to the database together (on PostgreSQL: group placement, several orders a
    statement); each is still decided alone: the plain ones are placed (first come, first served on short stock),
    those with a credit limit or a coupon take the general path, an unknown SKU is refused and writes nothing."""
    from fulfillment.billing import services as billing
    from fulfillment.orders import placement
    from scrm.campaigns.coupons import discounts as coupons_discounts
    from scrm.campaigns.coupons import services as coupons
    from scrm.campaigns.coupons.domain import CouponRule, TemplateTerms

    rt = catalog
    coupons_discounts.install(rt)
    await set_stock(rt, "OIL-5L", 9)
    async with rt.db.write() as conn:
        await conn.execute(products.update().where(products.c.sku == "OIL-5L").values(reorder_point=3))
    plain = [await make_customer(rt, f"wmK{i}") for i in range(30)]
    limited = await make_customer(rt, "wmKLimited")
    await billing.set_account(rt, limited, credit_limit_fen=10**9)
    with_coupon = await make_customer(rt, "wmKCoupon")
    tpl = await coupons.create_template(
        rt, TemplateTerms(name="满100减10", rule=CouponRule("fixed", amount_off_fen=1000, threshold_fen=10000))
    )
    await coupons.issue_coupon(rt, tpl.id, with_coupon, source="console")

    async def place(i: int) -> Any:
        cid = limited if i == 7 else with_coupon if i == 11 else plain[i]
        items = [("OIL-5L", 1 + i % 2), ("WATER-550", 2)] if i % 3 else [("NO-SUCH-SKU", 1), ("WATER-550", 1)]
        return await orders.create_order(rt, customer_id=cid, items=items, source="api", confirm=True)

    results = await asyncio.gather(*(place(i) for i in range(30)), return_exceptions=True)
    refused = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert refused == [i for i in range(30) if i % 3 == 0]
    assert all(isinstance(results[i], ProductNotFound) for i in refused)
    placed = [r for r in results if not isinstance(r, BaseException)]
    assert all(r.status == OrderStatus.CONFIRMED for r in placed) and len({r.id for r in placed}) == 20
    for r in placed:
        assert r == await orders.get_order(rt, r.id)  # the answer is what the database holds
    by_customer = {r.customer_id: r for r in placed}
    assert by_customer[with_coupon].discount_fen == 1000  # the coupon's customer went the general way
    oil = [ln.allocated_qty for r in placed for ln in r.lines if ln.sku == "OIL-5L"]
    assert sum(oil) == 9 and await stock(rt, "OIL-5L") == inventory.Level(9, 9)
    assert await stock(rt, "WATER-550") == inventory.Level(120, 40)
    async with rt.db.read() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(orders_models.orders))).scalar_one()
        history = (await conn.execute(sa.select(sa.func.count()).select_from(order_history))).scalar_one()
    assert count == 20 and history == 40  # the refused orders wrote nothing
    news = await topics(rt)
    assert news.count("order.confirmed") == 20 and news.count("billing.order_confirmed") == 20
    assert news.count("stock.low") == 1  # the product ran low: one alert
    await no_drift(rt)
    if rt.db.dialect == "postgresql":
        batcher = rt.get(placement.PLACEMENTS)
        assert batcher.batches < batcher.requests  # several orders shared a statement


async def test_the_same_ref_placed_at_once_is_one_order(catalog: Runtime) -> None:
    """Calls with the same ``ref`` arriving together (so in one batch on PostgreSQL; on SQLite the twins race to the
    unique ref and the losers answer with the winner's order): one order, taken once."""
    rt = catalog
    cid = await make_customer(rt, "wmL")
    others = [await make_customer(rt, f"wmL{i}") for i in range(6)]

    async def place(i: int) -> Any:
        if i % 2:
            return await orders.create_order(rt, customer_id=others[i // 2], items=[("RICE-5KG", 1)], source="api", confirm=True)
        return await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 2)], source="chat", confirm=True, ref="inbound:77")

    results = await asyncio.gather(*(place(i) for i in range(12)))
    same = {r.id for r in results[::2]}
    assert len(same) == 1 and len({r.id for r in results[1::2]}) == 6
    assert all(r.status == OrderStatus.CONFIRMED for r in results)
    assert await stock(rt, "OIL-5L") == inventory.Level(10, 2)
    assert await stock(rt, "RICE-5KG") == inventory.Level(30, 6)
    async with rt.db.read() as conn:
        refs = (await conn.execute(sa.select(sa.func.count()).where(order_history.c.ref == "inbound:77"))).scalar_one()
    assert refs == 1
    assert (await topics(rt)).count("order.confirmed") == 7
    await no_drift(rt)


async def test_an_order_the_database_refuses_fails_alone(catalog: Runtime) -> None:
    """One order of a batch that the database refuses (a salesperson id longer than its column) gets the error;
    the batch is retried order by order, so the others are placed, once each."""
    if catalog.db.dialect != "postgresql":
        pytest.skip("SQLite does not enforce column lengths; group placement is PostgreSQL's")
    from asyncpg import StringDataRightTruncationError

    rt = catalog
    cids = [await make_customer(rt, f"wmM{i}") for i in range(10)]

    async def place(i: int) -> Any:
        salesperson = "x" * 65 if i == 4 else "zhangsan"
        return await orders.create_order(
            rt, customer_id=cids[i], items=[("OIL-5L", 1), ("RICE-5KG", 1)], source="api", salesperson_userid=salesperson, confirm=True
        )

    results = await asyncio.gather(*(place(i) for i in range(10)), return_exceptions=True)
    assert isinstance(results[4], StringDataRightTruncationError)
    placed = [r for i, r in enumerate(results) if i != 4]
    assert all(not isinstance(r, BaseException) and r.status == OrderStatus.CONFIRMED for r in placed)
    assert await stock(rt, "OIL-5L") == inventory.Level(10, 9) and await stock(rt, "RICE-5KG") == inventory.Level(30, 9)
    async with rt.db.read() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(orders_models.orders))).scalar_one()
    assert count == 9
    assert (await topics(rt)).count("order.confirmed") == 9
    await no_drift(rt)


def test_a_batch_is_split_only_when_the_database_rolled_it_back() -> None:
    """Group placement retries a failed batch order by order only after an error that proves nothing was written."""
    from asyncpg import exceptions as pg

    from fulfillment.orders import placement

    rolled_back = [pg.StringDataRightTruncationError("long"), pg.CheckViolationError("oversold"), pg.QueryCanceledError("timeout")]
    maybe_committed = [pg.AdminShutdownError("bye"), pg.CrashShutdownError("crash"), pg.ConnectionDoesNotExistError("lost"), OSError()]
    assert all(placement._rolled_back(e) for e in rolled_back)
    assert not any(placement._rolled_back(e) for e in maybe_committed)
