"""Handover rules with no I/O: what WeCom's answers mean for one customer's transfer, and the words shown for them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class HandoverKind(enum.StrEnum):
    ONJOB = "onjob"  # 在职转接: the member still works here; each customer at most twice in 90 days
    RESIGNED = "resigned"  # 离职继承: the member left; their customers wait in WeCom's unassigned list


class HandoverStatus(enum.StrEnum):
    RUNNING = "running"  # some customer is still being sent or waits for its 24 h
    DONE = "done"  # every customer and group has its outcome


class TransferStatus(enum.StrEnum):
    PENDING = "pending"  # recorded, not yet sent to WeCom
    WAITING = "waiting"  # WeCom started it: the takeover member gets the customer after 24 h unless they refuse
    SUCCESS = "success"  # taken over: follows, open orders and other owned rows moved
    REFUSED = "refused"  # the customer refused: they stay with the handover member
    LIMIT_EXCEEDED = "limit_exceeded"  # transferred twice in 90 days already (40128), or the takeover member is full
    FAILED = "failed"  # WeCom refused it (errcode says why)


BATCH_SIZE = 100  # external_userids per transfer_customer call (WeCom's limit)

# transfer_customer's per-customer errcodes (docs/wecom.md §5b; WeCom's global errcode table).
TOO_FREQUENT = 40128  # 客户转接过于频繁: an employed member's customer, twice in 90 days already
IN_PROGRESS = 40129  # 当前客户正在转接中: a transfer already waits (also what a repeated send of ours answers)
ERRCODE_ZH = {
    40096: "企业微信中没有这个客户",
    40097: "该成员尚未离职",
    TOO_FREQUENT: "90 天内该客户已转接两次，暂不能再转接",
    IN_PROGRESS: "该客户正在转接中",
    40130: "原跟进人与接替成员相同",
    40131: "该成员已不是这位客户的跟进人",
    60111: "成员不存在或已离职",
    84061: "企业微信中没有这位客户与成员的关系",
    84074: "接替成员没有客户联系权限",
}

# transfer_result's status per customer.
RESULT_DONE, RESULT_WAITING, RESULT_REFUSED, RESULT_TAKEOVER_FULL, RESULT_NO_RECORD = 1, 2, 3, 4, 5

# transfer_fail's FailReason (the change_external_contact callback).
FAIL_REASONS = {"customer_refused": TransferStatus.REFUSED, "customer_limit_exceed": TransferStatus.LIMIT_EXCEEDED}

STATUS_ZH = {
    TransferStatus.PENDING: "待发送",
    TransferStatus.WAITING: "等待接替",
    TransferStatus.SUCCESS: "已接替",
    TransferStatus.REFUSED: "客户拒绝",
    TransferStatus.LIMIT_EXCEEDED: "超出转接限制",
    TransferStatus.FAILED: "失败",
}
KIND_ZH = {HandoverKind.ONJOB: "在职转接", HandoverKind.RESIGNED: "离职继承"}
OPEN = (TransferStatus.PENDING, TransferStatus.WAITING)  # not yet decided
TAKEOVER_FULL_ZH = "接替成员的客户数已达上限"


@dataclass(frozen=True)
class Outcome:
    """What one answer means for a customer's transfer row."""

    status: TransferStatus
    errcode: int | None = None
    reason: str = ""


def outcome_of_send(errcode: int) -> Outcome:
    """transfer_customer's errcode for one customer: 0 (or "already in transfer", our own earlier send whose answer was
    lost) → waiting; 40128 → limit exceeded; anything else → failed with the code."""
    if errcode in (0, IN_PROGRESS):
        return Outcome(TransferStatus.WAITING)
    if errcode == TOO_FREQUENT:
        return Outcome(TransferStatus.LIMIT_EXCEEDED, errcode, ERRCODE_ZH[TOO_FREQUENT])
    return Outcome(TransferStatus.FAILED, errcode, ERRCODE_ZH.get(errcode, f"企业微信拒绝转接（错误码 {errcode}）"))


def outcome_of_result(status: int) -> Outcome | None:
    """transfer_result's status for one customer; None while it still waits (2) or WeCom has no record (5)."""
    if status == RESULT_DONE:
        return Outcome(TransferStatus.SUCCESS)
    if status == RESULT_REFUSED:
        return Outcome(TransferStatus.REFUSED, reason="客户拒绝了转接")
    if status == RESULT_TAKEOVER_FULL:
        return Outcome(TransferStatus.LIMIT_EXCEEDED, reason=TAKEOVER_FULL_ZH)
    return None


def transfer_title(from_name: str, to_name: str, kind: str) -> str:
    """The customer timeline's line: who served the customer, who serves them from now."""
    return f"客户由 {from_name} 转交给 {to_name}（{KIND_ZH.get(HandoverKind(kind), kind)}）"
