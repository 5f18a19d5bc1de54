"""Handovers in WeCom (docs/wecom.md §5b): the :class:`scrm.sales.handover.services.WeComTransfers` port over the
客户联系 transfer APIs — 在职继承 ``externalcontact/transfer_customer``, 离职继承 ``externalcontact/resigned/transfer_customer``,
their ``transfer_result``, ``get_unassigned_list`` and the group transfers ``groupchat/onjob_transfer`` /
``groupchat/transfer``. Rate limits become RetryLater (the job backs off); "busy" and outages raise for the job to
retry; any other refusal of a whole call is :class:`TransferRefused` (recorded per customer or group)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bots.outbound import services as sender
from bots.outbound.client import WECOM_API, ApiError, ApiUnavailable, Errcode, RateLimited
from scrm.core.errors import ServiceUnavailable
from scrm.core.jobs import RetryLater
from scrm.core.runtime import Runtime
from scrm.governance.scopes.services import EVERYTHING
from scrm.sales.handover.domain import HandoverKind
from scrm.sales.handover.queries import finished_text, get_handover
from scrm.sales.handover.services import TransferRefused, TransferState, UnassignedCustomer

MAX_PAGES = 1000  # a runaway cursor stops somewhere


async def _call(rt: Runtime, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return await rt.get(WECOM_API).call(path, body)
    except RateLimited as exc:
        raise RetryLater(exc.retry_after, f"{path} rate limited ({exc.errcode})") from exc
    except ApiError as exc:
        if exc.errcode == Errcode.BUSY:
            raise
        raise TransferRefused(exc.errcode, exc.errmsg) from exc


class WeComTransfers:
    async def transfer_customers(
        self, rt: Runtime, kind: str, from_userid: str, to_userid: str, external_userids: Sequence[str]
    ) -> dict[str, int]:
        path = "externalcontact/transfer_customer" if kind == HandoverKind.ONJOB else "externalcontact/resigned/transfer_customer"
        body = {"handover_userid": from_userid, "takeover_userid": to_userid, "external_userid": list(external_userids)}
        answer = await _call(rt, path, body)
        return {str(c.get("external_userid")): int(c.get("errcode", 0) or 0) for c in answer.get("customer") or []}

    async def transfer_results(self, rt: Runtime, kind: str, from_userid: str, to_userid: str) -> list[TransferState]:
        path = "externalcontact/transfer_result" if kind == HandoverKind.ONJOB else "externalcontact/resigned/transfer_result"
        out: list[TransferState] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            answer = await _call(rt, path, {"handover_userid": from_userid, "takeover_userid": to_userid, "cursor": cursor})
            out.extend(
                TransferState(str(c.get("external_userid")), int(c.get("status", 0) or 0), int(c.get("takeover_time", 0) or 0))
                for c in answer.get("customer") or []
            )
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                break
        return out

    async def transfer_groups(self, rt: Runtime, kind: str, chat_ids: Sequence[str], new_owner: str) -> dict[str, int]:
        path = "externalcontact/groupchat/onjob_transfer" if kind == HandoverKind.ONJOB else "externalcontact/groupchat/transfer"
        answer = await _call(rt, path, {"chat_id_list": list(chat_ids), "new_owner": new_owner})
        return {str(f.get("chat_id")): int(f.get("errcode", 0) or 0) for f in answer.get("failed_chat_list") or []}

    async def unassigned(self, rt: Runtime) -> list[UnassignedCustomer]:
        """Read while a person waits (the console, a resigned request): an outage is a 503 for them, not a crash."""
        try:
            return await self._unassigned(rt)
        except ApiUnavailable as exc:
            raise ServiceUnavailable("企业微信暂时无法访问，请稍后再试 (WeCom is unreachable)") from exc
        except RetryLater as exc:
            raise ServiceUnavailable("企业微信调用太频繁，请一分钟后再试 (WeCom rate limit)") from exc
        except TransferRefused as exc:
            raise ServiceUnavailable(f"企业微信拒绝读取待分配客户（错误码 {exc.errcode}） (WeCom refused)") from exc

    async def _unassigned(self, rt: Runtime) -> list[UnassignedCustomer]:
        out: list[UnassignedCustomer] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            answer = await _call(rt, "externalcontact/get_unassigned_list", {"page_size": 1000, "cursor": cursor})
            out.extend(
                UnassignedCustomer(str(i.get("handover_userid")), str(i.get("external_userid")), int(i.get("dimission_time", 0) or 0))
                for i in answer.get("info") or []
            )
            cursor = str(answer.get("next_cursor") or "")
            if answer.get("is_last", True) or not cursor:
                break
        return out


async def tell_members(rt: Runtime, payload: dict[str, Any]) -> None:
    """handover.finished: the takeover member (and the handover member, still employed) get one summary by app
    message — not one per customer, which WeCom would cap at 30 a minute."""
    if not rt.has(WECOM_API):
        return
    view = await get_handover(rt, int(payload["handover_id"]), EVERYTHING)
    touser = [view.to_userid] + ([view.from_userid] if view.kind == HandoverKind.ONJOB else [])
    await sender.send_app_message(rt, touser=touser, text=finished_text(view), key=f"handover:{view.id}:finished", purpose="alert")
