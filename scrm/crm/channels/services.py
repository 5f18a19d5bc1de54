"""Channel codes (渠道活码): the rows, their validation, and per-channel stats from the follows they brought.

Making the WeCom contact way (add_contact_way) is the WeCom side's job (``bots/contacts/channel_codes.py``): the
composition root installs it as the :data:`CHANNEL_CODES` :class:`ChannelCodeManager`, so the API and the console
reach it without scrm/ importing bots/.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core.clock import SHANGHAI
from scrm.core.errors import InvalidInput, NotFound, ServiceUnavailable
from scrm.core.ids import short_id
from scrm.core.runtime import ResourceKey, Runtime
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import follows
from scrm.crm.tags.services import get_tag

MAX_STATE = 30  # WeCom refuses a contact way whose state is longer
MAX_USERS = 100


@dataclass(frozen=True)
class ChannelInfo:
    id: int
    name: str
    state: str
    kind: str
    welcome_text: str
    tag_ids: list[int]
    userids: list[str]


async def channel_for_state(conn: AsyncConnection, state: str) -> ChannelInfo | None:
    """The channel code whose contact way carries ``state`` (from add_external_contact), if any."""
    if not state:
        return None
    row = (await conn.execute(sa.select(channel_codes).where(channel_codes.c.state == state))).first()
    if row is None:
        return None
    return ChannelInfo(int(row.id), row.name, row.state, row.kind, row.welcome_text, [int(t) for t in row.tag_ids], list(row.userids))


@dataclass(frozen=True)
class ChannelCode:
    id: int
    name: str
    state: str
    config_id: str | None
    qr_code: str | None
    userids: list[str]
    welcome_text: str
    tag_ids: list[int]
    kind: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(created_at=self.created_at.isoformat(), updated_at=self.updated_at.isoformat())
        return out


def new_state(prefix: str = "ch-") -> str:
    """A fresh, unique-enough state (≤ 30 chars); the table's unique key has the last word."""
    state = prefix + short_id(12)
    assert len(state) <= MAX_STATE
    return state


def _code(r: Any) -> ChannelCode:
    return ChannelCode(
        int(r.id),
        r.name,
        r.state,
        r.config_id,
        r.qr_code,
        list(r.userids),
        r.welcome_text,
        [int(t) for t in r.tag_ids],
        r.kind,
        bool(r.active),
        r.created_at,
        r.updated_at,
    )


async def get_channel_code(conn: AsyncConnection, code_id: int) -> ChannelCode:
    row = (await conn.execute(sa.select(channel_codes).where(channel_codes.c.id == code_id))).first()
    if row is None:
        raise NotFound("没有这个渠道活码 (no such channel code)", id=code_id)
    return _code(row)


async def list_channel_codes(conn: AsyncConnection, *, kind: str | None = "channel", active: bool | None = None) -> list[ChannelCode]:
    """Newest first."""
    q = sa.select(channel_codes).order_by(channel_codes.c.id.desc())
    if kind is not None:
        q = q.where(channel_codes.c.kind == kind)
    if active is not None:
        q = q.where(channel_codes.c.active == active)
    return [_code(r) for r in await conn.execute(q)]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 64:
        raise InvalidInput("渠道名称需为 1 到 64 个字 (name is 1–64 characters)", field="name")
    return name.strip()


def check_userids(userids: Any) -> list[str]:
    ok = isinstance(userids, list) and 0 < len(userids) <= MAX_USERS
    ok = ok and all(isinstance(u, str) and 0 < len(u.strip()) <= 64 for u in userids)
    if not ok:
        raise InvalidInput(f"userids 需为 1 到 {MAX_USERS} 个成员账号 (userids: 1–{MAX_USERS} member userids)", field="userids")
    return list(dict.fromkeys(u.strip() for u in userids))


def check_welcome_text(text: Any) -> str:
    if not isinstance(text, str) or len(text) > 1000:
        raise InvalidInput("欢迎语不能超过 1000 字 (welcome_text ≤ 1000 characters)", field="welcome_text")
    return text.strip()


async def check_tag_ids(conn: AsyncConnection, tag_ids: Any) -> list[int]:
    """The auto-tags must exist (mirrored or local-only)."""
    if not isinstance(tag_ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tag_ids) or len(tag_ids) > 50:
        raise InvalidInput("tag_ids 需为标签编号数组 (tag_ids must be a list of tag ids)", field="tag_ids")
    for tag_id in tag_ids:
        await get_tag(conn, tag_id)
    return list(dict.fromkeys(tag_ids))


async def insert_channel_code(
    conn: AsyncConnection,
    *,
    name: str,
    state: str,
    userids: list[str],
    welcome_text: str,
    tag_ids: list[int],
    now: dt.datetime,
    kind: str = "channel",
) -> int:
    q = channel_codes.insert().values(
        name=name,
        state=state,
        userids=userids,
        welcome_text=welcome_text,
        tag_ids=tag_ids,
        kind=kind,
        active=True,
        created_at=now,
        updated_at=now,
    )
    return int((await conn.execute(q.returning(channel_codes.c.id))).scalar_one())


async def update_channel_row(conn: AsyncConnection, code_id: int, now: dt.datetime, **values: Any) -> None:
    await conn.execute(channel_codes.update().where(channel_codes.c.id == code_id).values(updated_at=now, **values))


async def delete_channel_row(conn: AsyncConnection, code_id: int) -> None:
    await conn.execute(channel_codes.delete().where(channel_codes.c.id == code_id))


class ChannelCodeManager(Protocol):
    """Creates and changes channel codes together with their WeCom contact way. Arguments may come straight from
    JSON: the manager validates them (InvalidInput / NotFound)."""

    async def create(self, rt: Any, *, name: str, userids: Any, welcome_text: Any, tag_ids: Any) -> ChannelCode: ...

    async def update(self, rt: Any, code_id: int, changes: dict[str, Any]) -> ChannelCode: ...

    async def deactivate(self, rt: Any, code_id: int) -> ChannelCode: ...


# The WeCom side (bots.contacts.channel_codes) makes the contact ways; the composition root installs it when
# WeCom is configured.
CHANNEL_CODES: ResourceKey[ChannelCodeManager] = ResourceKey("channel_code_manager")


def channel_code_manager(rt: Runtime) -> ChannelCodeManager:
    if not rt.has(CHANNEL_CODES):
        raise ServiceUnavailable("未连接企业微信，无法生成渠道活码 (WeCom is not configured)")
    return rt.get(CHANNEL_CODES)


# ---- stats ------------------------------------------------------------------------------------------------
@dataclass
class DayStats:
    day: dt.date
    adds: int = 0
    deleted_by_customer: int = 0  # 客户删除了销售 (del_follow_user)
    deleted_by_salesperson: int = 0  # 销售删除了客户 (del_external_contact)
    deleted_other: int = 0  # transfers, or an end the sync found without knowing who

    @property
    def deletes(self) -> int:
        return self.deleted_by_customer + self.deleted_by_salesperson + self.deleted_other

    @property
    def net(self) -> int:
        return self.adds - self.deletes

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "adds": self.adds,
            "deletes": self.deletes,
            "deleted_by_customer": self.deleted_by_customer,
            "deleted_by_salesperson": self.deleted_by_salesperson,
            "deleted_other": self.deleted_other,
            "net": self.net,
        }


@dataclass
class ChannelStats:
    total: DayStats
    active: int  # follows from this channel still in place
    days: list[DayStats] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        total = self.total.to_json()
        total.pop("day")
        return {**total, "active": self.active, "days": [d.to_json() for d in self.days]}


async def channel_stats(conn: AsyncConnection, state: str, *, since: dt.date | None = None, until: dt.date | None = None) -> ChannelStats:
    """Adds and deletes of the follows that began with this channel's state, per business day (Asia/Shanghai),
    optionally limited to ``since``..``until`` (inclusive). A follow re-added after a delete is one row in
    ``follows`` (its latest start and end), so a churn-and-return counts once."""
    rows = await conn.execute(
        sa.select(follows.c.started_at, follows.c.ended_at, follows.c.ended_by, follows.c.status).where(follows.c.state == state)
    )
    days: dict[dt.date, DayStats] = {}
    total = DayStats(dt.date.min)
    active = 0

    def bucket(at: dt.datetime) -> DayStats | None:
        day = at.astimezone(SHANGHAI).date()
        if (since and day < since) or (until and day > until):
            return None
        return days.setdefault(day, DayStats(day))

    for r in rows:
        if r.ended_at is None:
            active += 1
        if (b := bucket(r.started_at)) is not None:
            b.adds += 1
            total.adds += 1
        if r.ended_at is not None and (b := bucket(r.ended_at)) is not None:
            attr = {"customer": "deleted_by_customer", "salesperson": "deleted_by_salesperson"}.get(r.ended_by or "", "deleted_other")
            setattr(b, attr, getattr(b, attr) + 1)
            setattr(total, attr, getattr(total, attr) + 1)
    return ChannelStats(total, active, [days[d] for d in sorted(days)])


@dataclass(frozen=True)
class ChannelTotals:
    adds: int  # follows that began with the channel's state (a re-add after a delete is one follow)
    active: int  # of them still in place
    deletes: int  # of them ended, by either side


async def channel_totals(conn: AsyncConnection, states: list[str]) -> dict[str, ChannelTotals]:
    """All-time totals for several channels in one grouped read (the list page); :func:`channel_stats` for one
    channel's days."""
    if not states:
        return {}
    f = follows.c
    rows = await conn.execute(
        sa.select(
            f.state,
            sa.func.count(),
            sa.func.sum(sa.case((f.ended_at.is_(None), 1), else_=0)),
        )
        .where(f.state.in_(states))
        .group_by(f.state)
    )
    totals = {r[0]: ChannelTotals(int(r[1]), int(r[2] or 0), int(r[1]) - int(r[2] or 0)) for r in rows}
    return {state: totals.get(state, ChannelTotals(0, 0, 0)) for state in states}
