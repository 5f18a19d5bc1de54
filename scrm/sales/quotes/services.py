"""Quote use cases (报价单): create from an opportunity or for a customer (priced from the catalog, held for
approval when a rule matches), accept (an order through the same fulfilment service as every order), the share
link the salesperson sends into the chat, and moves on approval decisions and handovers.

Guarantees:
- A refused quote (unknown SKU, a discount outside 0–100 %, a date in the past) writes nothing; the error names
  the line.
- A quote waiting for approval can be neither sent nor accepted; the decision makes it sendable (or rejected).
- Accepting places the order with ``ref = "quote:<number>"`` (fulfilment's idempotent ref): accepting twice, or
  concurrently, gives the same order and never a second one. An expired quote is refused. Accepting marks the
  quote accepted with its order number and the opportunity won, in one transaction after the order exists (a
  retry after a crash in between finds the order by its ref and completes the rest).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.catalog.services import get_product
from fulfillment.orders.queries import OrderView, get_order_by_number
from fulfillment.orders.services import create_order
from fulfillment.sequences import next_value
from scrm.core import audit
from scrm.core.clock import local
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.signing import Signer
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import customer_exists
from scrm.crm.timeline.services import Kind, add_entry
from scrm.governance.approvals import services as approvals
from scrm.governance.scopes.services import DataScope
from scrm.sales.pipeline.services import load_opportunity, owner_condition, owner_in_scope, win_in
from scrm.sales.quotes.domain import (
    MAX_LINES,
    STATUS_ZH,
    LineRequest,
    PricedQuoteLine,
    QuoteAwaitingApproval,
    QuoteExpired,
    QuoteNotFound,
    QuoteNotOpen,
    check_valid_until,
    discount_pct,
    discount_text,
    is_expired,
    line_error,
    price_line,
    quote_number,
)
from scrm.sales.quotes.models import QuoteStatus as S
from scrm.sales.quotes.models import quote_lines, quotes

Q, L = quotes.c, quote_lines.c
SHARE_PATH = "/quotes/shared/{token}"  # public: the page a customer opens from the chat; the token is signed
ORDER_SOURCE = "quote"


def today(rt: Runtime) -> dt.date:
    """The business day (Asia/Shanghai) now."""
    return local(rt.clock.now()).date()


# ---- views ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuoteView:
    id: int
    number: str
    customer_id: int
    opportunity_id: int | None
    owner: str
    status: str
    valid_until: dt.date
    subtotal_fen: int
    total_fen: int
    max_discount_bp: int
    note: str
    order_number: str | None
    accepted_at: dt.datetime | None
    created_at: dt.datetime
    lines: list[PricedQuoteLine]
    expired: bool

    @property
    def sendable(self) -> bool:
        """May go to the customer: open and not expired (or accepted: the page shows the order)."""
        return (self.status == S.OPEN and not self.expired) or self.status == S.ACCEPTED

    @property
    def max_discount_text(self) -> str:
        return discount_text(self.max_discount_bp)

    @property
    def waiting(self) -> bool:
        """Waits for its approval."""
        return self.status == S.PENDING_APPROVAL

    @property
    def acceptable(self) -> bool:
        return self.status == S.OPEN and not self.expired

    @property
    def cancellable(self) -> bool:
        return self.status in (S.OPEN, S.PENDING_APPROVAL)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "customer_id": self.customer_id,
            "opportunity_id": self.opportunity_id,
            "owner": self.owner,
            "status": self.status,
            "expired": self.expired,
            "valid_until": self.valid_until.isoformat(),
            "subtotal_fen": self.subtotal_fen,
            "discount_fen": self.subtotal_fen - self.total_fen,
            "total_fen": self.total_fen,
            "max_discount_pct": discount_pct(self.max_discount_bp),
            "note": self.note,
            "order_number": self.order_number,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
            "created_at": self.created_at.isoformat(),
            "lines": [
                {
                    "sku": ln.sku,
                    "name": ln.name,
                    "unit": ln.unit,
                    "qty": ln.qty,
                    "list_price_fen": ln.list_price_fen,
                    "unit_price_fen": ln.unit_price_fen,
                    "discount_pct": discount_pct(ln.discount_bp),
                    "line_total_fen": ln.line_total_fen,
                }
                for ln in self.lines
            ],
        }


async def _load(conn: AsyncConnection, rt: Runtime, quote_id: int) -> QuoteView:
    row = (await conn.execute(sa.select(quotes).where(Q.id == quote_id))).first()
    if row is None:
        raise QuoteNotFound(f"没有这张报价单：#{quote_id} (quote not found)", id=quote_id)
    return await _view(conn, rt, row)


async def _view(conn: AsyncConnection, rt: Runtime, row: Any) -> QuoteView:
    lines = (await conn.execute(sa.select(quote_lines).where(L.quote_id == row.id).order_by(L.position, L.id))).all()
    return QuoteView(
        int(row.id), row.number, int(row.customer_id), None if row.opportunity_id is None else int(row.opportunity_id), row.owner_userid,
        row.status, row.valid_until, int(row.subtotal_fen), int(row.total_fen), int(row.max_discount_bp), row.note, row.order_number,
        row.accepted_at, row.created_at,
        [
            PricedQuoteLine(ln.sku, ln.name, ln.unit, int(ln.qty), int(ln.list_price_fen), int(ln.unit_price_fen), int(ln.discount_bp))
            for ln in lines
        ],
        is_expired(row.valid_until, today(rt)),
    )  # fmt: skip


async def get_quote(rt: Runtime, quote_id: int, *, scope: DataScope | None = None) -> QuoteView:
    """One quote; outside ``scope`` it answers as not found."""
    async with rt.db.read() as conn:
        found = await _load(conn, rt, quote_id)
    if scope is not None and not owner_in_scope(scope, found.owner):
        raise QuoteNotFound(f"没有这张报价单：#{quote_id} (quote not found)", id=quote_id)
    return found


async def list_quotes(
    rt: Runtime,
    scope: DataScope,
    *,
    customer_id: int | None = None,
    opportunity_id: int | None = None,
    status: str = "",
    owner: str = "",
    limit: int = 200,
) -> list[QuoteView]:
    """Quotes in scope (their owner is one of the scope's members), newest first."""
    q = sa.select(quotes).where(owner_condition(scope, Q.owner_userid))
    if customer_id is not None:
        q = q.where(Q.customer_id == customer_id)
    if opportunity_id is not None:
        q = q.where(Q.opportunity_id == opportunity_id)
    if status:
        q = q.where(Q.status == status)
    if owner:
        q = q.where(Q.owner_userid == owner)
    async with rt.db.read() as conn:
        rows = (await conn.execute(q.order_by(Q.id.desc()).limit(limit))).all()
        return [await _view(conn, rt, r) for r in rows]


# ---- create --------------------------------------------------------------------------------------------------------
async def _price(conn: AsyncConnection, lines: Sequence[LineRequest]) -> list[PricedQuoteLine]:
    if not 0 < len(lines) <= MAX_LINES:
        raise InvalidInput(f"报价单需要 1 到 {MAX_LINES} 行 (lines: 1–{MAX_LINES})", field="lines")
    priced: list[PricedQuoteLine] = []
    seen: set[str] = set()
    for i, req in enumerate(lines):
        if req.sku in seen:
            raise line_error(i, f"商品 {req.sku} 重复，请合并为一行 (duplicate sku)", sku=req.sku)
        seen.add(req.sku)
        try:
            product = await get_product(conn, req.sku)
        except NotFound:
            product = None
        if product is None or not product.active:
            raise line_error(i, f"没有这个商品：{req.sku[:64]} (unknown or inactive sku)", sku=req.sku[:64])
        priced.append(price_line(i, req, product.name, product.unit, product.price_fen))
    return priced


async def create_quote(
    rt: Runtime,
    *,
    lines: Sequence[LineRequest],
    owner_userid: str,
    customer_id: int | None = None,
    opportunity_id: int | None = None,
    valid_until: dt.date | None = None,
    note: str = "",
    actor: str = "",
) -> QuoteView:
    """A quote for a customer, or from an opportunity (its customer). When an approval rule for quotes matches
    (amount, deepest discount) it waits ``pending_approval``; otherwise it is open (sendable) at once."""
    now = rt.clock.now()
    until = check_valid_until(valid_until, today(rt))
    async with rt.db.write() as conn:
        if opportunity_id is not None:
            opp = await load_opportunity(conn, opportunity_id, with_history=False)
            if customer_id is not None and customer_id != opp.customer_id:
                raise InvalidInput("customer_id 与商机的客户不一致 (customer does not match the opportunity)", field="customer_id")
            customer_id = opp.customer_id
            if opp.closed:
                raise InvalidInput(f"商机「{opp.title}」已{opp.stage_name}，不能再报价 (opportunity closed)", field="opportunity_id")
        if customer_id is None:
            raise InvalidInput("需要 opportunity_id 或 customer_id (give an opportunity or a customer)", field="customer_id")
        if not await customer_exists(conn, customer_id):
            raise InvalidInput(f"没有这个客户：#{customer_id} (unknown customer)", field="customer_id")
        priced = await _price(conn, lines)
        subtotal = sum(ln.qty * ln.list_price_fen for ln in priced)
        total = sum(ln.line_total_fen for ln in priced)
        max_bp = max(ln.discount_bp for ln in priced)
        number = quote_number(await next_value(conn, rt.db.dialect, "quote"))
        summary = f"报价单 {number}（{format_fen(total)}，最大折扣 {discount_pct(max_bp)}%）"
        facts = {"amount_fen": total, "discount_pct": discount_pct(max_bp)}
        waiting = await approvals.request_approval(
            conn,
            now,
            doc_type="quote",
            doc_ref=number,
            summary=summary,
            facts=facts,
            customer_id=customer_id,
            requester_userid=owner_userid,
        )
        status = S.PENDING_APPROVAL if waiting is not None else S.OPEN
        values = {
            "number": number, "customer_id": customer_id, "opportunity_id": opportunity_id, "owner_userid": owner_userid,
            "status": status, "valid_until": until, "subtotal_fen": subtotal, "total_fen": total, "max_discount_bp": max_bp,
            "note": note.strip()[:500], "version": 1, "created_at": now, "created_by": actor[:64], "updated_at": now,
        }  # fmt: skip
        quote_id = int((await conn.execute(quotes.insert().values(**values).returning(Q.id))).scalar_one())
        await conn.execute(
            quote_lines.insert(),
            [
                {"quote_id": quote_id, "position": i, "sku": ln.sku, "name": ln.name, "unit": ln.unit, "qty": ln.qty,
                 "list_price_fen": ln.list_price_fen, "unit_price_fen": ln.unit_price_fen, "discount_bp": ln.discount_bp,
                 "line_total_fen": ln.line_total_fen}
                for i, ln in enumerate(priced)
            ],
        )  # fmt: skip
        await add_entry(
            conn, rt.db.dialect, customer_id=customer_id, at=now, kind=Kind.EVENT, title=f"报价单 {number}（{format_fen(total)}）",
            ref=f"quote:{number}:created", data={"quote": number, "by": actor},
        )  # fmt: skip
        await audit.record(conn, now, action="create", entity="quotes", entity_id=number, summary=summary,
                           after={"customer_id": customer_id, "total_fen": total, "status": status})  # fmt: skip
        return await _load(conn, rt, quote_id)


# ---- accept --------------------------------------------------------------------------------------------------------
def _check_acceptable(found: QuoteView) -> None:
    if found.status == S.PENDING_APPROVAL:
        raise QuoteAwaitingApproval(f"报价单 {found.number} 正在等待审批，审批通过后才能接受 (awaiting approval)", number=found.number)
    if found.status != S.OPEN:
        raise QuoteNotOpen(f"报价单 {found.number} 已{_zh(found.status)}，不能接受 (quote is {found.status})", number=found.number)
    if found.expired:
        raise QuoteExpired(
            f"报价单 {found.number} 已于 {found.valid_until.isoformat()} 过期，请联系销售重新报价 (quote expired)", number=found.number
        )


def _zh(status: str) -> str:
    return STATUS_ZH.get(status, status)


async def accept_quote(rt: Runtime, quote_id: int, *, actor: str, scope: DataScope | None = None) -> tuple[OrderView, bool]:
    """The quote becomes a confirmed order (stock allocated, credit check, coupons, approval rules — whatever
    ``create_order`` applies to every order) at the quoted prices; the quote is accepted with the order's number
    and its opportunity won. Returns (order, created now). Accepting again returns the same order (False)."""
    found = await get_quote(rt, quote_id, scope=scope)
    if found.status == S.ACCEPTED and found.order_number:
        return await get_order_by_number(rt, found.order_number), False
    _check_acceptable(found)
    order = await create_order(
        rt,
        customer_id=found.customer_id,
        items=[(ln.sku, ln.qty) for ln in found.lines],
        prices={ln.sku: ln.unit_price_fen for ln in found.lines},
        source=ORDER_SOURCE,
        salesperson_userid=found.owner,
        actor=actor,
        confirm=True,
        ref=f"quote:{found.number}",
    )
    now = rt.clock.now()
    async with rt.db.write() as conn:
        done = await conn.execute(
            quotes.update()
            .where(Q.id == quote_id, Q.status == S.OPEN)
            .values(
                status=S.ACCEPTED, order_number=order.number, accepted_at=now, accepted_by=actor[:64], version=Q.version + 1, updated_at=now
            )
        )
        if done.rowcount != 1:  # accepted concurrently: the same order (same ref), already recorded
            return order, False
        if found.opportunity_id is not None:
            await win_in(
                conn,
                rt.db.dialect,
                found.opportunity_id,
                reason=f"客户接受报价单 {found.number}，订单 {order.number}",
                actor=actor,
                now=now,
            )
        await add_entry(
            conn, rt.db.dialect, customer_id=found.customer_id, at=now, kind=Kind.EVENT,
            title=f"报价单 {found.number} 已接受，生成订单 {order.number}", ref=f"quote:{found.number}:accepted",
            data={"quote": found.number, "order": order.number, "by": actor},
        )  # fmt: skip
        await audit.record(conn, now, action="accept", entity="quotes", entity_id=found.number,
                           summary=f"报价单 {found.number} 接受，订单 {order.number}", before={"status": S.OPEN},
                           after={"status": S.ACCEPTED, "order_number": order.number})  # fmt: skip
    return order, True


# ---- approval, handover --------------------------------------------------------------------------------------------
async def apply_approval(rt: Runtime, number: str, status: str, comment: str = "") -> bool:
    """A quote's approval was decided: approved → open (sendable); rejected or withdrawn → rejected. Only a
    waiting quote moves (a repeat changes nothing). Returns whether it moved."""
    now = rt.clock.now()
    target = S.OPEN if status == "approved" else S.REJECTED
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(quotes).where(Q.number == number))).first()
        if row is None or row.status != S.PENDING_APPROVAL:
            return False
        await conn.execute(
            quotes.update()
            .where(Q.id == row.id, Q.status == S.PENDING_APPROVAL)
            .values(status=target, version=Q.version + 1, updated_at=now)
        )
        await audit.record(conn, now, action="approval", entity="quotes", entity_id=number,
                           summary=f"报价单 {number} 审批{'通过' if target == S.OPEN else '未通过'}" + (f"：{comment}" if comment else ""),
                           before={"status": S.PENDING_APPROVAL}, after={"status": target})  # fmt: skip
    return True


async def cancel_quote(rt: Runtime, quote_id: int, *, actor: str, scope: DataScope | None = None) -> QuoteView:
    """The salesperson withdraws an open (or waiting) quote; its approval, if any, is withdrawn too."""
    found = await get_quote(rt, quote_id, scope=scope)
    if found.status not in (S.OPEN, S.PENDING_APPROVAL):
        raise QuoteNotOpen(f"报价单 {found.number} 已{_zh(found.status)}，不能作废 (quote is {found.status})", number=found.number)
    now = rt.clock.now()
    async with rt.db.write() as conn:
        done = await conn.execute(
            quotes.update()
            .where(Q.id == quote_id, Q.status == found.status)
            .values(status=S.CANCELLED, version=Q.version + 1, updated_at=now)
        )
        if done.rowcount != 1:
            raise QuoteNotOpen(f"报价单 {found.number} 刚刚被处理，请刷新 (changed meanwhile)", number=found.number)
        await approvals.withdraw(conn, now, "quote", found.number, "报价单已作废")
        await audit.record(conn, now, action="cancel", entity="quotes", entity_id=found.number, summary=f"作废报价单 {found.number}",
                           before={"status": found.status}, after={"status": S.CANCELLED})  # fmt: skip
        return await _load(conn, rt, quote_id)


async def transfer_open_quotes(rt: Runtime, *, customer_id: int, from_userid: str, to_userid: str) -> int:
    """A customer handed over: their open and waiting quotes owned by ``from_userid`` go to ``to_userid``.
    Idempotent (a second run finds none). Returns how many moved."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        rows = (
            await conn.execute(
                sa.select(Q.id, Q.number).where(
                    Q.customer_id == customer_id, Q.owner_userid == from_userid, Q.status.in_([S.OPEN, S.PENDING_APPROVAL])
                )
            )
        ).all()
        for r in rows:
            await conn.execute(quotes.update().where(Q.id == r.id).values(owner_userid=to_userid, version=Q.version + 1, updated_at=now))
            await audit.record(conn, now, action="transfer", entity="quotes", entity_id=r.number,
                               summary=f"报价单 {r.number} 随客户交接：{from_userid} → {to_userid}",
                               before={"owner_userid": from_userid}, after={"owner_userid": to_userid})  # fmt: skip
        return len(rows)


# ---- the share link ------------------------------------------------------------------------------------------------
def _signer(rt: Runtime) -> Signer:
    return Signer(rt.settings.session_secret.get(), "quote-share")


def share_token(rt: Runtime, found: QuoteView) -> str:
    """The unguessable token of a quote's public page (HMAC-signed id and number)."""
    return _signer(rt).sign({"q": found.id, "n": found.number})


def share_url(rt: Runtime, found: QuoteView) -> str:
    return rt.settings.base_url + SHARE_PATH.format(token=share_token(rt, found))


async def quote_by_token(rt: Runtime, token: str) -> QuoteView:
    """The quote a share token names; QuoteNotFound for a token that is not ours (or a quote not sendable)."""
    payload = _signer(rt).unsign(token)
    if payload is None or not isinstance(payload.get("q"), int) or not isinstance(payload.get("n"), str):
        raise QuoteNotFound("报价单链接无效 (invalid quote link)")
    async with rt.db.read() as conn:
        found = await _load(conn, rt, int(payload["q"]))
    if found.number != payload["n"] or found.status in (S.PENDING_APPROVAL, S.REJECTED, S.CANCELLED):
        raise QuoteNotFound("报价单链接无效 (invalid quote link)")
    return found


def assert_sendable(found: QuoteView) -> None:
    """The salesperson may send it into the chat: not waiting for approval, not expired, not closed."""
    if found.status == S.PENDING_APPROVAL:
        raise QuoteAwaitingApproval(f"报价单 {found.number} 正在等待审批，审批通过后才能发送 (awaiting approval)", number=found.number)
    if found.status not in (S.OPEN, S.ACCEPTED):
        raise QuoteNotOpen(f"报价单 {found.number} 已{_zh(found.status)}，不能发送 (quote is {found.status})", number=found.number)
    if found.status == S.OPEN and found.expired:
        raise QuoteExpired(f"报价单 {found.number} 已过期，请重新报价 (quote expired)", number=found.number)


async def move_to_surviving_customer(rt: Runtime, *, from_customer: int, into_customer: int) -> None:
    """Two customer records turned out to be one person: the merged record's quotes follow the survivor."""
    async with rt.db.write() as conn:
        await conn.execute(quotes.update().where(Q.customer_id == from_customer).values(customer_id=into_customer))
