"""The customer picker every console form that names a customer uses (收款, 客户账户, 发券 …).

``GET /console/customers/pick?q=…`` answers JSON ``{"items": [{"id", "name", "label", "value"}]}`` — customers
whose name, salesperson remark or a custom field (a phone number) contains ``q``, or whose identity or ``#id`` is
``q`` (:func:`scrm.crm.customers.queries.pick_customers`). The ``customer_picker`` macro (``macros.html``) draws a
text field that ``static/customer_picker.js`` turns into search-as-you-type; a picked customer fills the field with
``name #id``. Without JavaScript the field is a plain text field, and :func:`resolve_customer_text` reads what was
typed: ``#id`` (also at the end, as the picker writes it), an external_userid / openid, or a name only one
customer has. Pages that show the picker send :data:`PICKER_HEADERS` (the CSP allowing the console's own script).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.auth import Handler
from scrm.console.pages import SECURITY_HEADERS
from scrm.core.errors import InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.core.runtime import Runtime
from scrm.crm.customers import queries as customer_queries
from scrm.governance.scopes.services import customer_in_scope, scope_for

PICKER_HEADERS = {"Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'none'", "script-src 'self'")}
TRAILING_ID = re.compile(r"(?:^|\s)#(\d{1,18})$")


class CustomerNotChosen(NotFound):
    code = "customer_not_found"


async def pick(request: web.Request) -> web.Response:
    """Up to 10 matches for ``q`` as JSON (an over-long query is a 400 with a Chinese message)."""
    q = request.query.get("q", "").strip()
    if len(q) > customer_queries.MAX_PICK_QUERY:
        raise InvalidInput(f"搜索词最多 {customer_queries.MAX_PICK_QUERY} 个字", field="q")
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await customer_queries.pick_customers(conn, q, limit=50)
    scope = await scope_for(rt)
    found = [c for c in found if scope.everything or await customer_in_scope(rt, scope, c.id)][: customer_queries.PICK_LIMIT]
    return web.json_response({"items": [{"id": c.id, "name": c.name, "label": c.label, "value": c.value} for c in found]})


async def _visible(rt: Runtime, customer_id: int) -> bool:
    return await customer_in_scope(rt, await scope_for(rt), customer_id)


async def resolve_customer_text(rt: Runtime, text: str) -> int:
    """The customer a form's customer field names: ``#id`` (alone or after the name, as the picker writes it), an
    identity (external_userid / openid / unionid), or a name exactly one customer has. Raises
    :class:`CustomerNotChosen` with a Chinese message saying what to type instead."""
    text = text.strip()
    if not text:
        raise CustomerNotChosen("请选择客户：输入客户名称、备注或电话搜索，或填写 #编号 / external_userid", field="customer")
    m = TRAILING_ID.search(text)
    async with rt.db.read() as conn:
        if m:
            cid = int(m.group(1))
            if not await customer_queries.customer_exists(conn, cid) or not await _visible(rt, cid):
                raise CustomerNotChosen(f"没有客户 #{cid}", field="customer")
            return cid
        by_identity = await customer_queries.customer_by_identity(conn, text)
        if by_identity is not None and await _visible(rt, by_identity):
            return by_identity
        named = [c for c in await customer_queries.pick_customers(conn, text, limit=50) if c.name == text]
    scope = await scope_for(rt)
    named = [c for c in named if scope.everything or await customer_in_scope(rt, scope, c.id)]
    if len(named) == 1:
        return named[0].id
    if len(named) > 1:
        raise CustomerNotChosen(f"有 {len(named)} 位客户叫“{text}”，请从搜索结果中选择，或填写 #编号", field="customer")
    raise CustomerNotChosen(f"没有这个客户：{text[:64]}，请从搜索结果中选择，或填写 #编号 / external_userid", field="customer")


ROUTES: list[tuple[str, str, Handler]] = [("GET", "/console/customers/pick", pick)]


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount the picker's search for every signed-in role (each role works with customers)."""
    pages.setup_templates(app)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
