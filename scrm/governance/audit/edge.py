"""The audit trail's HTTP edge: every request runs in an audit scope, and a request that changed something (or
exported a file) without recording a more precise row itself gets one row here — who, from where, the route, the
ids in its path and the submitted fields (secrets masked).

Written after the handler, in a transaction of its own: the precise rows (:func:`scrm.core.audit.record` inside a
service's transaction) say before → after; this one makes sure no successful write goes unrecorded. A refused
request (4xx/5xx, or a console form answered with an error message) records nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from scrm.core import audit
from scrm.core.http.keys import RUNTIME
from scrm.governance.audit.domain import describe, wants_row

log = logging.getLogger(__name__)
UNAUDITED_PREFIXES = ("/callback/", "/sandbox", "/healthz", "/readyz", "/metrics")  # WeCom's deliveries are kept as inbound events
REFUSED = "refused"  # RequestScope.extra key: the handler answered with an error message (a console form's flash)


def mark_refused() -> None:
    """The handler refused the request but answers with a success status (a console redirect with an error
    message): the edge must not record it as done."""
    scope = audit.current_scope()
    if scope is not None:
        scope.extra[REFUSED] = True


async def _submitted(request: web.Request) -> dict[str, Any] | None:
    """The fields the request carried (already read by the handler, so cached), or None when they are a file."""
    ctype = request.content_type
    if not request.body_exists:
        return None
    if ctype == "application/json":
        try:
            data = json.loads(await request.read())
        except ValueError:
            return None
        return data if isinstance(data, dict) else {"body": data}
    if ctype == "application/x-www-form-urlencoded":
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    return {"content_type": ctype, "bytes": request.content_length}


async def _record_request(request: web.Request, scope: audit.RequestScope, status: int) -> None:
    if scope.recorded or scope.extra.get(REFUSED) or status >= 400 or scope.actor is None:
        return
    resource = request.match_info.route.resource
    if resource is None or not wants_row(request.method, resource.canonical):
        return
    action, entity, entity_id = describe(request.method, resource.canonical, request.match_info, status)
    rt = request.app[RUNTIME]
    after = await _submitted(request) if action != "export" else dict(request.query)
    async with rt.db.write() as conn:
        await audit.record(conn, rt.clock.now(), action=action, entity=entity, entity_id=entity_id, summary=scope.route, after=after)


@web.middleware
async def audit_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:  # type: ignore[name-defined]
    if request.path.startswith(UNAUDITED_PREFIXES):
        return await handler(request)
    resource = request.match_info.route.resource
    route = f"{request.method} {resource.canonical}" if resource is not None else ""
    with audit.request_scope(request.remote or "", route) as scope:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect raised as an exception is a success
                await _record_request(request, scope, exc.status)
            raise
        await _record_request(request, scope, response.status)
        return response
