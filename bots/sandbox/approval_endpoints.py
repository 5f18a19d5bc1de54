"""Emulated 审批 app (``oa/*``): submitting an application to a template, reading it, and — from the sandbox page or a
test — an approver deciding it on their phone, which sends the ``sys_approval_change`` callback to the product.

Shapes follow docs/wecom.md §5b: ``oa/applyevent`` takes ``creator_userid``, ``template_id``, ``approver``
(nodes ``{"attr": 1 或签 | 2 会签, "userid": [...]}``), ``apply_data.contents`` (the template's controls) and
answers ``sp_no``; SpStatus 1 审批中, 2 已通过, 3 已驳回, 4 已撤销. The errcodes of the 审批 API are marked
(unconfirmed) in :class:`bots.outbound.client.Errcode`.
"""

from __future__ import annotations

from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint
from bots.sandbox.entities import Application, ApprovalNode
from bots.sandbox.state import SandboxState
from config.settings import SANDBOX_APPROVAL_CONTROL

MAX_NODES = 20


def applyevent(state: SandboxState, call: Call) -> dict[str, Any]:
    creator = call.field("creator_userid")
    if creator not in state.members:
        raise ApiFailure(Errcode.INVALID_USERID, "creator_userid not found")
    template = call.field("template_id")
    if template not in state.approval_templates:
        raise ApiFailure(Errcode.APPROVAL_TEMPLATE_INVALID, "template not found")
    if call.field("use_template_approver", int, required=False, default=0) != 0:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "the sandbox template has no approvers of its own: pass approver")
    nodes: list[ApprovalNode] = []
    raw_nodes = call.field("approver", list)
    if not 0 < len(raw_nodes) <= MAX_NODES:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "approver must list 1-20 nodes")
    for node in raw_nodes:
        userids = node.get("userid") if isinstance(node, dict) else None
        attr = node.get("attr") if isinstance(node, dict) else None
        if attr not in (1, 2) or not isinstance(userids, list) or not userids or not all(isinstance(u, str) for u in userids):
            raise ApiFailure(Errcode.INVALID_PARAMETER, "approver node needs attr 1|2 and userid [...]")
        unknown = [u for u in userids if u not in state.members]
        if unknown:
            raise ApiFailure(Errcode.INVALID_USERID, f"approver {unknown[0]} not found")
        nodes.append(ApprovalNode(int(attr), list(userids)))
    data = call.field("apply_data", dict)
    contents = data.get("contents")
    if not isinstance(contents, list) or not any(isinstance(c, dict) and c.get("id") == SANDBOX_APPROVAL_CONTROL for c in contents):
        raise ApiFailure(Errcode.INVALID_PARAMETER, f"apply_data.contents must fill the template's control {SANDBOX_APPROVAL_CONTROL}")
    now = state.now()
    sp_no = f"{now:%Y%m%d}{len(state.applications) + 1:04d}"
    state.applications[sp_no] = Application(sp_no, template, creator, nodes, data, int(now.timestamp()))
    return {"sp_no": sp_no}


def _decisions(node: ApprovalNode) -> list[dict[str, Any]]:
    """A node's approvers as both answers list them: who decided (status, speech, time), else each one pending."""
    return node.details or [{"userid": u, "status": 1, "speech": "", "time": 0} for u in node.userids]


def _info(app: Application) -> dict[str, Any]:
    """The application as getapprovaldetail and the callback describe it."""
    return {
        "sp_no": app.sp_no,
        "sp_name": "审批",
        "sp_status": app.status,
        "template_id": app.template_id,
        "apply_time": app.apply_time,
        "applyer": {"userid": app.creator, "partyid": "1"},
        "sp_record": [
            {
                "sp_status": n.status,
                "approverattr": n.attr,
                "details": [
                    {"approver": {"userid": d["userid"]}, "speech": d["speech"], "sp_status": d["status"], "sptime": d["time"]}
                    for d in _decisions(n)
                ],
            }
            for n in app.nodes
        ],
        "apply_data": app.apply_data,
    }


def getapprovaldetail(state: SandboxState, call: Call) -> dict[str, Any]:
    app = state.applications.get(call.field("sp_no"))
    if app is None:
        raise ApiFailure(Errcode.APPROVAL_NOT_FOUND, "sp_no not found")
    return {"info": _info(app)}


def decide(state: SandboxState, sp_no: str, userid: str, approve: bool, speech: str) -> Application:
    """An approver decides on their phone: their node moves (or-sign: at once; joint-sign: when all agreed), a
    rejection ends the application. ValueError when it is not theirs to decide now."""
    app = state.applications.get(sp_no)
    if app is None:
        raise ValueError(f"no application {sp_no}")
    node = app.current
    if app.status != 1 or node is None:
        raise ValueError(f"application {sp_no} is already decided")
    if userid not in node.userids or any(d["userid"] == userid for d in node.details):
        raise ValueError(f"{userid} is not an approver of the current node of {sp_no}")
    status = 2 if approve else 3
    node.details.append({"userid": userid, "status": status, "speech": speech, "time": int(state.now().timestamp())})
    if not approve:
        node.status = app.status = 3
    elif node.attr == 1 or {d["userid"] for d in node.details} >= set(node.userids):
        node.status = 2
        if app.current is None:
            app.status = 2
    return app


def callback_fields(state: SandboxState, app: Application) -> dict[str, Any]:
    """The ``<ApprovalInfo>`` of a sys_approval_change callback (as WeCom writes it: PascalCase, SpRecord repeated)."""
    return {
        "SpNo": app.sp_no,
        "SpName": "审批",
        "SpStatus": app.status,
        "TemplateId": app.template_id,
        "ApplyTime": app.apply_time,
        "Applyer": {"UserId": app.creator, "Party": "1"},
        "SpRecord": [
            {
                "SpStatus": n.status,
                "ApproverAttr": n.attr,
                "Details": [
                    {"Approver": {"UserId": d["userid"]}, "Speech": d["speech"], "SpStatus": d["status"], "SpTime": d["time"]}
                    for d in _decisions(n)
                ],
            }
            for n in app.nodes
        ],
        "StatuChangeEvent": app.status,
    }


ROUTES: dict[str, Endpoint] = {
    "oa/applyevent": applyevent,
    "oa/getapprovaldetail": getapprovaldetail,
}
