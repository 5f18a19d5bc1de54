"""Console authorisation per page family: which roles may use which console paths. The single rule the route
guards (:func:`scrm.console.auth.protected`, each module's ``setup_routes``) and the nav (:data:`NAV`) must
agree with; ``tests/scrm/test_console_roles.py`` checks every route the app mounts against it."""

from __future__ import annotations

from scrm.console.auth import ADMIN_ROLES, ALL_ROLES, FINANCE_ROLES, MARKETING_ROLES, OPERATIONS_ROLES, SALES_ROLES

# Who may use which console page family, by path prefix (the longest matching prefix wins; /console itself is the
# index). Every console route's guard must admit exactly its family's roles, and a route under no prefix here is
# an error: tests/scrm/test_console_roles.py checks every route the app mounts against this table.
ACCESS_BY_PREFIX: tuple[tuple[str, frozenset[str]], ...] = (
    ("/console/dashboard", ALL_ROLES),
    ("/console/logout", ALL_ROLES),
    ("/console/customers", ALL_ROLES),  # every role works with customers (the directory and a customer's record)
    ("/console/leads", SALES_ROLES),
    ("/console/pool", SALES_ROLES),
    ("/console/follow-ups", SALES_ROLES),
    ("/console/lead-rules", ADMIN_ROLES),
    ("/console/orders", OPERATIONS_ROLES),
    ("/console/shipments", OPERATIONS_ROLES),
    ("/console/picking", OPERATIONS_ROLES),
    ("/console/stock", OPERATIONS_ROLES),
    ("/console/products", OPERATIONS_ROLES),
    ("/console/purchasing", OPERATIONS_ROLES),
    ("/console/suppliers", OPERATIONS_ROLES),
    ("/console/groups", OPERATIONS_ROLES),
    ("/console/finance", FINANCE_ROLES),
    ("/console/rules", MARKETING_ROLES),
    ("/console/segments", MARKETING_ROLES),
    ("/console/channels", MARKETING_ROLES),
    ("/console/coupons", MARKETING_ROLES),
    ("/console/campaigns", MARKETING_ROLES),
    ("/console/broadcasts", MARKETING_ROLES),
    ("/console/staff", ADMIN_ROLES),
    ("/console/tokens", ALL_ROLES),  # each person's own API tokens (the admin: everyone's)
    ("/console/audit", ADMIN_ROLES),
    ("/console/approvals", ALL_ROLES),  # each person's inbox (what they may decide, what they asked for)
    ("/console/approval-rules", ADMIN_ROLES),
    ("/console/field-permissions", ADMIN_ROLES),
    ("/console/repurchase", SALES_ROLES),  # 复购预警: each salesperson their customers' alerts
    ("/console/repurchase/settings", ADMIN_ROLES),  # lead time and the coupon offered with reminders
    ("/console/handovers", ADMIN_ROLES),  # 交接: a manager's action (moves customers between members)
    ("/console/opportunities", SALES_ROLES),
    ("/console/quotes", SALES_ROLES),
    ("/console/opportunity-stages", ADMIN_ROLES),
)

# The nav bar: (key, path, label, roles that may use it); an entry is shown only to those roles (the routes check the
# same sets, :data:`ACCESS_BY_PREFIX`).
NAV = (
    ("dashboard", "/console/dashboard", "概览", ALL_ROLES),  # scrm/console/dashboard.py
    ("customers", "/console/customers", "客户", ALL_ROLES),  # scrm/console/customers.py
    ("leads", "/console/leads", "线索", SALES_ROLES),  # scrm/console/leads.py
    ("pool", "/console/pool", "公海", SALES_ROLES),
    ("follow-ups", "/console/follow-ups", "跟进", SALES_ROLES),
    ("opportunities", "/console/opportunities", "商机", SALES_ROLES),  # scrm/console/pipeline.py
    ("quotes", "/console/quotes", "报价", SALES_ROLES),  # scrm/console/quote_pages.py
    ("orders", "/console/orders", "订单", OPERATIONS_ROLES),
    ("picking", "/console/picking", "发货", OPERATIONS_ROLES),
    ("stock", "/console/stock", "库存", OPERATIONS_ROLES),
    ("products", "/console/products", "商品", OPERATIONS_ROLES),  # scrm/console/products.py
    ("purchasing", "/console/purchasing", "采购", OPERATIONS_ROLES),  # scrm/console/purchasing.py
    ("groups", "/console/groups", "客户群", OPERATIONS_ROLES),  # scrm/console/groups.py
    ("handovers", "/console/handovers", "交接", ADMIN_ROLES),  # scrm/console/handovers.py
    ("finance", "/console/finance/receivables", "财务", FINANCE_ROLES),  # scrm/console/finance.py
    ("rules", "/console/rules", "标签规则", MARKETING_ROLES),  # scrm/console/rules.py
    ("segments", "/console/segments", "客群", MARKETING_ROLES),  # scrm/console/segments.py
    ("channels", "/console/channels", "渠道活码", MARKETING_ROLES),  # scrm/console/channels.py
    ("coupons", "/console/coupons", "优惠券", MARKETING_ROLES),  # scrm/console/campaigns.py
    ("campaigns", "/console/campaigns", "裂变活动", MARKETING_ROLES),  # scrm/console/campaigns.py
    ("broadcasts", "/console/broadcasts", "群发", MARKETING_ROLES),  # scrm/console/broadcasts.py
    ("staff", "/console/staff", "员工", ADMIN_ROLES),  # scrm/console/staff.py
    ("approvals", "/console/approvals", "审批", ALL_ROLES),  # scrm/console/approvals.py
    ("lead-rules", "/console/lead-rules", "线索分配", ADMIN_ROLES),  # scrm/console/leads.py
    ("approval-rules", "/console/approval-rules", "审批规则", ADMIN_ROLES),  # scrm/console/approvals.py
    ("opportunity-stages", "/console/opportunity-stages", "商机阶段", ADMIN_ROLES),  # scrm/console/pipeline.py
    ("field-permissions", "/console/field-permissions", "字段权限", ADMIN_ROLES),  # scrm/console/governance.py
    ("tokens", "/console/tokens", "API 令牌", ALL_ROLES),  # scrm/console/governance.py
    ("audit", "/console/audit", "审计日志", ADMIN_ROLES),  # scrm/console/governance.py
    ("repurchase", "/console/repurchase", "复购预警", SALES_ROLES),  # scrm/console/repurchase.py
)


# The menu groups the nav into sections (label, nav keys in order); each shows as a drop-down of the entries the
# role may use (a section with one such entry is a plain link). An entry in no section is a top-level link — so a
# new NAV entry shows up even before it is placed here. Slots kept for pages on their way: "products" (商品).
NAV_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("销售", ("customers", "leads", "pool", "follow-ups", "opportunities", "quotes", "repurchase", "orders", "groups", "handovers")),
    ("运营", ("picking", "stock", "products", "purchasing")),
    ("财务", ("finance",)),
    ("营销", ("rules", "segments", "channels", "coupons", "campaigns", "broadcasts")),
    ("设置", ("staff", "lead-rules", "approval-rules", "opportunity-stages", "field-permissions", "tokens", "audit")),
)


def roles_for_path(path: str) -> frozenset[str] | None:
    """The roles :data:`ACCESS_BY_PREFIX` gives a console path (a route's canonical path), or None when no rule
    covers it."""
    if path in ("/console", "/console/"):
        return ALL_ROLES
    found = [(len(p), roles) for p, roles in ACCESS_BY_PREFIX if path == p or path.startswith(p + "/")]
    return max(found, key=lambda x: x[0])[1] if found else None
