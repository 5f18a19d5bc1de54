"""Approvals in WeCom: a waiting approval is submitted to the 审批 app (when a template is configured) and its
approvers get an app message; the ``sys_approval_change`` callback decides it; the requester hears the outcome.

Every handler may run more than once: the submission happens once per approval (its sp_no is kept and checked
first), messages are keyed per approval and step, and a decision already applied changes nothing."""

from __future__ import annotations

import logging
from typing import Any

from bots.approvals.domain import apply_body, approver_nodes, read_change
from bots.gateway.processing import Processes
from bots.outbound import services as sender
from bots.outbound.client import WECOM_API, ApiError
from scrm.core.outbox import Handles
from scrm.core.runtime import Runtime
from scrm.governance.approvals import services as approvals
from scrm.governance.approvals.models import ApprovalStatus

log = logging.getLogger(__name__)
OUTCOME_ZH = {"approved": "已通过", "rejected": "被驳回", "withdrawn": "已撤销"}


async def submit_and_alert(rt: Runtime, payload: dict[str, Any]) -> None:
    """An approval waits (or moved to its next step): submit it to the 审批 app once, and tell the approvers now due."""
    approval = await approvals.get_approval(rt, int(payload["approval_id"]))
    if approval.status != ApprovalStatus.PENDING or not rt.has(WECOM_API):
        return
    settings = rt.settings
    if approval.sp_no is None and "step" not in payload and settings.wecom_approval_template_id:
        nodes = approver_nodes(approval.mode, approval.steps)
        creator = await _creator(rt, approval)
        if nodes and creator:
            text = f"{approval.doc_summary}\n规则：{approval.rule_name}\n申请人：{approval.requester}"
            body = apply_body(
                template_id=settings.wecom_approval_template_id,
                control_id=settings.wecom_approval_control_id,
                creator=creator,
                nodes=nodes,
                text=text,
            )
            try:
                answer = await rt.get(WECOM_API).call("oa/applyevent", body)
            except ApiError as exc:  # a refusal is final for this approval: it is decided in the console
                log.warning("approval not submitted to WeCom", extra={"approval": approval.id, "errcode": exc.errcode})
            else:
                await approvals.attach_sp_no(rt, approval.id, str(answer["sp_no"]))
        else:
            log.info("approval decided in the console: no WeCom approver or requester", extra={"approval": approval.id})
    if approval.notes and "step" not in payload:  # an approver was replaced (left, no lead): the requester hears who instead
        requester = await approvals.requester_userid(rt, approval.id)
        if requester:
            text = f"【审批提示】{approval.doc_summary}：" + "；".join(approval.notes) + "。"
            await sender.send_app_message(rt, touser=[requester], text=text, key=f"approval:{approval.id}:notes")
    due = approval.steps if approval.mode == "any" else [approval.steps[approval.current_step]]
    userids = list(dict.fromkeys(u for s in due for u in s.get("userids", [])))
    if userids:
        where = "请在企业微信“审批”或控制台“审批”中处理。"
        text = f"【待审批】{approval.doc_summary}（规则「{approval.rule_name}」，申请人 {approval.requester}）。{where}"
        await sender.send_app_message(rt, touser=userids, text=text, key=f"approval:{approval.id}:step:{approval.current_step}")


async def _creator(rt: Runtime, approval: approvals.ApprovalView) -> str:
    """Who the WeCom application is made by: the requester as a member, else the first approver (an API or console
    request by someone without a WeCom account still gets decided on the approvers' phones)."""
    requester = await approvals.requester_userid(rt, approval.id)
    if requester:
        return requester
    return next((u for s in approval.steps for u in s.get("userids", [])), "")


async def tell_requester(rt: Runtime, payload: dict[str, Any]) -> None:
    """The approval was decided: the requester (a WeCom member) hears the outcome and the approver's words."""
    userid = await approvals.requester_userid(rt, int(payload["approval_id"]))
    if not userid or not rt.has(WECOM_API):
        return
    outcome = OUTCOME_ZH.get(str(payload["status"]), str(payload["status"]))
    comment = f"，意见：{payload['comment']}" if payload.get("comment") else ""
    text = f"【审批结果】{payload['doc_ref']}（规则「{payload['rule']}」）{outcome}{comment}。"
    await sender.send_app_message(rt, touser=[userid], text=text, key=f"approval:{payload['approval_id']}:decided")


async def approval_changed(rt: Runtime, row: Any) -> str:
    """sys_approval_change: the application's new status moves our approval (once)."""
    change = read_change(row.payload or {})
    if change is None:
        return "no ApprovalInfo: nothing to do"
    sp_no, status, records = change
    view = await approvals.decide_from_wecom(rt, sp_no, status, records)
    if view is None:
        return f"sp_no {sp_no} is not one of ours"
    return f"approval {view.id}: {view.status}"


HANDLERS = [
    Handles(approvals.REQUESTED, submit_and_alert),
    Handles(approvals.DECIDED, tell_requester),
]
PROCESSORS = [Processes("wecom", "sys_approval_change", approval_changed)]
