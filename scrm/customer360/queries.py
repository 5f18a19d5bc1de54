"""What the sidebar shows: who may see which customer or group, the customer 360 (tags with why, orders, timeline,
notes), the group view and the order form's products. Plain async functions over the runtime; no aiohttp here.

Authorisation is decided here and nowhere else: a salesperson sees a customer only through their own follow
(status active or half) and a group only as its owner or a current member.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fulfillment.billing.receivables import customer_balance
from fulfillment.catalog import services as catalog
from fulfillment.inventory import services as inventory
from fulfillment.orders.domain import STATUS_ZH
from fulfillment.orders.models import OrderStatus
from fulfillment.orders.models import orders as orders_table
from fulfillment.orders.queries import OrderView, orders_of_customer
from scrm.core.clock import local
from scrm.core.runtime import Runtime
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.customers.services import NOTE_MAX_CHARS, Note, get_customer, identities_of, notes_of, resolve_customer
from scrm.crm.customers.services import add_note as add_customer_note
from scrm.crm.groups.models import group_daily_stats, group_members, groups
from scrm.crm.staff.models import salespeople
from scrm.crm.staff.services import follow_of
from scrm.crm.tags.models import TagSource, tag_groups, tags
from scrm.crm.tags.services import tags_of
from scrm.crm.timeline.services import Kind, entries
from tagging.activity.models import customer_activity
from tagging.rfm.services import rfm_of

VISIBLE_FOLLOW = (FollowStatus.ACTIVE, FollowStatus.HALF)
# "Open orders" until receivables exist: confirmed and not yet completed (shipped goods are not yet settled).
OPEN_ORDER_STATUSES = (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED)
TIMELINE_LIMIT = 30
NOTES_LIMIT = 20
ORDERS_LIMIT = 20
NOTE_MAX = NOTE_MAX_CHARS
GENDER_ZH = {0: "未知", 1: "男", 2: "女"}
ADD_WAY_ZH = {  # externalcontact/get follow_user.add_way (doc 92114)
    0: "未知来源",
    1: "扫描二维码",
    2: "搜索手机号",
    3: "名片分享",
    4: "群聊",
    5: "手机通讯录",
    6: "微信联系人",
    9: "搜索邮箱",
    10: "视频号",
    16: "获客链接",
    201: "内部成员共享",
    202: "管理员/负责人分配",
}
KIND_ZH = {
    Kind.MESSAGE: "消息",
    Kind.EVENT: "事件",
    Kind.ORDER: "订单",
    Kind.PAYMENT: "付款",
    Kind.TAG: "标签",
    Kind.COUPON: "优惠券",
    Kind.NOTE: "备注",
    Kind.GROUP: "群",
}
SOURCE_ZH = {
    TagSource.MANUAL: "手动",
    TagSource.WECOM: "企业微信",
    TagSource.CHANNEL: "渠道码",
    TagSource.RULE: "规则",
    TagSource.CAMPAIGN: "活动",
}


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


# ---- who may see what -------------------------------------------------------------------------------------
async def followed_customer(conn: AsyncConnection, userid: str, external_userid: str) -> int | None:
    """The customer behind ``external_userid`` if ``userid`` follows them (active or half), else None — the caller
    answers the same 403 whether the customer is someone else's or unknown. A merged customer resolves to the
    survivor."""
    follow = await follow_of(conn, userid, external_userid)
    if follow is None or follow.status not in VISIBLE_FOLLOW:
        return None
    return await resolve_customer(conn, follow.customer_id)


async def may_see_group(conn: AsyncConnection, userid: str, chat_id: str) -> bool:
    """True when ``userid`` owns the group or is a current member of it."""
    owner = (await conn.execute(sa.select(groups.c.owner_userid).where(groups.c.chat_id == chat_id))).first()
    if owner is None:
        return False
    if owner.owner_userid == userid:
        return True
    member = (
        await conn.execute(
            sa.select(group_members.c.member_id).where(
                group_members.c.chat_id == chat_id,
                group_members.c.member_id == userid,
                group_members.c.member_type == 1,
                group_members.c.active.is_(True),
            )
        )
    ).first()
    return member is not None


# ---- tags and why -------------------------------------------------------------------------------------------
def _clip(text: str, limit: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tag_reason(source: str, evidence: dict[str, Any], people: dict[str, str], channels: dict[str, str]) -> str:
    """Why a customer carries a tag, in Chinese: "渠道码 展会", "规则 意向-高：消息“…”中的“报价”",
    "销售 张三 手动添加", "企业微信同步". ``people`` maps userids to names, ``channels`` states to channel names."""
    if source == TagSource.MANUAL:
        by = str(evidence.get("by") or "")
        if by.startswith("console:"):
            return f"控制台 {by.removeprefix('console:')} 手动添加"
        return f"销售 {people.get(by, by)} 手动添加" if by else "手动添加"
    if source == TagSource.CHANNEL:
        state = str(evidence.get("channel") or evidence.get("state") or "")
        name = evidence.get("channel_name") or channels.get(state, state)
        return f"渠道码 {name}" if name else "渠道码"
    if source == TagSource.RULE:
        rule = str(evidence.get("rule") or "")
        words = evidence.get("words") or []
        words_text = "、".join(f"“{w}”" for w in ([words] if isinstance(words, str) else words))
        text = evidence.get("text") or evidence.get("excerpt") or ""
        head = f"规则 {rule}" if rule else "规则"
        if text and words_text:
            return f"{head}：消息“{_clip(str(text))}”中的{words_text}"
        return f"{head}：命中{words_text}" if words_text else head
    if source == TagSource.WECOM:
        return "企业微信同步"
    if source == TagSource.CAMPAIGN:
        name = evidence.get("campaign_name") or evidence.get("campaign") or ""
        return f"活动 {name}" if name else "活动"
    return source


async def _names(conn: AsyncConnection, userids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({u for u in userids if u})
    if not wanted:
        return {}
    rows = await conn.execute(sa.select(salespeople.c.userid, salespeople.c.name).where(salespeople.c.userid.in_(wanted)))
    return {r.userid: r.name or r.userid for r in rows}


async def _channel_names(conn: AsyncConnection, states: Iterable[str]) -> dict[str, str]:
    wanted = sorted({s for s in states if s})
    if not wanted:
        return {}
    rows = await conn.execute(sa.select(channel_codes.c.state, channel_codes.c.name).where(channel_codes.c.state.in_(wanted)))
    return {r.state: r.name for r in rows}


async def available_tags(rt: Runtime) -> list[dict[str, Any]]:
    """Every live tag a salesperson may put on a customer, grouped as in WeCom."""
    async with rt.db.read() as conn:
        rows = await conn.execute(
            sa.select(tags.c.id, tags.c.name, tag_groups.c.name.label("group_name"))
            .join(tag_groups, tag_groups.c.id == tags.c.group_id)
            .where(tags.c.deleted_at.is_(None), tag_groups.c.deleted_at.is_(None))
            .order_by(tag_groups.c.sort, tag_groups.c.id, tags.c.sort, tags.c.id)
        )
        return [{"tag_id": int(r.id), "name": r.name, "group": r.group_name} for r in rows]


async def customer_tags_json(conn: AsyncConnection, customer_id: int) -> list[dict[str, Any]]:
    applied = await tags_of(conn, customer_id)
    people = await _names(conn, [str(t.evidence.get("by") or "") for t in applied])
    channels = await _channel_names(conn, [str(t.evidence.get("channel") or t.evidence.get("state") or "") for t in applied])
    return [
        {
            "tag_id": t.tag_id,
            "name": t.name,
            "group": t.group,
            "source": t.source,
            "source_zh": SOURCE_ZH.get(t.source, t.source),
            "why": tag_reason(t.source, t.evidence, people, channels),
            "applied_at": _iso(t.applied_at),
        }
        for t in applied
    ]


# ---- the customer 360 ---------------------------------------------------------------------------------------
def order_json(order: OrderView) -> dict[str, Any]:
    return {
        "number": order.number,
        "status": order.status,
        "status_zh": STATUS_ZH.get(order.status, order.status),
        "total_fen": order.total_fen,
        "source": order.source,
        "created_at": _iso(order.created_at),
        "lines": [
            {
                "sku": ln.sku,
                "name": ln.name,
                "unit": ln.unit,
                "qty": ln.qty,
                "line_total_fen": ln.line_total_fen,
                "backordered_qty": ln.backordered_qty,
            }
            for ln in order.lines
        ],
        "tracking_numbers": [f"{s.carrier} {s.tracking_no}".strip() for s in order.shipments if s.status != "cancelled"],
    }


async def _open_orders_fen(conn: AsyncConnection, customer_id: int) -> int:
    # A read-only sum in the composing layer; fulfilment has no service for it yet (receivables will replace it).
    q = sa.select(sa.func.coalesce(sa.func.sum(orders_table.c.total_fen), 0)).where(
        orders_table.c.customer_id == customer_id, orders_table.c.status.in_(OPEN_ORDER_STATUSES)
    )
    return int((await conn.execute(q)).scalar_one())


async def _profile(conn: AsyncConnection, userid: str, customer_id: int, external_userid: str) -> dict[str, Any]:
    c = await get_customer(conn, customer_id)
    f = await follow_of(conn, userid, external_userid)
    channel = (await _channel_names(conn, [f.state])).get(f.state, "") if f is not None and f.state else ""
    return {
        "external_userid": external_userid,
        "name": c.name,
        "avatar": c.avatar,
        "gender": c.gender,
        "gender_zh": GENDER_ZH.get(c.gender, "未知"),
        "corp_name": c.corp_name,
        "remark": f.remark if f is not None else "",
        "description": f.description if f is not None else "",
        "follow_status": f.status if f is not None else None,
        "follow_since": _iso(f.started_at) if f is not None else None,
        "add_way_zh": ADD_WAY_ZH.get(f.add_way, "其他") if f is not None else "",
        "channel": channel or (f.state if f is not None else ""),
        "first_seen_at": _iso(c.first_seen_at),
        "last_seen_at": _iso(c.last_seen_at),
    }


def _note_json(n: Note, names: dict[str, str]) -> dict[str, Any]:
    return {"id": n.id, "author": n.author, "author_name": names.get(n.author, n.author), "body": n.body, "created_at": _iso(n.created_at)}


async def notes_json(conn: AsyncConnection, customer_id: int) -> list[dict[str, Any]]:
    notes = await notes_of(conn, customer_id, limit=NOTES_LIMIT)
    names = await _names(conn, [n.author for n in notes])
    return [_note_json(n, names) for n in notes]


async def customer_360(rt: Runtime, userid: str, customer_id: int, external_userid: str) -> dict[str, Any]:
    """Everything the sidebar shows about a customer the caller follows (checked by the caller)."""
    async with rt.db.read() as conn:
        profile = await _profile(conn, userid, customer_id, external_userid)
        identities = await identities_of(conn, customer_id)
        tag_list = await customer_tags_json(conn, customer_id)
        timeline = [
            {"at": _iso(e.at), "kind": e.kind, "kind_zh": KIND_ZH.get(e.kind, e.kind), "title": e.title, "body": e.body}
            for e in await entries(conn, customer_id, limit=TIMELINE_LIMIT)
        ]
        notes = await notes_json(conn, customer_id)
        open_fen = await _open_orders_fen(conn, customer_id)
        memberships = (
            await conn.execute(
                sa.select(groups.c.chat_id, groups.c.name)
                .join(group_members, group_members.c.chat_id == groups.c.chat_id)
                .where(group_members.c.customer_id == customer_id, group_members.c.active.is_(True), groups.c.dismissed_at.is_(None))
                .order_by(groups.c.name)
            )
        ).all()
        segment, rfm = await segment_and_rfm(conn, customer_id, local(rt.clock.now()).date())
    order_list = await orders_of_customer(rt, customer_id, limit=ORDERS_LIMIT)
    balance = await customer_balance(rt, customer_id)
    return {
        "customer": profile,
        "identities": identities,
        "tags": tag_list,
        "segment": segment,  # activity segment (new / active / silent / churn risk / lost), in Chinese
        "rfm": rfm,
        "timeline": timeline,
        "orders": [order_json(o) for o in order_list],
        "open_orders_fen": open_fen,
        "balance_due_fen": balance.open_fen,  # 应收: open invoice balances
        "overdue_fen": balance.overdue_fen,
        "oldest_due_on": balance.oldest_due_on.isoformat() if balance.oldest_due_on else None,
        "notes": notes,
        "groups": [{"chat_id": g.chat_id, "name": g.name} for g in memberships],
    }


# ---- groups -------------------------------------------------------------------------------------------------
async def group_view(rt: Runtime, userid: str, chat_id: str, *, days: int = 7) -> dict[str, Any]:
    """A group the caller owns or is in (checked by the caller): who is in it, which members are customers (and
    whether the caller follows them), and recent activity."""
    async with rt.db.read() as conn:
        g = (await conn.execute(sa.select(groups).where(groups.c.chat_id == chat_id))).one()
        members = (
            await conn.execute(
                sa.select(group_members)
                .where(group_members.c.chat_id == chat_id, group_members.c.active.is_(True))
                .order_by(group_members.c.member_type, group_members.c.joined_at, group_members.c.member_id)
            )
        ).all()
        mine = {
            r.external_userid
            for r in await conn.execute(
                sa.select(follows.c.external_userid).where(follows.c.userid == userid, follows.c.status.in_(VISIBLE_FOLLOW))
            )
        }
        stats = (
            await conn.execute(
                sa.select(group_daily_stats)
                .where(group_daily_stats.c.chat_id == chat_id)
                .order_by(group_daily_stats.c.day.desc())
                .limit(days)
            )
        ).all()
        moves = (
            await conn.execute(
                sa.select(group_members.c.name, group_members.c.joined_at, group_members.c.left_at)
                .where(group_members.c.chat_id == chat_id)
                .order_by(sa.func.coalesce(group_members.c.left_at, group_members.c.joined_at).desc())
                .limit(10)
            )
        ).all()
        names = await _names(conn, [g.owner_userid])
    recent = []
    for m in moves:
        if m.left_at is not None:
            recent.append({"name": m.name, "event": "leave", "event_zh": "退群", "at": _iso(m.left_at)})
        elif m.joined_at is not None:
            recent.append({"name": m.name, "event": "join", "event_zh": "入群", "at": _iso(m.joined_at)})
    return {
        "group": {
            "chat_id": g.chat_id,
            "name": g.name,
            "owner_userid": g.owner_userid,
            "owner_name": names.get(g.owner_userid, g.owner_userid),
            "notice": g.notice,
            "member_count": int(g.member_count),
            "created_at": _iso(g.created_at),
            "dismissed": g.dismissed_at is not None,
        },
        "members": [
            {
                "name": m.name or ("客户" if m.member_type == 2 else m.member_id),
                "is_customer": m.member_type == 2,
                "followed_by_me": m.member_type == 2 and m.member_id in mine,
                # Only a customer the caller follows is opened in the 360; others stay names.
                "external_userid": m.member_id if m.member_type == 2 and m.member_id in mine else None,
                "joined_at": _iso(m.joined_at),
                "last_active_at": _iso(m.last_active_at),
            }
            for m in members
        ],
        "activity": {
            "days": [
                {
                    "day": s.day.isoformat(),
                    "joins": s.joins,
                    "leaves": s.leaves,
                    "messages": s.messages,
                    "active_members": s.active_members,
                }
                for s in stats
            ],
            "recent": recent,
        },
    }


# ---- order form and notes -----------------------------------------------------------------------------------
async def order_products(rt: Runtime) -> list[dict[str, Any]]:
    """Active products with what is available to promise, for the sidebar's order form."""
    async with rt.db.read() as conn:
        out = []
        for p in await catalog.list_products(conn):
            level = await inventory.level(conn, rt.db.dialect, p.id)
            out.append({"sku": p.sku, "name": p.name, "unit": p.unit, "price_fen": p.price_fen, "available": level.available})
        return out


async def add_note(rt: Runtime, *, customer_id: int, author: str, body: str) -> dict[str, Any]:
    """Write a note on a customer with its timeline entry (the customers service); returns it as the page shows it."""
    note = await add_customer_note(rt, customer_id, author, body)
    async with rt.db.read() as conn:
        names = await _names(conn, [author])
    return _note_json(note, names)


ACTIVITY_ZH = {"new": "新客户", "active": "活跃", "silent": "沉默", "churn_risk": "流失风险", "lost": "已流失"}


async def segment_and_rfm(conn: Any, customer_id: int, today: dt.date) -> tuple[str | None, dict[str, Any] | None]:
    """The customer's activity segment and RFM scores as last computed (None until the first computation);
    recency is counted up to today (business date)."""

    act = (await conn.execute(sa.select(customer_activity.c.segment).where(customer_activity.c.customer_id == customer_id))).first()
    view = await rfm_of(conn, customer_id, today)
    rfm = None
    if view is not None:
        rfm = {
            "segment": view.segment,
            "r": int(view.r),
            "f": int(view.f),
            "m": int(view.m),
            "recency_days": int(view.recency_days),
            "frequency": int(view.frequency),
            "monetary_fen": int(view.monetary_fen),
            "computed_on": view.computed_on.isoformat(),
        }
    return (ACTIVITY_ZH.get(act.segment, act.segment) if act else None), rfm
