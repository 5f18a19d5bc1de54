"""/console/dashboard — 经营概览: the page a boss opens every morning.

Figures come from :mod:`fulfillment.reports.queries` (set-based SQL, business-local periods); this module looks up
customer names (:mod:`scrm.crm.customers.queries`), computes the charts' geometry (:mod:`scrm.console.charts`) and
renders ``templates/dashboard/index.html``.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from fulfillment.reports.queries import Dashboard, business_dashboard
from scrm.console import auth, pages
from scrm.console.charts import Chart, bar_geometry, donut_geometry, line_geometry
from scrm.console.pages import money, page_context, render
from scrm.core.http.keys import RUNTIME
from scrm.crm.customers import queries as customer_queries
from scrm.governance.scopes.services import customer_in_scope, scope_for


def _charts(board: Dashboard) -> dict[str, Chart]:
    """The page's three charts: 30-day revenue (bars) and order count (line), this month's collection (donut)."""
    month = board.period("month")
    labels = [f"{p.day.month}/{p.day.day}" for p in board.days]
    unpaid = max(month.invoiced_fen - month.invoice_paid_fen, 0)
    return {
        "revenue": bar_geometry([(lb, p.revenue_fen) for lb, p in zip(labels, board.days, strict=True)], title="近30天营业额", fmt=money),
        "count": line_geometry(
            [(lb, p.orders) for lb, p in zip(labels, board.days, strict=True)], title="近30天订单数", fmt=lambda n: f"{n} 单"
        ),
        "collection": donut_geometry(
            [("已回款", month.invoice_paid_fen), ("未回款", unpaid)],
            title="本月发票回款",
            fmt=money,
            center=month.collection_rate.percent_text,
        ),
    }


async def dashboard(request: web.Request) -> web.Response:
    """经营概览: today / week / month, collection, overdue, top customers, repeat rate, stock, 30-day charts."""
    rt = request.app[RUNTIME]
    board = await business_dashboard(rt)
    scope = await scope_for(rt)  # the figures are the company's; the customers named are only those in the scope
    shown = [c for c in board.top_customers if scope.everything or await customer_in_scope(rt, scope, c.customer_id)]
    ids = [c.customer_id for c in shown]
    async with rt.db.read() as conn:
        names = await customer_queries.names_of(conn, ids)
    top = list(enumerate(shown, 1))
    return render(request, "dashboard/index.html", page_context(request, "dashboard"), board=board, names=names, top=top, **_charts(board))


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount ``GET /console/dashboard`` behind the console's sign-in (point ``/console/`` at it)."""
    pages.setup_templates(app)
    app.router.add_route("GET", "/console/dashboard", auth.protected(dashboard, roles=roles, forbidden_page=pages.forbidden))
