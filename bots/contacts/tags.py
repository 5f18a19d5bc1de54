"""Corp tags (企业客户标签) mirrored both ways with WeCom.

* WeCom → us: :func:`pull_corp_tags` (``externalcontact/get_corp_tag_list``) makes the local mirror equal to WeCom's
  for a scope; ``change_external_tag`` events (create/update/delete/shuffle of a tag or tag group) re-pull just
  that scope, so a repeated or late event is harmless. Tags WeCom shows on a customer's follows are applied with
  source ``wecom`` (:func:`apply_follow_tags`, :func:`refresh_customer_tags`) and leave when WeCom drops them.
* us → WeCom: :func:`create_corp_tag` (``add_corp_tag``) for new mirrored tags; the outbox handler of
  ``customer_tag.changed`` pushes a customer's tag with ``mark_tag`` on every active follow. Local-only tags (no
  remote id) never leave.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from bots.outbound.client import WECOM_API, ApiError, ApiUnavailable, Errcode, RateLimited, WeComApi
from scrm.core.errors import DomainError, ServiceUnavailable
from scrm.core.jobs import RetryLater
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.customers.services import ensure_customer, resolve_customer
from scrm.crm.tags.models import customer_tags, tag_groups, tags
from scrm.crm.tags.services import (
    MirrorReport,
    TagDiff,
    mirror_corp_tags,
    reconcile_wecom_tags,
)

log = logging.getLogger(__name__)


class WeComRefused(DomainError):
    """WeCom answered an errcode to something a user asked for (e.g. a tag name WeCom will not take)."""

    code = "wecom_refused"
    status = 502


def wecom(rt: Runtime) -> WeComApi:
    if not rt.has(WECOM_API):
        raise ServiceUnavailable("未配置企业微信 (WeCom is not configured)")
    return rt.get(WECOM_API)


# ---- corp tags: WeCom → local mirror ----------------------------------------------------------------------
async def pull_corp_tags(rt: Runtime, *, group_ids: Collection[str] | None = None, tag_ids: Collection[str] | None = None) -> MirrorReport:
    """Pull corp tags (all, some groups, or some tags) and make the mirror equal to them; deleted ones get
    ``deleted_at``. Idempotent. Raises RateLimited / ApiUnavailable / ApiError for the caller to retry."""
    body: dict[str, Any] = {}
    if group_ids:
        body["group_id"] = sorted(group_ids)
    elif tag_ids:
        body["tag_id"] = sorted(tag_ids)
    try:
        groups = (await wecom(rt).call("externalcontact/get_corp_tag_list", body)).get("tag_group") or []
    except ApiError as exc:
        # Asking for ids that no longer exist may be refused rather than answered empty: they are gone.
        if exc.errcode != Errcode.INVALID_TAG_ID or not body:
            raise
        groups = []
    async with rt.db.write() as conn:
        return await mirror_corp_tags(
            conn, groups, rt.clock.now(), group_ids=list(group_ids) if group_ids else None, tag_ids=list(tag_ids) if tag_ids else None
        )


async def on_tag_change(rt: Runtime, row: Any) -> str:
    """change_external_tag: re-pull what changed (a tag, a group, a group's order, or everything)."""
    if not rt.has(WECOM_API):
        return "WeCom API not configured: corp tags not re-pulled"
    payload = row.payload or {}
    change = str(row.change_type or payload.get("ChangeType", ""))
    remote_id = str(payload.get("Id") or "").strip()
    tag_type = str(payload.get("TagType") or "tag")
    try:
        if not remote_id:  # shuffle of all groups (or an event without Id): the whole list
            report = await pull_corp_tags(rt)
        elif tag_type == "tag_group" or change == "shuffle":
            report = await pull_corp_tags(rt, group_ids=[remote_id])
        else:
            report = await pull_corp_tags(rt, tag_ids=[remote_id])
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, str(exc)) from exc
    return f"corp tags re-pulled after {change} {tag_type} {remote_id}: +{report.created} ~{report.updated} -{report.deleted}"


# ---- corp tags: us → WeCom -----------------------------------------------------------------------------------
async def create_corp_tag(rt: Runtime, group: str, name: str) -> int:
    """Create corp tag ``name`` in group ``group`` in WeCom (add_corp_tag; the group is made if new) and mirror it;
    returns the local tag id. A name WeCom already has is adopted after a pull of its group."""
    api = wecom(rt)
    async with rt.db.read() as conn:
        group_remote = (
            await conn.execute(
                sa.select(tag_groups.c.remote_id).where(
                    tag_groups.c.name == group, tag_groups.c.remote_id.is_not(None), tag_groups.c.deleted_at.is_(None)
                )
            )
        ).scalar()
    body: dict[str, Any] = {"tag": [{"name": name}]}
    body.update({"group_id": group_remote} if group_remote else {"group_name": group})
    try:
        answer = (await api.call("externalcontact/add_corp_tag", body))["tag_group"]
        remote_ids = [str(t["id"]) for t in answer.get("tag") or []]
        async with rt.db.write() as conn:
            await mirror_corp_tags(conn, [answer], rt.clock.now(), tag_ids=remote_ids)
    except ApiError as exc:
        if exc.errcode != Errcode.TAG_NAME_EXISTS:
            raise WeComRefused(f"企业微信拒绝创建标签 (WeCom refused: errcode {exc.errcode})", errcode=exc.errcode) from exc
        await pull_corp_tags(rt)
    except ApiUnavailable as exc:
        raise ServiceUnavailable("企业微信暂时无法访问，请稍后再试 (WeCom is unreachable)") from exc
    async with rt.db.read() as conn:
        q = (
            sa.select(tags.c.id)
            .join(tag_groups, tag_groups.c.id == tags.c.group_id)
            .where(tags.c.name == name, tag_groups.c.name == group, tags.c.remote_id.is_not(None), tags.c.deleted_at.is_(None))
        )
        tag_id = (await conn.execute(q)).scalar()
    if tag_id is None:
        raise WeComRefused("企业微信未返回新标签 (WeCom did not return the new tag)")
    return int(tag_id)


async def push_customer_tag(rt: Runtime, payload: dict[str, Any]) -> None:
    """Mirror one customer tag change to WeCom with mark_tag on each active follow of the customer.

    Pushes the tag's *current* state (on or off), so rows handled twice or out of order still end right. Local-only
    and deleted tags are not pushed. A follow WeCom no longer knows (84061) is skipped; its delete event ends it."""
    if not rt.has(WECOM_API):
        return
    customer_id, tag_id = int(payload["customer_id"]), int(payload["tag_id"])
    async with rt.db.read() as conn:
        customer_id = await resolve_customer(conn, customer_id)  # merged since the change was queued: the survivor
        tag = (await conn.execute(sa.select(tags.c.remote_id, tags.c.deleted_at).where(tags.c.id == tag_id))).first()
        if tag is None or tag.remote_id is None or tag.deleted_at is not None:
            return
        on = (
            await conn.execute(
                sa.select(customer_tags.c.tag_id).where(customer_tags.c.customer_id == customer_id, customer_tags.c.tag_id == tag_id)
            )
        ).first() is not None
        rows = (
            await conn.execute(
                sa.select(follows.c.userid, follows.c.external_userid)
                .where(follows.c.customer_id == customer_id, follows.c.status == FollowStatus.ACTIVE)
                .order_by(follows.c.id)
            )
        ).all()
    api = rt.get(WECOM_API)
    for f in rows:
        body = {"userid": f.userid, "external_userid": f.external_userid, ("add_tag" if on else "remove_tag"): [tag.remote_id]}
        try:
            await api.call("externalcontact/mark_tag", body)
        except RateLimited as exc:
            raise RetryLater(exc.retry_after, str(exc)) from exc
        except ApiError as exc:
            if exc.errcode == Errcode.NOT_EXTERNAL_CONTACT:
                log.info("mark_tag: follow gone in WeCom", extra={"userid": f.userid, "external_userid": f.external_userid})
                continue
            if exc.errcode == Errcode.INVALID_TAG_ID:
                await pull_corp_tags(rt, tag_ids=[tag.remote_id])  # deleted in WeCom: the mirror learns it
                return
            raise


# ---- customers' tags: WeCom → customer_tags ------------------------------------------------------------------
async def apply_follow_tags(rt: Runtime, *, customer_id: int, userid: str, remote_tag_ids: Collection[str]) -> TagDiff:
    """Make the corp tags WeCom shows on one follow true locally (see ``reconcile_wecom_tags``). Tags not mirrored
    yet are pulled once and applied; ids WeCom itself no longer knows are left out."""
    async with rt.db.write() as conn:
        diff = await reconcile_wecom_tags(
            conn, rt.db.dialect, customer_id=customer_id, userid=userid, remote_tag_ids=remote_tag_ids, now=rt.clock.now()
        )
    if diff.unknown and rt.has(WECOM_API):
        await pull_corp_tags(rt, tag_ids=diff.unknown)
        async with rt.db.write() as conn:
            again = await reconcile_wecom_tags(
                conn, rt.db.dialect, customer_id=customer_id, userid=userid, remote_tag_ids=remote_tag_ids, now=rt.clock.now()
            )
        diff = TagDiff(diff.added + again.added, diff.removed + again.removed, again.unknown)
    return diff


def corp_tag_ids(follow_user: dict[str, Any]) -> list[str]:
    """Corp tag ids of an ``externalcontact/get`` follow_user entry (type 1; personal/rule tags are not mirrored),
    or of a ``batch/get_by_user`` follow_info (``tag_id``)."""
    if "tag_id" in follow_user:
        return [str(t) for t in follow_user.get("tag_id") or []]
    return [str(t["tag_id"]) for t in follow_user.get("tags") or [] if int(t.get("type", 1) or 1) == 1 and t.get("tag_id")]


async def refresh_customer_tags(rt: Runtime, external_userid: str) -> dict[str, TagDiff]:
    """Re-read a customer from WeCom (externalcontact/get) and reconcile the tags of each follow; local active follows
    WeCom no longer lists lose their wecom tags. For edit_external_contact (a salesperson tagged in the client)."""
    try:
        data = await wecom(rt).call("externalcontact/get", params={"external_userid": external_userid}, method="GET")
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, str(exc)) from exc
    async with rt.db.write() as conn:
        customer_id = await ensure_customer(conn, rt.db.dialect, kind="external_userid", value=external_userid, now=rt.clock.now())
        local = {
            r.userid
            for r in await conn.execute(
                sa.select(follows.c.userid).where(follows.c.customer_id == customer_id, follows.c.status == FollowStatus.ACTIVE)
            )
        }
    out: dict[str, TagDiff] = {}
    # (follow_user pages past 500 followers with next_cursor; a customer with that many salespeople is not a case here.)
    for fu in data.get("follow_user") or []:
        userid = str(fu.get("userid", ""))
        if userid:
            out[userid] = await apply_follow_tags(rt, customer_id=customer_id, userid=userid, remote_tag_ids=corp_tag_ids(fu))
    for userid in sorted(local - set(out)):
        out[userid] = await apply_follow_tags(rt, customer_id=customer_id, userid=userid, remote_tag_ids=[])
    return out
