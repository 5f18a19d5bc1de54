"""Data scopes (数据范围): whose customers — and so whose orders — a person sees, the same in the console, the API,
exports and the sidebar.

A scope is resolved per request from the person's account (their ``data_scope`` and WeCom member) and the WeCom
directory: "own" = the customers their member serves; "team" = theirs and those of everyone who reports to them;
"all" = everyone. The sidebar is always "own" for the member signed in. The bootstrap admin and work with no person
behind it (jobs, chat) see all. An account with "own"/"team" but no WeCom member sees no customer (the console
says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from scrm.core import audit
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import followed_by, served_by
from scrm.crm.staff import accounts
from scrm.crm.staff.domain import SCOPE_ALL, SCOPE_OWN, SCOPE_TEAM
from scrm.crm.staff.services import team_of


@dataclass(frozen=True)
class DataScope:
    kind: str  # own | team | all
    userids: frozenset[str] = frozenset()  # the WeCom members whose customers are in scope (own/team)
    unbound: bool = False  # own/team, but the account has no WeCom member: nothing is in scope

    @property
    def everything(self) -> bool:
        return self.kind == SCOPE_ALL

    def customers(self, customer_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
        """An SQL condition on a customer id column: true for the customers in scope."""
        if self.everything:
            return sa.true()
        if not self.userids:
            return sa.false()
        return customer_id.in_(followed_by(self.userids))

    def orders(self, customer_id: sa.ColumnElement[int], salesperson: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        """An SQL condition on an order's customer and salesperson: the order is in scope when its customer is, or
        when one of the scope's members placed it (a customer who later left them keeps their orders visible)."""
        if self.everything:
            return sa.true()
        if not self.userids:
            return sa.false()
        return sa.or_(self.customers(customer_id), salesperson.in_(sorted(self.userids)))

    def describe(self) -> str:
        if self.everything:
            return "全部客户"
        if self.unbound:
            return "账号未绑定企业微信成员，看不到任何客户（请管理员在“员工”中填写企业微信成员账号）"
        if self.kind == SCOPE_OWN:
            return "本人的客户"
        return f"本人及下属的客户（共 {len(self.userids)} 位成员）"


EVERYTHING = DataScope(SCOPE_ALL)


async def scope_for(rt: Runtime, actor: audit.Actor | None = None) -> DataScope:
    """The data scope of ``actor`` (default: who acts now)."""
    who = actor or audit.current_actor()
    if who.kind == "sidebar":
        return DataScope(SCOPE_OWN, frozenset({who.ref}))
    if who.staff_id is None:  # the bootstrap admin, the system, a customer in chat
        return EVERYTHING
    user = await accounts.get_staff(rt, who.staff_id)
    if user.data_scope == SCOPE_ALL:
        return EVERYTHING
    if not user.wecom_userid:
        return DataScope(user.data_scope, frozenset(), unbound=True)
    if user.data_scope == SCOPE_TEAM:
        async with rt.db.read() as conn:
            return DataScope(SCOPE_TEAM, frozenset(await team_of(conn, user.wecom_userid)))
    return DataScope(SCOPE_OWN, frozenset({user.wecom_userid}))


async def customer_in_scope(rt: Runtime, scope: DataScope, customer_id: int) -> bool:
    """Whether one customer is in the scope (a record page, an API GET: out of scope answers as not found)."""
    if scope.everything:
        return True
    if not scope.userids:
        return False
    async with rt.db.read() as conn:
        return await served_by(conn, customer_id, scope.userids)


async def order_in_scope(rt: Runtime, scope: DataScope, customer_id: int, salesperson_userid: str) -> bool:
    """Whether one order is in the scope: its customer is, or one of the scope's members placed it."""
    return scope.everything or salesperson_userid in scope.userids or await customer_in_scope(rt, scope, customer_id)
