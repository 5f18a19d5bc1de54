"""The 审批 app's shapes (pure): an approval as an ``oa/applyevent`` body, and a ``sys_approval_change`` callback's
ApprovalInfo as (sp_no, status, the decided records)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_TEXT = 1000  # the 多行文本 control's text (the summary approvers read on their phone)


def approver_nodes(mode: str, steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """WeCom approver nodes for our steps: "sequential" → one or-sign node per step in order; "any" → one or-sign node
    of everyone. Steps nobody in WeCom can decide (a role without bound members) have no node."""
    if mode == "any":
        everyone = list(dict.fromkeys(u for s in steps for u in s.get("userids", [])))
        return [{"attr": 1, "userid": everyone}] if everyone else []
    return [{"attr": 1, "userid": list(s["userids"])} for s in steps if s.get("userids")]


def apply_body(*, template_id: str, control_id: str, creator: str, nodes: list[dict[str, Any]], text: str) -> dict[str, Any]:
    return {
        "creator_userid": creator,
        "template_id": template_id,
        "use_template_approver": 0,
        "approver": nodes,
        "notify_type": 1,
        "apply_data": {"contents": [{"control": "Textarea", "id": control_id, "value": {"text": text[:MAX_TEXT]}}]},
        "summary_list": [{"summary_info": [{"text": text[:20], "lang": "zh_CN"}]}],
    }


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if value not in (None, "") else []


def read_change(fields: Mapping[str, Any]) -> tuple[str, int, list[dict[str, Any]]] | None:
    """(sp_no, SpStatus, [{"userid", "status", "speech"} of each decided approver, in node order]) of a
    sys_approval_change callback, or None when it carries no application."""
    info = fields.get("ApprovalInfo")
    if not isinstance(info, Mapping):
        return None
    sp_no = str(info.get("SpNo") or "").strip()
    raw_status = str(info.get("SpStatus") or "").strip()
    if not sp_no or not raw_status.isdecimal():
        return None
    records: list[dict[str, Any]] = []
    for node in _as_list(info.get("SpRecord")):
        if not isinstance(node, Mapping):
            continue
        for d in _as_list(node.get("Details")):
            if not isinstance(d, Mapping):
                continue
            approver = d.get("Approver") if isinstance(d.get("Approver"), Mapping) else {}
            status = str(d.get("SpStatus") or "").strip()
            if status.isdecimal() and int(status) in (2, 3):
                records.append({"userid": str(approver.get("UserId") or ""), "status": int(status), "speech": str(d.get("Speech") or "")})
    return sp_no, int(raw_status), records
