"""Joining a referral campaign end to end in the sandbox: a customer asks in 微信客服 chat (“邀请好友”) and gets their
poster as a picture (uploaded once as temporary media, its link when the upload fails) and their own code; the poster
is a real PNG, also served by the app; friends scan the code's link through the
sandbox's scan action (a real signed add_external_contact callback); the inviter asks their progress (“我邀请的朋友算上
了吗”) and hears what counts, what waits for the hold and what did not count and why; the marketer's invites list
(GET /referral-campaigns/{id}/invites) shows each invite with its status and reason; a broadcast with 附带邀请海报
gives each recipient their own poster."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from PIL import Image, ImageFont

from bots.dialogue import referral as referral_skill
from bots.dialogue.router import normalize_text
from bots.gateway.models import inbound_events
from bots.outbound.client import Errcode
from bots.outbound.models import OutboundStatus, outbound_attempts, outbound_messages
from bots.sandbox.simulator import MpSimulator
from scrm.campaigns.referral import invites as referral_invites_svc
from scrm.campaigns.referral import queries as referral_queries
from scrm.campaigns.referral.domain import InviteReason, RejectReason, explain_invite
from scrm.campaigns.referral.models import InviteStatus
from scrm.campaigns.referral.poster import PosterContent, find_font, render_poster, wrap
from scrm.campaigns.referral.services import code_row
from scrm.core.clock import FrozenClock
from tests.campaigns.test_referral import customer, plain_add, start_campaign
from tests.conftest import SandboxHarness

POSTER_URL = re.compile(r"http://\S+/referral/posters/([0-9A-Za-z]+)\.png")
CODE_LINK = re.compile(r"邀请链接：(\S+)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def scan(h: SandboxHarness, code: str, ext: str, name: str) -> dict[str, object]:
    resp = await h.client.post("/sandbox/api/contacts/scan", json={"code": code, "external_userid": ext, "name": name})
    body = await resp.json()
    assert resp.status == 200, body
    await h.settle()
    return dict(body)


async def ask(h: SandboxHarness, ext: str, text: str) -> str:
    before = len(h.replies(ext))
    await h.customer_says(ext, text)
    replies = h.replies(ext)
    assert len(replies) == before + 1, replies
    return replies[-1]


async def test_customer_joins_by_chat_friends_scan_and_progress_is_explained(sandbox: SandboxHarness, clock: FrozenClock) -> None:
    h = sandbox
    campaign = await start_campaign(h, goal=2, hold_hours=24)
    await plain_add(h, "wmOldFriend", "老朋友")  # a customer before the campaign: their add will not count

    reply = await ask(h, "wmAsker", "邀请好友")
    assert reply.startswith("【邀好友得券】扫码添加顾问，领新人礼")
    assert "邀请 2 位好友即得 邀友满100减20（满100减20）" in reply
    assert "满 24 小时" in reply and "邀请了几个人" in reply
    # The poster itself went first, as a picture (temporary media), so the text does not link to it.
    assert "上图是您的专属邀请海报" in reply and POSTER_URL.search(reply) is None, reply
    [picture] = h.state.kf_images("wmAsker")
    assert picture.content.startswith(PNG_SIGNATURE) and picture.content_type == "image/png"
    assert 10_000 < len(picture.content) < 2 * 1024 * 1024 and Image.open(io.BytesIO(picture.content)).size == (750, 1200)
    assert [m.get("image") is not None for m in h.state.kf_conversation("wmAsker") if m["origin"] == 5] == [True, False]
    link = CODE_LINK.search(reply)
    assert link, reply
    asker = await customer(h, "wmAsker")
    status, codes = await h.api("POST", f"/referral-campaigns/{campaign['id']}/codes", json={"inviter_customer_id": asker})
    assert status == 200 and codes["state"].startswith("rf:") and codes["qr_code"] == link.group(1)
    token = codes["state"].removeprefix("rf:")
    assert await ask(h, "wmAsker", "我的邀请码") == reply  # the same code every time
    assert h.state.call_count("externalcontact/add_contact_way") == 1
    # The same poster again within its media's 3 days: sent again, not uploaded again.
    assert h.state.call_count("wecom:media/upload") == 1
    first, again = h.state.kf_images("wmAsker")
    assert again.media_id == first.media_id

    resp = await h.client.get(f"/referral/posters/{token}.png")  # the public poster is the picture that was sent
    assert resp.status == 200 and resp.content_type == "image/png"
    assert await resp.read() == picture.content
    missing = await h.client.get("/referral/posters/nosuchposter1.png")
    assert missing.status == 404 and "海报" in (await missing.json())["error"]["message"]

    await scan(h, link.group(1), "wmNewFriend", "新朋友")
    await scan(h, link.group(1), "wmOldFriend", "老朋友")
    await scan(h, link.group(1), "wmAsker", "我自己")

    progress = await ask(h, "wmAsker", "我邀请的朋友算上了吗")
    assert "· 已计入：0 位（目标 2 位）" in progress
    assert "· 待确认：1 位（好友需保持满 24 小时才计入" in progress
    assert "· 未计入：2 位" in progress
    assert "老朋友：老客户重新添加" in progress and "自己扫自己的码" in progress
    assert "规则：" in progress and "还差 2 位有效邀请即可获得奖励" in progress

    clock.advance(hours=25)
    assert await referral_invites_svc.qualify_due_invites(h.rt) == 1
    await h.settle()
    progress = await ask(h, "wmAsker", "邀请了几个人")
    assert "· 已计入：1 位（目标 2 位）" in progress and "待确认" not in progress
    assert "还差 1 位有效邀请即可获得奖励" in progress

    status, page = await h.api("GET", f"/referral-campaigns/{campaign['id']}/invites")
    assert status == 200 and page["total"] == 3 and page["more"] is False
    by_invitee = {i["invitee_name"] if i["invitee_customer_id"] != asker else "我自己": i for i in page["items"]}
    assert (by_invitee["新朋友"]["status"], by_invitee["新朋友"]["reason_code"], by_invitee["新朋友"]["status_text"]) == (
        "qualified",
        "counted",
        "已计入",
    )
    assert (by_invitee["老朋友"]["status"], by_invitee["老朋友"]["reason_code"], by_invitee["老朋友"]["reason"]) == (
        "rejected",
        "re_add",
        "老客户重新添加",
    )
    assert (by_invitee["我自己"]["reason_code"], by_invitee["我自己"]["reason"]) == ("self_invite", "自己扫自己的码")
    assert {i["inviter_customer_id"] for i in page["items"]} == {asker}
    status, rejected = await h.api("GET", f"/referral-campaigns/{campaign['id']}/invites?status=rejected&limit=1")
    assert status == 200 and rejected["total"] == 2 and len(rejected["items"]) == 1 and rejected["more"] is True
    status, second = await h.api("GET", f"/referral-campaigns/{campaign['id']}/invites?status=rejected&limit=1&offset=1")
    assert {second["items"][0]["id"], rejected["items"][0]["id"]} == {by_invitee["老朋友"]["id"], by_invitee["我自己"]["id"]}


async def test_invites_list_refuses_bad_input_in_chinese(sandbox: SandboxHarness) -> None:
    campaign = await start_campaign(sandbox)
    for query, field in (("limit=0", "limit"), ("limit=abc", "limit"), ("offset=-1", "offset"), ("status=won", "status")):
        status, body = await sandbox.api("GET", f"/referral-campaigns/{campaign['id']}/invites?{query}")
        assert status == 400, (query, body)
        assert re.search(r"[\u4e00-\u9fff]", body["error"]["message"]) and body["error"].get("field", field) == field
    status, body = await sandbox.api("GET", "/referral-campaigns/999999/invites")
    assert status == 404 and "裂变活动" in body["error"]["message"]


async def test_no_running_campaign_and_no_code_yet(sandbox: SandboxHarness) -> None:
    h = sandbox
    assert await ask(h, "wmNobody", "活动") == "目前没有进行中的邀请活动，有新活动会第一时间通知您～"
    assert (await ask(h, "wmNobody", "邀请了几个人")).startswith("您还没有参加邀请活动")
    assert "邀请好友：获取您的专属邀请海报" in await ask(h, "wmNobody", "帮助")


@pytest.mark.parametrize(
    ("status", "reason", "group", "code", "text"),
    [
        (InviteStatus.QUALIFIED, "", False, InviteReason.COUNTED, "已计入邀请人数"),
        (InviteStatus.PENDING, "", False, InviteReason.HOLDING, "留存期中：好友需保持添加好友满 24 小时才计入"),
        (InviteStatus.PENDING, "", True, InviteReason.HOLDING, "留存期中：好友需留在群里满 24 小时才计入"),
        (InviteStatus.REVOKED, "left", False, InviteReason.LEFT, "好友在留存期内删除了顾问"),
        (InviteStatus.REVOKED, "", True, InviteReason.LEFT, "好友在留存期内退出了群聊"),
        (InviteStatus.REJECTED, RejectReason.SELF_INVITE, False, "self_invite", "自己扫自己的码"),
        (InviteStatus.REJECTED, RejectReason.MERGED_IDENTITY, False, "merged_identity", "与已有客户是同一人"),
    ],
)
def test_each_invite_is_explained(status: str, reason: str, group: bool, code: str, text: str) -> None:
    assert explain_invite(status=status, reason=reason, group=group, hold_hours=24) == (code, text)


def test_poster_is_a_png_with_the_qr_code_and_wraps_chinese() -> None:
    font = find_font()
    content = PosterContent("邀好友得券", "第一行\n" + "很长的文案" * 30, "邀请 3 位好友即得 满100减10", "https://example.invalid/c/1")
    png = render_poster(content, font)
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (750, 1200))
    assert image.convert("L").getextrema() == (0, 255)  # the QR code's black modules on its white box
    if font is not None:  # fonts-noto-cjk is installed here; the wrap keeps every line inside the width
        f = ImageFont.truetype(font, 30)
        lines = wrap("很长的文案" * 30, f, 630)
        assert len(lines) > 3 and all(f.getlength(line) <= 630 for line in lines)
        assert "".join(lines) == "很长的文案" * 30


async def test_broadcast_with_referral_poster_gives_each_recipient_their_own_code(sandbox: SandboxHarness) -> None:
    """附带邀请海报: each recipient's message carries their own poster link (their code, made for them); a
    salesperson task then carries one customer, since a task has one text."""
    h = sandbox
    campaign = await start_campaign(h, goal=3)
    await h.customer_says("wmKfFan", "你好")  # a 微信客服 window: the broadcast goes there
    a = await plain_add(h, "wmSalesA", "客户甲")  # followed by sales01: a task the salesperson confirms
    b = await plain_add(h, "wmSalesB", "客户乙")
    kf = await customer(h, "wmKfFan")
    status, bad = await h.api("POST", "/broadcasts", json={"name": "x", "segment": "orders >= 0", "text": "t", "referral_campaign_id": 999})
    assert status == 404 and "裂变活动" in bad["error"]["message"]
    status, bad = await h.api("POST", "/broadcasts", json={"name": "x", "segment": "orders >= 0", "text": "t", "referral_campaign_id": "1"})
    assert status == 400 and "referral_campaign_id" in bad["error"]["message"]
    status, made = await h.api(
        "POST",
        "/broadcasts",
        json={"name": "周末邀友", "segment": "orders >= 0", "text": "周末邀请好友有礼", "referral_campaign_id": campaign["id"]},
    )
    assert status == 201 and made["referral_campaign_id"] == campaign["id"], made
    status, _ = await h.api("POST", f"/broadcasts/{made['id']}/start")
    assert status == 200
    await h.settle()
    await h.settle()

    async with h.rt.db.read() as conn:
        tokens = {cid: (await code_row(conn, campaign["id"], cid)).state.removeprefix("rf:") for cid in (a, b, kf)}
    assert len(set(tokens.values())) == 3  # a code of their own each
    kf_text = h.replies("wmKfFan")[-1]
    assert kf_text.startswith("周末邀请好友有礼\n\n【邀好友得券】邀请 3 位好友即得")
    assert f"/referral/posters/{tokens[kf]}.png" in kf_text
    tasks = {tuple(t["external_userid"]): t["text"] for t in h.state.msg_templates}
    assert set(tasks) == {("wmSalesA",), ("wmSalesB",)}
    assert f"/referral/posters/{tokens[a]}.png" in tasks[("wmSalesA",)] and tokens[b] not in tasks[("wmSalesA",)]
    assert f"/referral/posters/{tokens[b]}.png" in tasks[("wmSalesB",)]
    async with h.rt.db.read() as conn:
        assert (await referral_queries.funnel(conn, campaign["id"])).codes_issued == 3


@pytest.mark.parametrize(
    ("text", "invitation", "progress"),
    [
        ("邀请好友", True, False),
        ("我的邀请码", True, False),
        ("活动", True, False),
        ("怎么参加活动", True, False),
        ("我邀请的朋友算上了吗", False, True),
        ("邀请了几个人", False, True),
        ("我拉了几个人", False, True),
        ("活动价多少", False, False),  # a price question, not the campaign
        ("拉面算了", False, False),
        ("要3箱矿泉水", False, False),
    ],
)
def test_what_the_referral_skill_answers(text: str, invitation: bool, progress: bool) -> None:
    normalized = normalize_text(text)
    assert (referral_skill.ASKS_INVITATION.match(normalized) is not None, referral_skill.ASKS_PROGRESS.search(normalized) is not None) == (
        invitation,
        progress,
    )


async def test_a_long_poster_text_stays_on_the_poster_not_in_the_chat(sandbox: SandboxHarness) -> None:
    campaign = await start_campaign(sandbox)
    status, _ = await sandbox.api("PATCH", f"/referral-campaigns/{campaign['id']}", json={"poster_text": "好" * 2000})
    assert status == 200
    reply = await ask(sandbox, "wmLongText", "邀请好友")
    assert "好" * 200 + "…" in reply and "好" * 201 not in reply
    assert len(reply.encode("utf-8")) < 2048  # what one 微信客服 text message holds


# ---- the poster as a picture: upload once, fall back to the link -------------------------------------------------
async def sent_outbound(h: SandboxHarness, key: str) -> tuple[Any, list[Any]]:
    """The outbound message of ``key`` and its attempts (oldest first)."""
    async with h.rt.db.read() as conn:
        msg = (await conn.execute(sa.select(outbound_messages).where(outbound_messages.c.idempotency_key == key))).one()
        tries = (
            await conn.execute(
                sa.select(outbound_attempts).where(outbound_attempts.c.message_id == msg.id).order_by(outbound_attempts.c.id)
            )
        ).all()
    return msg, list(tries)


async def last_reply_key(h: SandboxHarness, ext: str) -> str:
    async with h.rt.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(inbound_events.c.id).where(inbound_events.c.external_userid == ext).order_by(inbound_events.c.id.desc()).limit(1)
            )
        ).one()
    return f"reply:{row.id}:image"


async def test_a_failed_upload_sends_the_posters_link_and_the_next_ask_sends_the_picture(
    sandbox: SandboxHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = sandbox
    await start_campaign(h)
    h.state.inject("media/upload", 60011)  # WeCom refuses the upload (no privilege)
    with caplog.at_level(logging.INFO):
        reply = await ask(h, "wmNoPicture", "邀请好友")
    poster = POSTER_URL.search(reply)
    assert poster and "您的专属邀请海报：" in reply and "上图" not in reply, reply  # the link instead of the picture
    assert h.state.kf_images("wmNoPicture") == [] and h.state.call_count("media/upload") == 1
    msg, tries = await sent_outbound(h, await last_reply_key(h, "wmNoPicture"))
    assert msg.status == OutboundStatus.FAILED and msg.error_code == 60011 and msg.error_message.startswith("media_upload_failed: ")
    assert [(t.api_path, t.outcome, t.error_code) for t in tries] == [("media/upload", "error", 60011)]
    assert any(r.message == "image upload failed" for r in caplog.records)
    assert any(r.message.startswith("reply picture not sent") for r in caplog.records)
    resp = await h.client.get(f"/referral/posters/{poster.group(1)}.png")  # the link works
    assert resp.status == 200 and (await resp.read()).startswith(PNG_SIGNATURE)

    again = await ask(h, "wmNoPicture", "邀请好友")  # WeCom accepts uploads again
    assert "上图是您的专属邀请海报" in again and POSTER_URL.search(again) is None
    [picture] = h.state.kf_images("wmNoPicture")
    assert picture.content.startswith(PNG_SIGNATURE) and h.state.call_count("media/upload") == 2


async def test_the_posters_media_id_is_reused_for_its_validity_then_uploaded_again(sandbox: SandboxHarness, clock: FrozenClock) -> None:
    h = sandbox
    await start_campaign(h)
    await ask(h, "wmOften", "邀请好友")
    clock.advance(hours=70)  # under 3 days (and more than an hour before the id expires): reused
    await ask(h, "wmOften", "邀请好友")
    assert h.state.call_count("media/upload") == 1
    clock.advance(hours=2)  # 72 h: WeCom has dropped the media; a new upload
    await ask(h, "wmOften", "邀请好友")
    assert h.state.call_count("media/upload") == 2
    first, second, third = h.state.kf_images("wmOften")
    assert first.media_id == second.media_id != third.media_id and first.content == third.content


async def test_a_media_id_wecom_no_longer_knows_is_uploaded_afresh_and_the_picture_still_goes(sandbox: SandboxHarness) -> None:
    h = sandbox
    await start_campaign(h)
    await ask(h, "wmLost", "邀请好友")
    h.state.media.clear()  # WeCom lost the media before its 3 days (answers 40007 for the id we cached)
    reply = await ask(h, "wmLost", "邀请好友")
    assert "上图是您的专属邀请海报" in reply and POSTER_URL.search(reply) is None, reply
    msg, tries = await sent_outbound(h, await last_reply_key(h, "wmLost"))
    assert msg.status == OutboundStatus.SENT and msg.error_code is None
    assert [(t.api_path, t.error_code) for t in tries] == [("kf/send_msg", Errcode.INVALID_MEDIA_ID), ("kf/send_msg", None)]
    assert h.state.call_count("media/upload") == 2
    [picture] = h.state.kf_images("wmLost")  # the first picture's media is gone; the second was uploaded afresh
    assert picture.content.startswith(PNG_SIGNATURE) and len(h.state.kf_sent) == 4  # two pictures, two texts


async def test_a_media_id_refused_twice_falls_back_to_the_link(sandbox: SandboxHarness) -> None:
    h = sandbox
    await start_campaign(h)
    h.state.inject("kf/send_msg", Errcode.INVALID_MEDIA_ID, times=2)
    reply = await ask(h, "wmNeverValid", "邀请好友")
    assert POSTER_URL.search(reply), reply
    msg, tries = await sent_outbound(h, await last_reply_key(h, "wmNeverValid"))
    assert msg.status == OutboundStatus.FAILED and msg.error_code == Errcode.INVALID_MEDIA_ID
    assert [t.error_code for t in tries] == [Errcode.INVALID_MEDIA_ID] * 2 and h.state.call_count("media/upload") == 2


async def test_an_official_account_follower_gets_the_poster_as_a_picture(sandbox: SandboxHarness) -> None:
    h, rt = sandbox, sandbox.rt
    await start_campaign(h)
    h.state.add_follower("oInviter")
    mp = MpSimulator(rt.settings.mp_token.get(), rt.settings.mp_aes_key.get(), rt.settings.mp_app_id, now=rt.clock.now)
    async with aiohttp.ClientSession() as session:
        url = str(h.client.make_url("/callback/mp"))
        assert await mp.deliver(session, url, mp.text_message("oInviter", "邀请好友", 2001)) == (200, "success")
    await h.settle()
    picture, text = [m for m in h.state.mp_custom_sent if m["touser"] == "oInviter"]
    assert picture["msgtype"] == "image" and text["msgtype"] == "text"
    media = h.state.media[picture["media_id"]]
    assert media.api == "mp" and media.content.startswith(PNG_SIGNATURE) and Image.open(io.BytesIO(media.content)).size == (750, 1200)
    assert "上图是您的专属邀请海报" in text["content"] and h.state.call_count("mp:media/upload") == 1
