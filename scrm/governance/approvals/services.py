"""Approvals (审批): rules, asking for an approval in a document's own transaction, deciding it (console, API or
WeCom's 审批 app) and telling the document's owner what was decided.

Guarantees:
- :func:`request_approval` runs inside the document's transaction: the document waits (``pending_approval``) and
  its approval exists together, or neither. Nothing downstream happens until ``approval.decided`` says approved.
- A decision is applied once: a second decision on a closed approval (a WeCom callback delivered again, two
  approvers at the same moment) changes nothing — the version guard and the status check see to it.
- Approvers are resolved when the approval is made: a member who has left (inactive) is replaced by their 直属上级,
  and the requester is told so (``notes`` and an ``approval.requester_told`` event).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import audit, outbox
from scrm.core.errors import NotFound
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.crm.staff.domain import ROLE_ADMIN, ROLE_NAMES_ZH
from scrm.crm.staff.services import get_salesperson
from scrm.governance.approvals.domain import (
    DOC_TYPES,
    MODES,
    ApprovalClosed,
    ApprovalRuleInvalid,
    Condition,
    NotYourApproval,
    StepSpec,
    check_conditions,
    check_steps,
    matches,
    next_after_approval,
)
from scrm.governance.approvals.models import ApprovalStatus, approval_rules, approvals

R, A = approval_rules.c, approvals.c
REQUESTED = "approval.requested"  # an approval waits: submit it to WeCom, alert the approvers
DECIDED = "approval.decided"  # approved / rejected / withdrawn: the document's owner moves the document
MAX_LEAD_HOPS = 5


# ---- rules ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    doc_type: str
    conditions: tuple[Condition, ...]
    steps: tuple[StepSpec, ...]
    mode: str
    priority: int
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "doc_type": self.doc_type,
            "conditions": [c.to_json() for c in self.conditions],
            "steps": [s.to_json() for s in self.steps],
            "mode": self.mode,
            "priority": self.priority,
            "active": self.active,
            "description": self.describe(),
        }

    def describe(self) -> str:
        """The rule as a sentence: 订单金额不小于 100,000.00 元 → 财务角色 → 管理员角色（依次审批）."""
        when = " 且 ".join(c.describe(self.doc_type) for c in self.conditions) or "所有单据"
        chain = " → ".join(s.label for s in self.steps) if self.mode == "sequential" else " / ".join(s.label for s in self.steps)
        return f"{DOC_TYPES[self.doc_type][0]}：{when}，需 {chain}（{MODES[self.mode]}）"


def _rule(row: Any) -> Rule:
    conditions = tuple(Condition(c["field"], c["op"], c["value"]) for c in row.conditions or ())
    steps = tuple(StepSpec("lead") if "lead" in s else StepSpec(*next(iter(s.items()))) for s in row.steps or ())
    return Rule(int(row.id), row.name, row.doc_type, conditions, steps, row.mode, int(row.priority), bool(row.active))


async def create_rule(
    rt: Runtime,
    *,
    name: str,
    doc_type: str,
    conditions: Iterable[Mapping[str, Any]],
    steps: Iterable[Mapping[str, Any]],
    mode: str = "sequential",
    priority: int = 100,
) -> Rule:
    """A new active rule. ApprovalRuleInvalid names what is wrong: an unknown field, a contradiction, a member who
    is not (or no longer) in the company."""
    name = name.strip()
    if not 0 < len(name) <= 64:
        raise ApprovalRuleInvalid("规则名称需为 1–64 个字，如“大额订单总监审批” (name)", field="name")
    checked = check_conditions(doc_type, conditions)
    chain = check_steps(steps, mode)
    await _check_members(rt, chain)
    now = rt.clock.now()
    values = {
        "name": name,
        "doc_type": doc_type,
        "conditions": [c.to_json() for c in checked],
        "steps": [s.to_json() for s in chain],
        "mode": mode,
        "priority": priority,
        "active": True,
        "created_at": now,
        "created_by": audit.current_actor().ref[:64],
        "updated_at": now,
    }
    async with rt.db.write() as conn:
        new_id = (await conn.execute(approval_rules.insert().values(**values).returning(R.id))).scalar_one()
        rule = _rule((await conn.execute(sa.select(approval_rules).where(R.id == new_id))).one())
        await audit.record(
            conn, now, action="create", entity="approval-rules", entity_id=rule.id, summary=rule.describe(), after=rule.to_json()
        )
    return rule


async def _check_members(rt: Runtime, chain: Iterable[StepSpec]) -> None:
    async with rt.db.read() as conn:
        for step in chain:
            if step.kind != "member":
                continue
            member = await get_salesperson(conn, step.value)
            if member is None or not member.active:
                raise ApprovalRuleInvalid(
                    f"成员 {step.value} 不在企业微信通讯录中或已离职，不能作为审批人 (inactive member)", field="steps"
                )


async def set_rule_active(rt: Runtime, rule_id: int, active: bool) -> Rule:
    """Switch a rule on or off (documents already waiting keep their approval)."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(approval_rules).where(R.id == rule_id))).first()
        if row is None:
            raise NotFound("没有这条审批规则 (no such rule)", id=rule_id)
        if bool(row.active) != active:
            await conn.execute(approval_rules.update().where(R.id == rule_id).values(active=active, updated_at=now))
            verb = "启用" if active else "停用"
            await audit.record(
                conn, now, action="update", entity="approval-rules", entity_id=rule_id, summary=f"{verb}审批规则「{row.name}」",
                before={"active": bool(row.active)}, after={"active": active},
            )  # fmt: skip
        return _rule((await conn.execute(sa.select(approval_rules).where(R.id == rule_id))).one())


async def list_rules(rt: Runtime, *, doc_type: str | None = None) -> list[Rule]:
    q = sa.select(approval_rules).order_by(R.doc_type, R.priority, R.id)
    if doc_type is not None:
        q = q.where(R.doc_type == doc_type)
    async with rt.db.read() as conn:
        return [_rule(r) for r in (await conn.execute(q)).all()]


def rule_exists(doc_type: str) -> sa.Exists:
    """``EXISTS`` an active rule for ``doc_type``, as SQL: a hand-written statement (the order placement) asks it in
    the same statement and snapshot as the rest of its work, instead of a probe of its own."""
    return sa.exists().where(R.doc_type == doc_type, R.active.is_(True))


# ---- approvals ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalView:
    id: int
    doc_type: str
    doc_ref: str
    doc_summary: str
    rule_id: int
    rule_name: str
    mode: str
    steps: list[dict[str, Any]]
    current_step: int
    status: str
    requester: str
    requester_kind: str
    notes: list[str]
    sp_no: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decision_comment: str
    customer_id: int | None
    facts: dict[str, Any]
    version: int

    @property
    def waiting_for(self) -> list[str]:
        """Who must act now: the current step's approvers (every step's for "any")."""
        if self.status != ApprovalStatus.PENDING:
            return []
        steps = self.steps if self.mode == "any" else [self.steps[self.current_step]]
        return [f"{s['label']}（{'、'.join(s['names']) or '无人'}）" for s in steps]

    def brief(self) -> dict[str, Any]:
        """What a waiting document's own GET carries: ``{"id", "rule", "waiting_for"}``."""
        return {"id": self.id, "rule": self.rule_name, "waiting_for": self.waiting_for}

    def to_json(self) -> dict[str, Any]:
        iso = lambda v: v.isoformat() if v is not None else None  # noqa: E731
        return {
            "id": self.id,
            "doc_type": self.doc_type,
            "doc_ref": self.doc_ref,
            "summary": self.doc_summary,
            "rule": self.rule_name,
            "rule_id": self.rule_id,
            "mode": self.mode,
            "status": self.status,
            "waiting_for": self.waiting_for,
            "steps": [{k: s.get(k) for k in ("label", "names", "decision", "decided_by", "comment", "at")} for s in self.steps],
            "requester": self.requester,
            "notes": list(self.notes),
            "sp_no": self.sp_no,
            "created_at": self.created_at.isoformat(),
            "decided_at": iso(self.decided_at),
            "comment": self.decision_comment,
        }


def _view(row: Any) -> ApprovalView:
    return ApprovalView(
        int(row.id), row.doc_type, row.doc_ref, row.doc_summary, int(row.rule_id), row.rule_name, row.mode, list(row.steps or []),
        int(row.current_step), row.status, row.requester, row.requester_kind, list(row.notes or []), row.sp_no, row.created_at,
        row.decided_at, row.decision_comment, row.customer_id, dict(row.facts or {}), int(row.version),
    )  # fmt: skip


async def _requester_userid(conn: AsyncConnection, actor: audit.Actor, fallback: str) -> str:
    """The requester as a WeCom member: a sidebar user is one; a console/API user is one when their account is bound."""
    if actor.kind == "sidebar":
        return actor.ref
    if actor.staff_id is not None:
        bound = next((u.wecom_userid for u in await accounts.staff_in(conn) if u.id == actor.staff_id), None)
        if bound:
            return bound
    return fallback


async def _active_or_lead(conn: AsyncConnection, userid: str, notes: list[str]) -> tuple[str, str] | None:
    """(userid, name) of the member, or of the first active lead above them when they have left (noted)."""
    seen: set[str] = set()
    current: str | None = userid
    for _ in range(MAX_LEAD_HOPS):
        if not current or current in seen:
            return None
        seen.add(current)
        member = await get_salesperson(conn, current)
        if member is None:
            return None
        if member.active:
            if current != userid:
                notes.append(f"审批人 {userid} 已离职，改由其直属上级 {member.display_name}（{current}）审批")
            return current, member.display_name
        current = member.leader_userid
    return None


async def _role_holders(conn: AsyncConnection, role: str, out: dict[str, Any]) -> None:
    for r in await accounts.staff_in(conn):
        if r.active and role in r.roles:
            out["usernames"].append(r.username)
            out["names"].append(r.display_name or r.username)
            if r.wecom_userid:
                out["userids"].append(r.wecom_userid)


async def _to_admin(conn: AsyncConnection, out: dict[str, Any], why: str, notes: list[str]) -> dict[str, Any]:
    """Nobody can take this step: the admins do (the bootstrap admin always can), and the requester is told why."""
    notes.append(f"{why}，由管理员审批")
    out.update(kind="role", role=ROLE_ADMIN, label="管理员", userids=[], usernames=[], names=[])
    await _role_holders(conn, ROLE_ADMIN, out)
    if not out["names"]:
        out["names"] = ["启动管理员"]
    return out


async def _resolve(conn: AsyncConnection, step: StepSpec, requester_userid: str, notes: list[str]) -> dict[str, Any]:
    """A step as stored on the approval: who may decide it (WeCom userids, staff usernames) and its label."""
    out: dict[str, Any] = {"kind": step.kind, "label": step.label, "userids": [], "usernames": [], "names": []}
    if step.kind == "role":
        out["role"] = step.value
        await _role_holders(conn, step.value, out)
        if not out["usernames"]:
            return await _to_admin(conn, out, f"没有启用的{ROLE_NAMES_ZH[step.value]}账号", notes)
        return out
    if step.kind == "lead":
        requester = await get_salesperson(conn, requester_userid) if requester_userid else None
        found = await _active_or_lead(conn, requester.leader_userid, notes) if requester is not None and requester.leader_userid else None
    else:
        found = await _active_or_lead(conn, step.value, notes)
    if found is None:
        why = "申请人没有直属上级" if step.kind == "lead" else f"审批人 {step.value} 已离职且没有在职的上级"
        return await _to_admin(conn, out, why, notes)
    out["userids"], out["names"] = [found[0]], [found[1]]
    out["usernames"] = [u.username for u in await accounts.staff_in(conn) if u.active and u.wecom_userid == found[0]]
    return out


async def request_approval(
    conn: AsyncConnection,
    now: dt.datetime,
    *,
    doc_type: str,
    doc_ref: str,
    summary: str,
    facts: Mapping[str, Any],
    customer_id: int | None = None,
    requester_userid: str = "",
) -> ApprovalView | None:
    """In the document's transaction: the first active rule (by priority) for ``doc_type`` whose conditions the
    facts meet makes a pending approval (and an ``approval.requested`` event); None when no rule applies — the
    document goes on as before. ``requester_userid``: the WeCom member asking, when the caller knows better than
    the request (an order placed in chat for a salesperson's customer)."""
    rows = (
        await conn.execute(sa.select(approval_rules).where(R.doc_type == doc_type, R.active.is_(True)).order_by(R.priority, R.id))
    ).all()
    rule = next((r for r in map(_rule, rows) if matches(r.conditions, facts)), None)
    if rule is None:
        return None
    actor = audit.current_actor()
    notes: list[str] = []
    userid = await _requester_userid(conn, actor, requester_userid)
    steps = [await _resolve(conn, step, userid, notes) for step in rule.steps]
    values = {
        "doc_type": doc_type,
        "doc_ref": doc_ref,
        "doc_summary": summary[:300],
        "facts": dict(facts),
        "rule_id": rule.id,
        "rule_name": rule.name,
        "mode": rule.mode,
        "steps": steps,
        "current_step": 0,
        "status": ApprovalStatus.PENDING,
        "requester_kind": actor.kind,
        "requester": actor.ref[:64],
        "requester_userid": userid,
        "customer_id": customer_id,
        "notes": notes,
        "version": 1,
        "created_at": now,
    }
    new_id = int((await conn.execute(approvals.insert().values(**values).returning(A.id))).scalar_one())
    await outbox.add(conn, REQUESTED, {"approval_id": new_id}, now)
    await audit.record(conn, now, action="request_approval", entity=f"{doc_type}s" if doc_type == "order" else doc_type, entity_id=doc_ref,
                       summary=f"{summary}：按规则「{rule.name}」提交审批", after={"approval_id": new_id, "rule": rule.name})  # fmt: skip
    return _view((await conn.execute(sa.select(approvals).where(A.id == new_id))).one())


async def requester_userid(rt: Runtime, approval_id: int) -> str:
    """The requester as a WeCom member ("" when they are not one): who hears the outcome in WeCom."""
    async with rt.db.read() as conn:
        return str((await conn.execute(sa.select(A.requester_userid).where(A.id == approval_id))).scalar_one_or_none() or "")


async def get_approval(rt: Runtime, approval_id: int) -> ApprovalView:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(approvals).where(A.id == approval_id))).first()
    if row is None:
        raise NotFound("没有这个审批 (no such approval)", id=approval_id)
    return _view(row)


async def approval_of(conn: AsyncConnection, doc_type: str, doc_ref: str) -> ApprovalView | None:
    """The newest approval of a document (a waiting order's GET shows it)."""
    row = (
        await conn.execute(sa.select(approvals).where(A.doc_type == doc_type, A.doc_ref == doc_ref).order_by(A.id.desc()).limit(1))
    ).first()
    return _view(row) if row is not None else None


async def waiting_brief(rt: Runtime, doc_type: str, doc_ref: str) -> dict[str, Any] | None:
    """``{"id", "rule", "waiting_for"}`` of the approval a document waits for (its GET answers with it), or None."""
    async with rt.db.read() as conn:
        found = await approval_of(conn, doc_type, doc_ref)
    return found.brief() if found is not None and found.status == ApprovalStatus.PENDING else None


async def list_approvals(
    rt: Runtime,
    *,
    status: str | None = None,
    doc_type: str | None = None,
    for_actor: audit.Actor | None = None,
    which: str = "both",
    limit: int = 100,
) -> list[ApprovalView]:
    """Approvals newest first; ``for_actor``: only those this person may decide now (``which="decide"``), asked
    for (``"asked"``) or either (``"both"``, the inbox)."""
    q = sa.select(approvals).order_by(A.id.desc()).limit(2000 if for_actor is not None else limit)
    if status:
        q = q.where(A.status == status)
    if doc_type:
        q = q.where(A.doc_type == doc_type)
    async with rt.db.read() as conn:
        found = [_view(r) for r in (await conn.execute(q)).all()]
    if for_actor is not None:
        me = await _identity(rt, for_actor)
        asked = lambda a: a.requester == for_actor.ref and a.requester_kind == for_actor.kind  # noqa: E731
        decide = lambda a: _may_decide(me, a, for_actor) is not None  # noqa: E731
        keep = {"decide": decide, "asked": asked}.get(which, lambda a: asked(a) or decide(a))
        found = [a for a in found if keep(a)][:limit]
    return found


@dataclass(frozen=True)
class Identity:
    """Who a person is for approvals: their roles, console username and WeCom userid."""

    admin: bool
    roles: frozenset[str]
    username: str
    userid: str


async def _identity(rt: Runtime, actor: audit.Actor) -> Identity:
    if actor.kind == "admin":
        return Identity(True, frozenset({ROLE_ADMIN}), "admin", "")
    if actor.kind == "sidebar":
        bound = await accounts.staff_for_wecom(rt, actor.ref)
        roles = frozenset(bound.roles) if bound is not None else frozenset()
        return Identity(ROLE_ADMIN in roles, roles, bound.username if bound is not None else "", actor.ref)
    if actor.kind == "wecom":
        return Identity(False, frozenset(), "", actor.ref)
    if actor.staff_id is not None:
        user = await accounts.get_staff(rt, actor.staff_id)
        return Identity(ROLE_ADMIN in user.roles, frozenset(user.roles), user.username, user.wecom_userid or "")
    return Identity(False, frozenset(), "", "")


def _step_admits(me: Identity, step: Mapping[str, Any]) -> bool:
    if step.get("kind") == "role" and step.get("role") in me.roles:
        return True
    return bool((me.userid and me.userid in step.get("userids", [])) or (me.username and me.username in step.get("usernames", [])))


def _may_decide(me: Identity, a: ApprovalView, actor: audit.Actor) -> int | None:
    """The step this person would decide now, or None. An admin may decide any waiting step (recorded as such);
    nobody but the bootstrap admin decides what they asked for themselves (四眼原则: the requester is not an approver)."""
    if a.status != ApprovalStatus.PENDING:
        return None
    if actor.kind != "admin" and a.requester == actor.ref and a.requester_kind == actor.kind:
        return None
    candidates = range(len(a.steps)) if a.mode == "any" else [a.current_step]
    for i in candidates:
        if _step_admits(me, a.steps[i]) or me.admin:
            return i
    return None


async def decide(rt: Runtime, approval_id: int, *, approve: bool, comment: str = "", actor: audit.Actor | None = None) -> ApprovalView:
    """An approver's decision. Approving the last needed step approves the document; rejecting rejects it. Both
    emit ``approval.decided`` in the same transaction. NotYourApproval when this person may not decide now;
    ApprovalClosed when it was decided already (the same person repeating their decision gets the answer again)."""
    who = actor or audit.current_actor()
    me = await _identity(rt, who)
    comment = comment.strip()[:500]
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(approvals).where(A.id == approval_id))).first()
        if row is None:
            raise NotFound("没有这个审批 (no such approval)", id=approval_id)
        current = _view(row)
        if current.status != ApprovalStatus.PENDING:
            last = next((s for s in reversed(current.steps) if s.get("decision")), {})
            if last.get("decided_by") == who.ref and last.get("decision") == ("approved" if approve else "rejected"):
                return current
            raise ApprovalClosed(
                f"该审批已{_STATUS_ZH.get(current.status, current.status)}，不能再审批 (already decided)", status=current.status
            )
        step = _may_decide(me, current, who)
        if step is None:
            raise NotYourApproval(f"当前等待 {'、'.join(current.waiting_for)} 审批，您无权审批此单 (not your step)")
        return await _apply(conn, rt, current, step, approve=approve, comment=comment, decided_by=who.ref, now=now)


_STATUS_ZH = {"pending": "待审批", "approved": "通过", "rejected": "驳回", "withdrawn": "撤回"}


async def _apply(
    conn: AsyncConnection,
    rt: Runtime,
    current: ApprovalView,
    step: int,
    *,
    approve: bool,
    comment: str,
    decided_by: str,
    now: dt.datetime,
    announce_next: bool = True,
) -> ApprovalView:
    steps = [dict(s) for s in current.steps]
    steps[step].update(decision="approved" if approve else "rejected", decided_by=decided_by[:64], comment=comment, at=now.isoformat())
    nxt = next_after_approval(current.mode, steps, step) if approve else None
    status = ApprovalStatus.PENDING if approve and nxt is not None else (ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED)
    values: dict[str, Any] = {"steps": steps, "status": status, "version": current.version + 1}
    if nxt is not None:
        values["current_step"] = nxt
    if status != ApprovalStatus.PENDING:
        values.update(decided_at=now, decision_comment=comment)
    result = await conn.execute(
        approvals.update().where(A.id == current.id, A.status == ApprovalStatus.PENDING, A.version == current.version).values(**values)
    )
    if result.rowcount != 1:
        raise ApprovalClosed("该审批刚刚被其他人处理，请刷新后查看 (decided meanwhile)")
    if status != ApprovalStatus.PENDING:
        await outbox.add(conn, DECIDED, _decided_payload(current, status, comment, decided_by), now)
    elif nxt is not None and announce_next:
        await outbox.add(conn, REQUESTED, {"approval_id": current.id, "step": nxt}, now)  # the next approver hears of it
    await audit.record(conn, now, action="approve" if approve else "reject", entity="approvals", entity_id=current.id,
                       summary=f"{current.doc_summary}（规则「{current.rule_name}」第 {step + 1} 步）", before={"status": current.status},
                       after={"status": status, "step": step + 1, "comment": comment})  # fmt: skip
    return _view((await conn.execute(sa.select(approvals).where(A.id == current.id))).one())


def _decided_payload(a: ApprovalView, status: str, comment: str, decided_by: str) -> dict[str, Any]:
    return {
        "approval_id": a.id,
        "doc_type": a.doc_type,
        "doc_ref": a.doc_ref,
        "status": status,
        "comment": comment,
        "decided_by": decided_by,
        "requester": a.requester,
        "requester_kind": a.requester_kind,
        "customer_id": a.customer_id,
        "rule": a.rule_name,
    }


async def withdraw(conn: AsyncConnection, now: dt.datetime, doc_type: str, doc_ref: str, reason: str) -> None:
    """The document was cancelled while it waited: its approval is withdrawn (approvers no longer see it)."""
    await conn.execute(
        approvals.update()
        .where(A.doc_type == doc_type, A.doc_ref == doc_ref, A.status == ApprovalStatus.PENDING)
        .values(status=ApprovalStatus.WITHDRAWN, decided_at=now, decision_comment=reason[:500], version=A.version + 1)
    )


async def attach_sp_no(rt: Runtime, approval_id: int, sp_no: str) -> None:
    """Remember the WeCom 审批单号 of an approval (submitted once; a resubmission keeps the first)."""
    async with rt.db.write() as conn:
        await conn.execute(approvals.update().where(A.id == approval_id, A.sp_no.is_(None)).values(sp_no=sp_no[:64]))


# WeCom SpStatus (审批状态): 1 审批中, 2 已通过, 3 已驳回, 4 已撤销, 6 通过后撤销, 7 已删除, 10 已支付.
SP_APPROVED, SP_REJECTED = 2, 3
SP_WITHDRAWN = (4, 6, 7)


async def decide_from_wecom(rt: Runtime, sp_no: str, sp_status: int, records: list[dict[str, Any]]) -> ApprovalView | None:
    """A ``sys_approval_change`` callback: the application's final state moves the approval once. ``records``:
    the SpRecord nodes as [{"userid", "status", "speech"}] (the deciding approvers and their comments). A status
    the approval already has, an unknown sp_no or an in-progress status changes nothing."""
    now = rt.clock.now()
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(approvals).where(A.sp_no == sp_no))).first()
        if row is None:
            return None
        current = _view(row)
        if current.status != ApprovalStatus.PENDING or sp_status not in (SP_APPROVED, SP_REJECTED, *SP_WITHDRAWN):
            return current
        decided = [r for r in records if r.get("status") in (SP_APPROVED, SP_REJECTED)]
        last = decided[-1] if decided else {}
        who, speech = str(last.get("userid") or "wecom"), str(last.get("speech") or "")
        actor = audit.Actor("wecom", who[:64], "企业微信审批")
        with audit.acting_as(actor):
            if sp_status in SP_WITHDRAWN:
                await conn.execute(
                    approvals.update()
                    .where(A.id == current.id, A.status == ApprovalStatus.PENDING)
                    .values(status=ApprovalStatus.WITHDRAWN, decided_at=now, decision_comment="在企业微信中撤销", version=A.version + 1)
                )
                await outbox.add(conn, DECIDED, _decided_payload(current, ApprovalStatus.WITHDRAWN, "在企业微信中撤销", who), now)
                await audit.record(conn, now, action="withdraw", entity="approvals", entity_id=current.id, summary=current.doc_summary)
                return _view((await conn.execute(sa.select(approvals).where(A.id == current.id))).one())
            # WeCom ran the whole chain (its approver nodes are ours): the final status decides every open step.
            view = current
            while view.status == ApprovalStatus.PENDING:
                step = view.current_step
                approve = sp_status == SP_APPROVED
                view = await _apply(conn, rt, view, step, approve=approve, comment=speech, decided_by=who, now=now, announce_next=False)
            return view
