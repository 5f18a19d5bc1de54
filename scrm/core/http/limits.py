"""Request limits at the edge: no NUL characters in the URL or a form, and a deadline for the request body.

NUL (U+0000): PostgreSQL refuses it in any text value (a 500 deep in a query) and SQLite's LIKE stops at it (a
search for it matches everything); no legitimate input holds one, so it is refused up front with 400. JSON bodies
are checked by :func:`scrm.core.http.bodies.read_json`.

Request-body deadline: a client must finish sending its body within ``settings.body_read_timeout`` seconds.

aiohttp caps the body's size (``client_max_size``) but not the time it takes to arrive: a handler awaiting
``request.read()`` / ``post()`` / ``json()`` waits for as long as a client trickles bytes or keeps the connection
open without finishing (slow-body "slowloris"), holding a task and a connection each. The deadline runs from the
moment the handler starts until the body's last byte is in (the payload's end of stream), so work done after that
— a long payment import, a slow database — is never cut short. Requests without a body are not timed.
When the deadline passes the request gets 408 JSON and the connection is closed. (Headers that never finish are
closed by aiohttp's keep-alive timer, which runs from the connection's start: ``KEEPALIVE_TIMEOUT``.)
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from scrm.core.http.errors import Handler, json_error
from scrm.core.http.keys import SETTINGS

log = logging.getLogger(__name__)

# aiohttp closes a connection idle for this long — including one whose request headers never finish, since the
# timer starts with the connection. Behind a load balancer keep it above the balancer's idle timeout.
KEEPALIVE_TIMEOUT = 75.0


def _nul_error() -> web.Response:
    return json_error(400, "bad_request", "请求中含有不允许的空字符 (NUL characters are not allowed)")


@web.middleware
async def reject_nul_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a NUL in the path, the query or an urlencoded form (read here once; handlers get it from the cache)."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        return _nul_error()
    if request.content_type == "application/x-www-form-urlencoded" and request.can_read_body:
        form = await request.post()
        if any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in form.items()):
            return _nul_error()
    return await handler(request)


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app[SETTINGS].body_read_timeout
    if limit <= 0 or request.content.is_eof():
        return await handler(request)
    deadline = asyncio.timeout(limit)
    inside = True

    def body_complete() -> None:
        if inside:  # the whole body is in: no deadline any more (a late end of stream must not touch a spent timer)
            deadline.reschedule(None)

    try:
        async with deadline:
            request.content.on_eof(body_complete)
            try:
                return await handler(request)
            finally:
                inside = False
    except TimeoutError:
        if not deadline.expired():
            raise  # the handler's own timeout, not ours
        log.warning("request body not received in time", extra={"path": request.path, "timeout": limit})
        response = json_error(408, "request_timeout", f"请求内容未在 {limit:g} 秒内发送完毕 (request body not received in time)")
        response.force_close()
        # Send it and hang up now: otherwise aiohttp lingers up to 10 s reading the rest of the unfinished body.
        await response.prepare(request)
        await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()
        return response
