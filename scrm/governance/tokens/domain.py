"""Per-person API tokens (个人访问令牌), the pure rules: the token format, the areas of /api/v1 and what each role
may do in them.

A token is ``scrm_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: a random secret that
long needs no slow KDF, and a lookup by hash is an index probe. The first 12 characters are kept to tell tokens
apart in lists ("scrm_Ab3dE…").

Scopes are ``<area>:read`` or ``<area>:write`` (write includes read). A request is allowed when the token carries
the scope for the route's area *and* the owner's roles still allow it — so a role taken away today narrows every
token the person made yesterday, at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Iterable

from scrm.core.errors import InvalidInput
from scrm.crm.staff.domain import ROLE_ADMIN, ROLE_FINANCE, ROLE_MARKETER, ROLE_OPERATIONS, ROLE_SALES

TOKEN_PREFIX = "scrm_"  # noqa: S105 — the visible prefix of every token, not a secret
SHOWN_CHARS = 12
TOKEN_SHAPE = re.compile(r"^scrm_[A-Za-z0-9_-]{43}$")
MAX_NAME = 64
MAX_EXPIRY_DAYS = 3650

# The areas of /api/v1, with their Chinese names (the console's scope checkboxes).
AREAS: dict[str, str] = {
    "customers": "客户与标签",
    "orders": "订单与发货",
    "catalog": "商品与库存",
    "purchasing": "采购",
    "sales": "销售（线索、公海、商机、报价、跟进、交接）",
    "sales_rules": "线索分配与公海规则",
    "billing": "应收与收款",
    "marketing": "营销（优惠券、裂变、群发、客群、渠道活码）",
    "ops": "运维（消息与发件箱）",
    "tokens": "我的令牌",
    "approvals": "审批（待我审批与我发起的）",
    "approval_rules": "审批规则",
    "audit": "审计日志",
}
MODES = ("read", "write")

# /api/v1 routes by their first path segment (and, where one segment serves two areas, by the segment after the id).
AREA_BY_SEGMENT: dict[str, str] = {
    "customers": "customers",
    "tags": "customers",
    "archive": "customers",
    "orders": "orders",
    "shipments": "orders",
    "products": "catalog",
    "stock": "catalog",
    "suppliers": "purchasing",
    "purchase-orders": "purchasing",
    "purchase-suggestions": "purchasing",
    "invoices": "billing",
    "payments": "billing",
    "payment-imports": "billing",
    "receivables": "billing",
    "accounts": "billing",
    "holds": "billing",
    "dunning": "billing",
    "coupon-templates": "marketing",
    "coupons": "marketing",
    "referral-campaigns": "marketing",
    "broadcasts": "marketing",
    "segments": "marketing",
    "channel-codes": "marketing",
    "inbound-events": "ops",
    "outbound-messages": "ops",
    "outbox": "ops",
    "leads": "sales",
    "follow-ups": "sales",
    "opportunities": "sales",
    "quotes": "sales",
    "handovers": "sales",
    "repurchase-alerts": "sales",
    "lead-rules": "sales_rules",
    "lead-pool": "sales_rules",
    "tokens": "tokens",
    "approvals": "approvals",
    "approval-rules": "approval_rules",
    "audit": "audit",
}
# A customer's coupons and RFM scores are marketing's, though the path starts at the customer.
AREA_BY_CUSTOMER_SUFFIX = {"coupons": "marketing", "rfm": "marketing"}

# What each role may do per area (the console's page families, the same split: see scrm/console/access.py).
ROLE_AREAS: dict[str, dict[str, str]] = {
    ROLE_ADMIN: dict.fromkeys(AREAS, "write"),
    ROLE_OPERATIONS: {
        **{"customers": "write", "orders": "write", "catalog": "write", "purchasing": "write", "ops": "read"},
        **{"sales": "read", "tokens": "write", "approvals": "write"},
    },
    # A salesperson: their customers and orders (the data scope narrows which), the catalog to quote from.
    ROLE_SALES: {
        **{"customers": "write", "orders": "write", "catalog": "read", "sales": "write"},
        **{"tokens": "write", "approvals": "write"},
    },
    ROLE_FINANCE: {"billing": "write", "customers": "read", "orders": "read", "tokens": "write", "approvals": "write"},
    ROLE_MARKETER: {"marketing": "write", "customers": "write", "catalog": "read", "tokens": "write", "approvals": "write"},
}


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(raw: str) -> bool:
    return bool(TOKEN_SHAPE.match(raw))


def area_of(api_path: str) -> str | None:
    """The area of an /api/v1 route's canonical path (``/api/v1/customers/{external_userid}/coupons``), or None
    for a route no area covers (only the bootstrap admin token may call it)."""
    parts = [p for p in api_path.removeprefix("/api/v1").split("/") if p]
    if not parts:
        return None
    first = parts[0].removesuffix(".csv")
    if first == "customers" and len(parts) >= 3 and parts[2] in AREA_BY_CUSTOMER_SUFFIX:
        return AREA_BY_CUSTOMER_SUFFIX[parts[2]]
    return AREA_BY_SEGMENT.get(first)


def allowed(roles: Collection[str]) -> dict[str, str]:
    """Area → the most a person with ``roles`` may do there ("read" or "write")."""
    out: dict[str, str] = {}
    for role in roles:
        for area, mode in ROLE_AREAS.get(role, {}).items():
            if out.get(area) != "write":
                out[area] = mode
    return out


def permits(scopes: Iterable[str], roles: Collection[str], area: str, write: bool) -> bool:
    """True when a token with ``scopes``, owned by someone with ``roles``, may read (or write) in ``area``."""
    need = {f"{area}:write"} if write else {f"{area}:read", f"{area}:write"}
    role_mode = allowed(roles).get(area)
    role_ok = role_mode == "write" or (role_mode == "read" and not write)
    return role_ok and not need.isdisjoint(scopes)


def check_scopes(requested: Iterable[str] | None, roles: Collection[str]) -> tuple[str, ...]:
    """The scopes a new token gets: each must name a known area and mode within the owner's roles. None (or
    ``["*"]``) = everything the roles allow. InvalidInput names the first scope refused and why."""
    may = allowed(roles)
    if requested is None or list(requested) == ["*"]:
        return tuple(sorted(f"{a}:{m}" for a, m in may.items()))
    out: set[str] = set()
    for scope in requested:
        area, _, mode = str(scope).partition(":")
        if area not in AREAS or mode not in MODES:
            names = "、".join(f"{a}:read/{a}:write" for a in AREAS)
            raise InvalidInput(f"权限范围 {scope!r} 不存在，可选：{names} (unknown scope)", field="scopes")
        if may.get(area) is None or (mode == "write" and may[area] != "write"):
            raise InvalidInput(f"令牌的持有人无权 {scope}：令牌不能超出本人角色的权限 (scope beyond the owner's roles)", field="scopes")
        out.add(f"{area}:{mode}")
    if not out:
        raise InvalidInput("至少选择一个权限范围 (scopes must not be empty)", field="scopes")
    return tuple(sorted(out))


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"令牌名称需为 1–{MAX_NAME} 个字符，写明用途，如“金蝶同步” (name)", field="name")
    return name
