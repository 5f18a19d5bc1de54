"""Field permissions, applied: what the person acting may see and change of the protected fields — read per
request, the same for the console, the sidebar, the API and exports, because the services that hand out these
fields ask here (:func:`rules_for`) before they answer."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from scrm.core import audit
from scrm.core.db import upsert
from scrm.core.errors import Forbidden
from scrm.core.runtime import Runtime
from scrm.crm.staff import accounts
from scrm.crm.staff.domain import ROLE_SALES
from scrm.governance.fields.domain import DEFAULTS, FIELDS, OPEN, check_mode, mask_phone, resolve, strip_phone
from scrm.governance.fields.models import field_permissions

F = field_permissions.c


@dataclass(frozen=True)
class FieldRules:
    modes: dict[str, str]

    def phone(self, text: str | None) -> str | None:
        """A phone-bearing text as this person may see it (masked, or the numbers hidden)."""
        if text is None:
            return None
        mode = self.modes["phone"]
        return text if mode == "visible" else mask_phone(text) if mode == "masked" else strip_phone(text)

    @property
    def credit_limit_visible(self) -> bool:
        return self.modes["credit_limit"] != "hidden"

    def check_credit_limit_edit(self) -> None:
        if self.modes["credit_limit"] != "edit":
            raise Forbidden("您的角色不能修改信用额度（字段权限：信用额度）(credit_limit is read-only for your role)")

    @property
    def cost_visible(self) -> bool:
        return self.modes["cost"] == "visible"


OPEN_RULES = FieldRules(dict(OPEN))


async def _overrides(rt: Runtime) -> dict[tuple[str, str], str]:
    async with rt.db.read() as conn:
        return {(r.role, r.field): r.mode for r in await conn.execute(sa.select(field_permissions))}


async def rules_for(rt: Runtime, actor: audit.Actor | None = None) -> FieldRules:
    """The field rules of ``actor`` (default: who acts now). The bootstrap admin and work with no person behind it
    see everything; a sidebar member has the roles of the account bound to them, else the sales role's."""
    who = actor or audit.current_actor()
    if who.kind in ("admin", "system", "customer", "wecom", "cli"):
        return OPEN_RULES
    if who.kind == "sidebar":
        bound = await accounts.staff_for_wecom(rt, who.ref)
        roles = bound.roles if bound is not None else (ROLE_SALES,)
    elif who.staff_id is not None:
        roles = (await accounts.get_staff(rt, who.staff_id)).roles
    else:
        roles = who.roles
    return FieldRules(resolve(roles, await _overrides(rt)))


async def matrix(rt: Runtime) -> dict[str, dict[str, str]]:
    """Role → field → mode as it stands (defaults with the admin's changes)."""
    overrides = await _overrides(rt)
    return {role: {field: overrides.get((role, field), mode) for field, mode in fields.items()} for role, fields in DEFAULTS.items()}


async def set_mode(rt: Runtime, role: str, field: str, mode: str) -> None:
    """Change one role's mode for one field (a permission change, in the audit trail)."""
    check_mode(role, field, mode)
    before = (await matrix(rt))[role][field]
    if before == mode:
        return
    now = rt.clock.now()
    who = audit.current_actor()
    async with rt.db.write() as conn:
        values = {"role": role, "field": field, "mode": mode, "updated_at": now, "updated_by": who.ref[:64]}
        await conn.execute(upsert(field_permissions, rt.db.dialect, ["role", "field"], values, ["mode", "updated_at", "updated_by"]))
        await audit.record(
            conn, now, action="permission_change", entity="field-permissions", entity_id=f"{role}.{field}",
            summary=f"字段权限：{role} 的「{FIELDS[field].label}」", before={"mode": before}, after={"mode": mode},
        )  # fmt: skip
