"""Referral campaigns (裂变) — the campaigns and the inviters' personal codes: definitions, status changes, the
code (a WeCom 联系我 contact way, or for a group campaign a group join way) made lazily and reused, and the
helpers every referral transaction shares (the code-row lock, the qualified count, progress notices).
Part of :mod:`scrm.campaigns.referral` (the public import path)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.campaigns.attention import raise_attention
from scrm.campaigns.coupons.models import coupon_templates
from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.domain import CampaignStatus
from scrm.campaigns.referral.models import InviteStatus, ReferralKind, referral_campaigns, referral_codes, referral_invites
from scrm.core import outbox
from scrm.core.db import insert_ignore
from scrm.core.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from scrm.core.ids import short_id
from scrm.core.runtime import ResourceKey, Runtime
from scrm.crm.customers.models import customers
from scrm.crm.customers.services import resolve_customer
from scrm.crm.tags.services import get_tag
from tagging.segments import services as segments
from tagging.segments.syntax import SegmentSyntaxError

log = logging.getLogger(__name__)

PROGRESS_TOPIC = "referral.progress"  # {"customer_id", "campaign_id", "text", "key"}: tell the inviter
GOAL_TOPIC = "referral.goal_check"  # {"campaign_id", "inviter"}: grant or claw back the reward
CAMPAIGN_COLUMNS = (
    "name", "goal", "reward_template_id", "reward_tag_id", "eligible_segment", "userids", "poster_text", "hold_hours", "kind", "chat_ids",
)  # fmt: skip
EDITABLE_WHILE_LIVE = {"name", "poster_text", "ends_at", "eligible_segment", "reward_template_id", "reward_tag_id"}


# ---- how contact ways are made: the WeCom side's makers, installed by the composition root (scrm/ does not import bots/)
class ContactWayMaker(Protocol):
    async def create(self, rt: Runtime, *, state: str, userids: list[str], remark: str) -> tuple[str, str]: ...
    async def delete(self, rt: Runtime, config_id: str) -> None: ...


CONTACT_WAY_MAKER: ResourceKey[ContactWayMaker] = ResourceKey("referral_contact_way_maker")


def contact_way_maker(rt: Runtime) -> ContactWayMaker:
    if not rt.has(CONTACT_WAY_MAKER):
        raise ServiceUnavailable("未连接企业微信，无法生成邀请码 (WeCom is not configured)")
    return rt.get(CONTACT_WAY_MAKER)


class JoinWayMaker(Protocol):
    """加入群聊 codes for group campaigns: ``create`` makes a QR-code join way into ``chat_ids`` carrying ``state``
    and returns (config_id, qr_code); ``delete`` removes one (gone already is fine)."""

    async def create(self, rt: Runtime, *, state: str, chat_ids: list[str], remark: str) -> tuple[str, str]: ...
    async def delete(self, rt: Runtime, config_id: str) -> None: ...


JOIN_WAY_MAKER: ResourceKey[JoinWayMaker] = ResourceKey("referral_join_way_maker")


def join_way_maker(rt: Runtime) -> JoinWayMaker:
    if not rt.has(JOIN_WAY_MAKER):
        raise ServiceUnavailable("未连接企业微信，无法生成入群码 (WeCom is not configured)")
    return rt.get(JOIN_WAY_MAKER)


async def delete_code_way(rt: Runtime, kind: str, config_id: str) -> None:
    """Delete a code's WeCom side: the contact way, or for a group campaign the join way."""
    maker = join_way_maker(rt) if kind == ReferralKind.GROUP else contact_way_maker(rt)
    await maker.delete(rt, config_id)


# ---- campaigns ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    goal: int
    reward_template_id: int | None
    reward_tag_id: int | None
    eligible_segment: str
    userids: list[str]
    poster_text: str
    hold_hours: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    kind: str = ReferralKind.CONTACT
    chat_ids: tuple[str, ...] = ()  # group campaign: the groups its join codes lead into

    def to_json(self) -> dict[str, Any]:
        out = {**asdict(self), "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat()}
        return {**out, "chat_ids": list(self.chat_ids)}


def _campaign(r: Any) -> Campaign:
    return Campaign(
        int(r.id),
        r.name,
        int(r.goal),
        r.reward_template_id,
        r.reward_tag_id,
        r.eligible_segment,
        list(r.userids),
        r.poster_text,
        int(r.hold_hours),
        r.starts_at,
        r.ends_at,
        r.status,
        r.kind,
        tuple(r.chat_ids or ()),
    )


async def get_campaign(conn: AsyncConnection, campaign_id: int) -> Campaign:
    row = (await conn.execute(sa.select(referral_campaigns).where(referral_campaigns.c.id == campaign_id))).first()
    if row is None:
        raise NotFound("没有这个裂变活动 (no such referral campaign)", id=campaign_id)
    return _campaign(row)


async def list_campaigns(conn: AsyncConnection) -> list[Campaign]:
    return [_campaign(r) for r in await conn.execute(sa.select(referral_campaigns).order_by(referral_campaigns.c.id.desc()))]


async def _check_reward(conn: AsyncConnection, values: dict[str, Any]) -> None:

    if values.get("reward_template_id") is not None:
        q = sa.select(coupon_templates.c.id).where(coupon_templates.c.id == values["reward_template_id"])
        if (await conn.execute(q)).first() is None:
            raise NotFound("没有这个优惠券模板 (no such coupon template)", field="reward_template_id")
    if values.get("reward_tag_id") is not None:
        await get_tag(conn, values["reward_tag_id"])


async def create_campaign(rt: Runtime, data: dict[str, Any]) -> Campaign:
    """Create a campaign (status draft, or running when ``data["status"] == "running"``). Raises InvalidInput /
    NotFound (reward template or tag)."""
    values = rules.check_campaign(data)
    rules.check_window(values["starts_at"], values["ends_at"])
    status = CampaignStatus.RUNNING if data.get("status") == CampaignStatus.RUNNING else CampaignStatus.DRAFT
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await _check_reward(conn, values)
        new_id = (
            await conn.execute(
                referral_campaigns.insert()
                .values(**values, status=status, created_at=now, updated_at=now)
                .returning(referral_campaigns.c.id)
            )
        ).scalar_one()
        return await get_campaign(conn, int(new_id))


async def update_campaign(rt: Runtime, campaign_id: int, changes: dict[str, Any]) -> Campaign:
    """Change a campaign. Goal, hold and salespeople are fixed once it has started (codes carry them); a status
    in ``changes`` moves it (draft → running ⇄ paused → ended). Raises InvalidInput / NotFound / Conflict."""
    status = changes.get("status")
    values = rules.check_campaign({k: v for k, v in changes.items() if k != "status"}, partial=True)
    async with rt.db.write() as conn:
        q = sa.select(referral_campaigns).where(referral_campaigns.c.id == campaign_id)
        row = (await conn.execute(q.with_for_update() if rt.db.dialect == "postgresql" else q)).first()
        if row is None:
            raise NotFound("没有这个裂变活动 (no such referral campaign)", id=campaign_id)
        fixed = set(values) - EDITABLE_WHILE_LIVE
        if row.status != CampaignStatus.DRAFT and fixed:
            raise Conflict(f"活动已开始，不能修改 {', '.join(sorted(fixed))} (fixed once started)", field=sorted(fixed)[0])
        rules.check_window(values.get("starts_at", row.starts_at), values.get("ends_at", row.ends_at))
        if values.get("kind", row.kind) == ReferralKind.GROUP and not values.get("chat_ids", row.chat_ids):
            raise InvalidInput("群裂变需要选择 1 到 5 个客户群 (chat_ids: 1–5 group chat ids)", field="chat_ids")
        await _check_reward(conn, values)
        if status is not None and status != row.status:
            if not rules.can_transition(row.status, status):
                raise Conflict(f"活动不能从 {row.status} 变为 {status} (status change not allowed)", field="status")
            values["status"] = status
        if values:
            await conn.execute(
                referral_campaigns.update().where(referral_campaigns.c.id == campaign_id).values(**values, updated_at=rt.clock.now())
            )
        return await get_campaign(conn, campaign_id)


async def pause_campaign(rt: Runtime, campaign_id: int) -> Campaign:
    return await update_campaign(rt, campaign_id, {"status": CampaignStatus.PAUSED})


# ---- personal codes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Code:
    id: int
    campaign_id: int
    inviter_customer_id: int
    state: str
    config_id: str | None
    qr_code: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _code(r: Any) -> Code:
    return Code(int(r.id), int(r.campaign_id), int(r.inviter_customer_id), r.state, r.config_id, r.qr_code)


async def code_row(conn: AsyncConnection, campaign_id: int, inviter: int) -> Any:
    q = sa.select(referral_codes).where(referral_codes.c.campaign_id == campaign_id, referral_codes.c.inviter_customer_id == inviter)
    return (await conn.execute(q)).first()


async def _is_eligible(rt: Runtime, campaign: Campaign, customer_id: int) -> bool:
    """Whether the customer is in the campaign's segment now (one query on this id; empty expression = everyone).
    A segment stored before expressions were checked, which cannot run, refuses codes politely (Conflict) and
    alerts operations once per campaign — the inviter is not shown a parser's message."""
    expression = campaign.eligible_segment
    if not expression.strip():
        return True
    try:
        node = segments.parse(expression)
    except SegmentSyntaxError as exc:
        async with rt.db.write() as conn:
            await raise_attention(
                conn,
                message=f"裂变活动“{campaign.name}”（#{campaign.id}）的可参与客户表达式无法解析，邀请码暂停发放，请修改：{exc.message}",
                key=f"referral-segment:{campaign.id}",
                now=rt.clock.now(),
            )
        raise Conflict(
            "活动参与条件设置有误，暂时无法发放邀请码 (the campaign's eligible segment does not parse)", campaign_id=campaign.id
        ) from None
    q = segments.segment_select(node, rt.clock.now()).where(customers.c.id == customer_id)
    async with rt.db.read() as conn:
        return (await conn.execute(q.limit(1))).first() is not None


async def code_for(rt: Runtime, campaign_id: int, inviter_customer_id: int) -> Code:
    """The inviter's personal code for the campaign: made on first request — a WeCom contact way with the
    campaign's salespeople, or for a group campaign a 加入群聊 join way into its groups, with state
    ``rf:<short id>`` — the same one afterwards. Raises NotFound, Conflict (campaign not running; inviter not
    eligible), ServiceUnavailable / the maker's errors (WeCom)."""
    async with rt.db.read() as conn:
        campaign = await get_campaign(conn, campaign_id)
        inviter = await resolve_customer(conn, inviter_customer_id)
        row = await code_row(conn, campaign_id, inviter)
    if row is not None and row.config_id:
        return _code(row)
    if campaign.status != CampaignStatus.RUNNING or not campaign.starts_at <= rt.clock.now() < campaign.ends_at:
        raise Conflict("活动未在进行中，不能发放邀请码 (the campaign is not running)", status=campaign.status)
    if row is None:
        if not await _is_eligible(rt, campaign, inviter):
            raise Conflict("该客户不在活动的参与人群中 (the customer is not eligible)", customer_id=inviter)
        async with rt.db.write() as conn:
            await conn.execute(
                insert_ignore(referral_codes, rt.db.dialect).values(
                    campaign_id=campaign_id,
                    inviter_customer_id=inviter,
                    state=rules.STATE_PREFIX + short_id(12),
                    created_at=rt.clock.now(),
                    expires_at=campaign.ends_at,
                )
            )
            row = await code_row(conn, campaign_id, inviter)
        if row.config_id:
            return _code(row)
    remark = f"裂变{campaign_id}-{inviter}"
    if campaign.kind == ReferralKind.GROUP:
        config_id, qr_code = await join_way_maker(rt).create(rt, state=row.state, chat_ids=list(campaign.chat_ids), remark=remark)
    else:
        config_id, qr_code = await contact_way_maker(rt).create(rt, state=row.state, userids=campaign.userids, remark=remark)
    async with rt.db.write() as conn:
        won = await conn.execute(
            referral_codes.update()
            .where(referral_codes.c.id == row.id, referral_codes.c.config_id.is_(None))
            .values(config_id=config_id, qr_code=qr_code)
        )
        row = await code_row(conn, campaign_id, inviter)
    if won.rowcount == 0:  # a concurrent request made the contact way first: ours is surplus
        await delete_code_way(rt, campaign.kind, config_id)
    return _code(row)


async def lock_code(conn: AsyncConnection, dialect: str, code_id: int) -> None:
    if dialect == "postgresql":
        await conn.execute(sa.select(referral_codes.c.id).where(referral_codes.c.id == code_id).with_for_update())


async def qualified_count(conn: AsyncConnection, campaign_id: int, inviter: int) -> int:
    i = referral_invites.c
    q = sa.select(sa.func.count()).where(i.campaign_id == campaign_id, i.inviter_customer_id == inviter, i.status == InviteStatus.QUALIFIED)
    return int((await conn.execute(q)).scalar_one())


async def notify_progress(conn: AsyncConnection, c: Campaign, inviter: int, qualified: int, event: str, key: str, now: dt.datetime) -> None:
    text = rules.progress_text(campaign=c.name, qualified=qualified, goal=c.goal, event=event)
    await outbox.add(conn, PROGRESS_TOPIC, {"customer_id": inviter, "campaign_id": c.id, "text": text, "key": key}, now)
