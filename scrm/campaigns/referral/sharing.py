"""Referral campaigns (裂变) — how customers join: the campaign a customer can take part in, their invitation (the
personal code, the poster's link and the text that goes with it) and the poster PNG served by the app.

The chat skill, the sidebar's button and broadcasts all hand out the same invitation, so a customer gets one code
per campaign whichever way they asked. Part of :mod:`scrm.campaigns.referral`."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import sqlalchemy as sa

from scrm.campaigns.coupons.services import get_template
from scrm.campaigns.referral import domain as rules
from scrm.campaigns.referral.domain import CampaignStatus
from scrm.campaigns.referral.models import ReferralKind, referral_campaigns, referral_codes
from scrm.campaigns.referral.poster import PosterContent, cached_poster, find_font
from scrm.campaigns.referral.services import Campaign, Code, code_for, get_campaign
from scrm.core.errors import Conflict, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.customers.services import resolve_customer
from scrm.crm.tags.services import get_tag

POSTER_PATH = "/referral/posters/{token}.png"  # public: the link a customer forwards; the token is the code's random part
POSTER_TOKEN = re.compile(r"[0-9A-Za-z]{8,27}")
INTRO_MAX = 200  # characters of the campaign's poster text in the chat message


@dataclass(frozen=True)
class Invitation:
    """What a customer is sent to join a campaign: their code, the poster's link and the message."""

    campaign: Campaign
    code: Code
    poster_url: str
    reward: str  # 邀请 3 位好友即得 满100减10
    text: str  # the chat message (Chinese) with the poster's link
    text_beside_poster: str  # the chat message sent right after the poster itself (no link to it)


def poster_token(state: str) -> str:
    return state.removeprefix(rules.STATE_PREFIX)


async def reward_line(rt: Runtime, c: Campaign) -> str:
    """邀请 N 位好友即得 <coupon label / tag name>."""
    prizes: list[str] = []
    if c.reward_template_id is not None:
        try:
            tpl = await get_template(rt, c.reward_template_id)
            prizes.append(f"{tpl.name}（{tpl.rule.label}）" if tpl.name != tpl.rule.label else tpl.rule.label)
        except NotFound:
            pass
    if c.reward_tag_id is not None:
        async with rt.db.read() as conn:
            try:
                prizes.append(f"“{(await get_tag(conn, c.reward_tag_id)).name}”身份")
            except NotFound:
                pass
    return f"邀请 {c.goal} 位好友即得 {'、'.join(prizes) or '活动奖励'}"


def rules_text(c: Campaign) -> str:
    """The campaign's rules in one paragraph, for the invitation and the progress answer."""
    how = "扫码加入群聊并留在群里" if c.kind == ReferralKind.GROUP else "扫码添加顾问并保持好友关系"
    return f"规则：好友{how}满 {c.hold_hours} 小时即算 1 位有效邀请；自己扫自己的码、老客户重新添加、留存期内删除或退出的不计入。"


async def invitation(rt: Runtime, campaign_id: int, inviter_customer_id: int) -> Invitation:
    """The inviter's invitation to the campaign: their code (made on first request, then the same), the poster's
    public link and the message. Raises NotFound, Conflict (campaign not running now; inviter not eligible) and
    what :func:`code_for` raises (WeCom)."""
    async with rt.db.read() as conn:
        campaign = await get_campaign(conn, campaign_id)
    if campaign.status != CampaignStatus.RUNNING or not campaign.starts_at <= rt.clock.now() < campaign.ends_at:
        # an existing code would still scan, but the add would not count: hand out nothing that cannot count
        raise Conflict("活动未在进行中，不能发放邀请海报 (the campaign is not running)", status=campaign.status)
    code = await code_for(rt, campaign_id, inviter_customer_id)
    url = rt.settings.base_url + POSTER_PATH.format(token=poster_token(code.state))
    reward = await reward_line(rt, campaign)
    intro = campaign.poster_text or "邀请好友一起来，好礼等你拿！"
    if len(intro) > INTRO_MAX:  # a 微信客服 text holds 2048 bytes: the poster carries the long text
        intro = intro[:INTRO_MAX] + "…"
    head, tail = f"【{campaign.name}】{intro}\n{reward}。\n", f"{rules_text(campaign)}\n发送“邀请了几个人”可随时查看进度。"
    text = f"{head}您的专属邀请海报：{url}\n把海报发给好友，好友长按识别二维码即可。邀请链接：{code.qr_code}\n{tail}"
    beside = f"{head}上图是您的专属邀请海报，把海报发给好友，好友长按识别二维码即可。邀请链接：{code.qr_code}\n{tail}"
    return Invitation(campaign, code, url, reward, text, beside)


def poster_line(found: Invitation) -> str:
    """The invitation as one short paragraph for a message that says something else first (a broadcast)."""
    return f"【{found.campaign.name}】{found.reward}。您的专属邀请海报：{found.poster_url}\n把海报转发给好友，好友扫码即算您的邀请。"


async def running_campaigns(rt: Runtime) -> list[Campaign]:
    """Campaigns running now (status running, inside their window), newest first."""
    now = rt.clock.now()
    c = referral_campaigns.c
    async with rt.db.read() as conn:
        q = sa.select(c.id).where(c.status == CampaignStatus.RUNNING, c.starts_at <= now, c.ends_at > now).order_by(c.id.desc())
        ids = [int(r.id) for r in await conn.execute(q)]
        return [await get_campaign(conn, i) for i in ids]


async def joined_campaigns(rt: Runtime, customer_id: int) -> list[Campaign]:
    """Campaigns in which the customer holds a code, newest first (running or not)."""
    async with rt.db.read() as conn:
        inviter = await resolve_customer(conn, customer_id)
        q = sa.select(referral_codes.c.campaign_id).where(referral_codes.c.inviter_customer_id == inviter)
        ids = sorted({int(r.campaign_id) for r in await conn.execute(q)}, reverse=True)
        return [await get_campaign(conn, i) for i in ids]


async def invitation_for_customer(rt: Runtime, customer_id: int) -> Invitation | None:
    """The customer's invitation to the running campaign they take part in — the newest one in which they hold a
    code, else the newest they are eligible for. None when no running campaign is open to them."""
    running = await running_campaigns(rt)
    joined = {c.id for c in await joined_campaigns(rt, customer_id)}
    for campaign in sorted(running, key=lambda c: (c.id not in joined, -c.id)):
        try:
            return await invitation(rt, campaign.id, customer_id)
        except Conflict:  # not eligible for this one: try the next
            continue
    return None


async def poster_png(rt: Runtime, token: str) -> bytes:
    """The poster of the code whose state ends in ``token``, drawn now (PNG). Raises NotFound for an unknown token
    or a code whose WeCom side is gone (campaign ended)."""
    if not POSTER_TOKEN.fullmatch(token):
        raise NotFound("没有这张海报 (no such poster)")
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(referral_codes).where(referral_codes.c.state == rules.STATE_PREFIX + token))).first()
        if row is None or not row.qr_code:
            raise NotFound("海报已失效 (no such poster, or the campaign has ended)")
        campaign = await get_campaign(conn, int(row.campaign_id))
    footer = "长按识别二维码，加入群聊" if campaign.kind == ReferralKind.GROUP else "长按识别二维码，添加顾问"
    content = PosterContent(campaign.name, campaign.poster_text, await reward_line(rt, campaign), row.qr_code, footer)
    return await asyncio.to_thread(cached_poster, content, find_font(rt.settings.poster_font))
