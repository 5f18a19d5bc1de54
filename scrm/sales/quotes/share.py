"""The customer's page of a quote (报价单), public behind its signed link: ``GET /quotes/shared/{token}`` shows it
(HTML that prints well to PDF: print CSS, A4, no script), ``POST /quotes/shared/{token}/accept`` is the customer
accepting it — the same :func:`scrm.sales.quotes.services.accept_quote` the API and the console use (an order
through fulfilment, the opportunity won; a second press gives the same order).

The token is an HMAC over the quote's id and number (:func:`services.share_token`): unguessable, and it names
exactly one quote; a bad token, or a quote waiting for approval, rejected or cancelled, is a 404 page."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import jinja2
from aiohttp import web
from markupsafe import Markup

from scrm.core import audit
from scrm.core.errors import DomainError
from scrm.core.http.keys import RUNTIME
from scrm.core.money import format_fen
from scrm.crm.customers.queries import names_of
from scrm.crm.staff.services import get_salesperson
from scrm.sales.quotes import services
from scrm.sales.quotes.domain import STATUS_ZH, QuoteNotFound

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
PAGES = web.AppKey("quote_share_pages", jinja2.Environment)
STYLE = web.AppKey("quote_share_style", str)
TOKEN_ROUTE = "{token:[0-9A-Za-z_.-]+}"  # noqa: S105  # a route pattern, not a secret


def _headers(style: str) -> dict[str, str]:
    """No script at all; the one inline stylesheet allowed by its hash; forms post only back here."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return {
        "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }


def _render(request: web.Request, template: str, *, status: int = 200, **values: object) -> web.Response:
    style = request.app[STYLE]
    text = request.app[PAGES].get_template(template).render(style=Markup(style), **values)  # noqa: S704  # our own file
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=_headers(style))


def _not_found(request: web.Request) -> web.Response:
    return _render(request, "shared_missing.html", status=404)


async def _page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        found = await services.quote_by_token(rt, request.match_info["token"])
    except QuoteNotFound:
        return _not_found(request)
    async with rt.db.read() as conn:
        customer = (await names_of(conn, [found.customer_id])).get(found.customer_id, "")
        member = await get_salesperson(conn, found.owner)
    return _render(
        request,
        "shared_quote.html",
        status=status,
        q=found,
        customer=customer,
        salesperson=member.display_name if member else "",
        status_zh=STATUS_ZH.get(found.status, found.status),
        money=format_fen,
        acceptable=found.acceptable,
        accept_url=request.path.removesuffix("/accept") + "/accept",
        error=error,
        accepted=request.query.get("accepted") == "1",
    )


async def shared_quote(request: web.Request) -> web.Response:
    return await _page(request)


async def accept_shared_quote(request: web.Request) -> web.Response:
    """The customer presses 接受报价: the order is placed (or found, for a second press) and the page says so."""
    rt = request.app[RUNTIME]
    try:
        found = await services.quote_by_token(rt, request.match_info["token"])
    except QuoteNotFound:
        return _not_found(request)
    try:
        with audit.acting_as(audit.Actor("customer", f"客户#{found.customer_id}", "客户在报价单页面接受")):
            await services.accept_quote(rt, found.id, actor="customer")
    except DomainError as exc:
        return await _page(request, error=exc.message.split(" (")[0], status=exc.status)
    return web.Response(status=303, headers={"Location": request.path.removesuffix("/accept") + "?accepted=1"})


def setup_routes(app: web.Application) -> None:
    """Mount the public quote page (its own small template environment, built here, not at import)."""
    if PAGES in app:
        return
    app[PAGES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[STYLE] = (TEMPLATE_DIR / "quote.css").read_text(encoding="utf-8")
    path = services.SHARE_PATH.replace("{token}", TOKEN_ROUTE)
    app.router.add_get(path, shared_quote)
    app.router.add_post(path + "/accept", accept_shared_quote)
