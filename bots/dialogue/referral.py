"""Referral campaigns in chat (裂变): “邀请好友” / “我的邀请码” / “活动” → the customer's own invitation (their code,
the poster's link and the rules); “邀请了几个人” / “我邀请的朋友算上了吗” → their progress: how many count, how
many wait for the hold, which did not count and why.

Only the asking customer's code and invites, never anyone else's. The poster goes as a picture (the sender uploads
it as temporary media) followed by the text; when the picture cannot go, the text carries the poster's link (the app
serves the PNG) instead."""

from __future__ import annotations

import logging
import re

from bots.dialogue.router import Intent, Reply, ReplyImage, Turn
from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral import sharing
from scrm.core.errors import DomainError, NotFound
from scrm.core.runtime import Runtime

ASKS_INVITATION = re.compile(
    r"^(邀请好友|邀请朋友|我要邀请|我的邀请码|邀请码|邀请海报|我的海报|推荐好友|活动|有什么活动|最近有什么活动|参加活动|怎么参加活动|"
    r"怎么参加|如何参加活动|老带新|拉新活动|裂变活动)$"
)
ASKS_PROGRESS = re.compile(
    r"邀请了?(几|多少)|邀请进度|邀请.{0,4}(进度|情况|结果)|拉了?(几|多少)个?人|(邀请|推荐)的?(朋友|好友).{0,6}(算|计)"
)
log = logging.getLogger(__name__)
NO_CAMPAIGN = "目前没有进行中的邀请活动，有新活动会第一时间通知您～"
SHOWN = 5


def _is_invitation_question(text: str) -> bool:
    return ASKS_INVITATION.match(text) is not None


def _is_progress_question(text: str) -> bool:
    return ASKS_PROGRESS.search(text) is not None


async def invite_friends(turn: Turn) -> Reply:
    try:
        found = await sharing.invitation_for_customer(turn.rt, turn.customer_id)
    except DomainError as exc:  # WeCom refused or is unreachable: the code could not be made now
        return Reply(f"邀请码暂时生成失败，请稍后再试。（{exc.code}）", meta={"error": exc.code})
    if found is None:
        return Reply(NO_CAMPAIGN)
    meta = {"campaign_id": found.campaign.id, "code_id": found.code.id, "poster_url": found.poster_url}
    try:
        png = await sharing.poster_png(turn.rt, sharing.poster_token(found.code.state))
    except NotFound:  # the code has no link to draw (its WeCom side is gone): the text alone
        log.warning("no poster to send", extra={"code_id": found.code.id})
        return Reply(found.text, meta=meta)
    return Reply(found.text, meta=meta, image=ReplyImage(png, found.text_beside_poster, filename="referral-poster.png"))


async def progress_text(rt: Runtime, customer_id: int) -> str | None:
    """The inviter's progress in their newest campaign (None when they hold no code): counted, pending with the
    hold, not counted with the reasons, the rules."""
    joined = await sharing.joined_campaigns(rt, customer_id)
    if not joined:
        return None
    campaign = joined[0]
    async with rt.db.read() as conn:
        p = await referral_queries.inviter_progress(conn, campaign, customer_id)
    lines = [f"【{campaign.name}】您的邀请进度：", f"· 已计入：{p.qualified} 位（目标 {campaign.goal} 位）"]
    if p.pending:
        lines.append(f"· 待确认：{p.pending} 位（好友需保持满 {campaign.hold_hours} 小时才计入，请耐心等待）")
    if p.not_counted:
        lines.append(f"· 未计入：{len(p.not_counted)} 位")
        lines += [f"  - {r.invitee_name or '好友'}：{r.reason}" for r in p.not_counted[:SHOWN]]
    if p.rewarded:
        lines.append("奖励已发放，感谢您的分享！")
    elif p.still_needed:
        lines.append(f"还差 {p.still_needed} 位有效邀请即可获得奖励。")
    lines.append(sharing.rules_text(campaign))
    lines.append("发送“邀请好友”可再次获取您的邀请海报。")
    return "\n".join(lines)


async def invite_progress(turn: Turn) -> Reply | None:
    if not _is_progress_question(turn.normalized):
        return None
    text = await progress_text(turn.rt, turn.customer_id)
    if text is None:
        return Reply("您还没有参加邀请活动。发送“邀请好友”获取您的专属邀请海报，邀请好友即可得奖励。")
    return Reply(text)


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent("referral_invite", _is_invitation_question, invite_friends, help_line="邀请好友：获取您的专属邀请海报", priority=15),
    Intent("referral_progress", None, invite_progress, help_line="邀请了几个人：查看邀请进度", priority=16),
]
