"""A salesperson's day (我的一天): the follow-ups due today or overdue, the customers due to buy again or drifting
away, new leads nobody has contacted, and the overdue invoices of their customers — the page they open each morning
(the sidebar's home). Everything is read within the person's data scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fulfillment.billing.receivables import OverdueInvoice, overdue_invoices
from scrm.core.clock import local
from scrm.core.money import format_fen
from scrm.core.runtime import Runtime
from scrm.crm.customers.queries import names_of
from scrm.governance.scopes.services import DataScope
from scrm.sales.followups import queries as follow_ups
from scrm.sales.followups.queries import Todo
from scrm.sales.leads.services import LeadView
from scrm.sales.repurchase import queries as repurchase
from scrm.sales.repurchase.queries import AlertView

SHOWN = 20  # per section; the counts say how many there are in all


@dataclass(frozen=True)
class MyDay:
    today: dt.date
    follow_ups: list[Todo]
    alerts: list[AlertView]
    leads: list[LeadView]
    leads_total: int
    invoices: list[OverdueInvoice]
    invoice_customers: dict[int, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "follow_ups": [
                {
                    **t.follow_up.to_json(),
                    "subject": t.subject,
                    "overdue_days": t.overdue_days,
                    "kind_zh": t.follow_up.kind_zh,
                    "about": "lead" if t.follow_up.lead_id is not None else "customer",
                }
                for t in self.follow_ups
            ],
            "repurchase": [a.to_json() for a in self.alerts],
            "leads": [{**lead.to_json(), "label": lead.label, "source_zh": lead.source_zh} for lead in self.leads],
            "leads_total": self.leads_total,
            "overdue_invoices": [
                {
                    "number": i.number,
                    "order_number": i.order_number,
                    "customer_id": i.customer_id,
                    "customer_name": self.invoice_customers.get(i.customer_id, ""),
                    "balance_fen": i.balance_fen,
                    "balance": format_fen(i.balance_fen),
                    "due_on": i.due_on.isoformat(),
                    "days_overdue": i.days_overdue,
                }
                for i in self.invoices
            ],
        }


async def my_day(rt: Runtime, scope: DataScope) -> MyDay:
    today = local(rt.clock.now()).date()
    async with rt.db.read() as conn:
        todos = await follow_ups.todos(conn, scope, today, limit=SHOWN)
        alerts = await repurchase.list_alerts(conn, scope=scope, limit=SHOWN)
        new_leads, leads_total = await follow_ups.untouched_leads(conn, scope, limit=SHOWN)
        invoices = await overdue_invoices(conn, scope, today, limit=SHOWN)
        names = await names_of(conn, {i.customer_id for i in invoices})
    return MyDay(today, todos, alerts, new_leads, leads_total, invoices, names)
