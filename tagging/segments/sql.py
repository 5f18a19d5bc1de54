"""Segment expressions compiled to SQL: a parsed tree (:mod:`tagging.segments.syntax`) becomes a SQLAlchemy
condition over ``customers`` (EXISTS sub-queries into tags, RFM, activity, groups, follows). Every value is a bound
parameter, never text in the SQL; merged-away customers never match.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import FollowStatus, customers, follows
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.models import salespeople
from scrm.crm.tags.models import customer_tags, tag_groups, tags
from tagging.activity.models import customer_activity
from tagging.rfm.models import customer_order_stats, customer_rfm
from tagging.segments.syntax import MEMBERSHIP, And, Cond, Node, Not

# ---- compiling --------------------------------------------------------------------------------------------
_OPS = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "=": "__eq__", "!=": "__ne__"}


def _compare(left: Any, op: str, value: Any) -> Any:
    return getattr(left, _OPS[op])(value)


def _own(column: Any, above: int | None) -> Any:
    """The correlation of a sub-query's ``customer_id`` with the outer customer — and, when the outer query is a
    keyset page (``customers.id > above``), the same bound on the sub-query's own column. The bound changes no
    answer (the outer id is above it anyway), but PostgreSQL does not carry an inequality across a join: without
    it a merge (anti-)join reads its inner index from the start up to the page, so page k costs k pages and
    paging a whole segment is quadratic."""
    own = column == customers.c.id
    return own if above is None else sa.and_(own, column > above)


def _active_after(at: dt.datetime, strict: bool, above: int | None) -> Any:
    """last_active > at (strict) or ≥ at: a message, an order, or being first seen then or later."""
    ca, c = customer_activity.c, customers.c

    def after(col: Any) -> Any:
        return col > at if strict else col >= at

    recent = sa.select(sa.literal(1)).where(_own(ca.customer_id, above), sa.or_(after(ca.last_message_at), after(ca.last_order_at)))
    return sa.or_(after(c.first_seen_at), sa.exists(recent))


def _since(column_after: Any, op: str, ago: dt.timedelta, now: dt.datetime) -> Any:
    """``time since X  op  ago``: less time since ⇔ X after the cut (``column_after(cut, strict)``)."""
    cut = now - ago
    return {
        "<": lambda: column_after(cut, True),
        "<=": lambda: column_after(cut, False),
        ">": lambda: ~column_after(cut, False),
        ">=": lambda: ~column_after(cut, True),
    }[op]()


def _membership(field: str, value: str, above: int | None) -> Any:
    if field == "tag":
        ct, t, g = customer_tags.c, tags.c, tag_groups.c
        group, _, name = value.partition("/")
        named = sa.or_(t.name == value, sa.and_(g.name == group, t.name == name)) if name else t.name == value
        q = sa.select(sa.literal(1)).select_from(customer_tags.join(tags, t.id == ct.tag_id).join(tag_groups, g.id == t.group_id))
        return sa.exists(q.where(_own(ct.customer_id, above), t.deleted_at.is_(None), named))
    if field in ("rfm", "activity"):
        table = customer_rfm if field == "rfm" else customer_activity
        return sa.exists(sa.select(sa.literal(1)).where(_own(table.c.customer_id, above), table.c.segment == value))
    if field == "group":
        gm, gr = group_members.c, groups.c
        q = sa.select(sa.literal(1)).select_from(group_members.join(groups, gr.chat_id == gm.chat_id))
        alive = sa.and_(gm.active.is_(True), gr.dismissed_at.is_(None))
        return sa.exists(q.where(_own(gm.customer_id, above), alive, sa.or_(gr.name == value, gr.chat_id == value)))
    f = follows.c
    if field == "channel":
        states = sa.select(channel_codes.c.state).where(channel_codes.c.name == value)
        return sa.exists(sa.select(sa.literal(1)).where(_own(f.customer_id, above), sa.or_(f.state == value, f.state.in_(states))))
    by_name = sa.select(salespeople.c.userid).where(salespeople.c.name == value)
    return sa.exists(
        sa.select(sa.literal(1)).where(
            _own(f.customer_id, above), f.status != FollowStatus.ENDED, sa.or_(f.userid == value, f.userid.in_(by_name))
        )
    )


def _condition(cond: Cond, now: dt.datetime, above: int | None) -> Any:
    c = customers.c
    if cond.field in MEMBERSHIP:
        return _membership(cond.field, cond.value, above)
    if cond.field == "last_active":
        return _since(lambda at, strict: _active_after(at, strict, above), cond.op, cond.value, now)
    if cond.field == "first_seen":
        return _since(lambda at, strict: c.first_seen_at > at if strict else c.first_seen_at >= at, cond.op, cond.value, now)
    if cond.field in ("orders", "spent"):
        s = customer_order_stats.c
        column = s.orders if cond.field == "orders" else s.monetary_fen
        own = sa.select(column).where(s.customer_id == c.id).scalar_subquery()
        return _compare(sa.func.coalesce(own, 0), cond.op, cond.value)
    score = sa.select(customer_rfm.c[cond.field]).where(customer_rfm.c.customer_id == c.id).scalar_subquery()
    return _compare(score, cond.op, cond.value)


def compile_condition(node: Node, now: dt.datetime, *, above: int | None = None) -> Any:
    """The WHERE condition over ``customers`` for a parsed expression (bound parameters only). ``above``: the
    query also keeps ``customers.id > above`` (a keyset page), and every correlated sub-query gets the same bound
    (see :func:`_own`)."""
    if isinstance(node, Cond):
        return _condition(node, now, above)
    if isinstance(node, Not):
        return sa.not_(compile_condition(node.item, now, above=above))
    parts = [compile_condition(n, now, above=above) for n in node.items]
    return sa.and_(*parts) if isinstance(node, And) else sa.or_(*parts)


def segment_select(node: Node, now: dt.datetime, *, above: int | None = None) -> Any:
    """SELECT customers.id of every current (not merged-away) customer the expression picks, id order; with
    ``above``, only those with a greater id — a keyset page that costs the same wherever it is in the segment."""
    q = sa.select(customers.c.id).where(customers.c.merged_into.is_(None), compile_condition(node, now, above=above))
    return q.order_by(customers.c.id) if above is None else q.where(customers.c.id > above).order_by(customers.c.id)
