"""HTTP error mapping: every error leaves as JSON ``{"error": {"code", "message"}}`` with a fitting status."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from scrm.core import metrics
from scrm.core.errors import DomainError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


def json_error(status: int, code: str, message: str, **details: object) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except DomainError as exc:
        status = exc.status
        return web.json_response(exc.to_json(), status=exc.status)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return json_error(exc.status, _CODES.get(exc.status, "http_error"), message or exc.reason)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "22021":  # character_not_in_repertoire: a NUL got past the edge
            log.exception("unhandled error", extra={"path": request.path})
            return json_error(500, "internal_error", "服务器内部错误，请稍后再试 (internal error)")
        status = 400
        return json_error(400, "bad_request", "请求中含有不允许的字符 (a character the database cannot store)")
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return json_error(500, "internal_error", "服务器内部错误，请稍后再试 (internal error)")
    finally:
        metrics.http_requests.labels(route=route, method=request.method, status=str(status)).inc()
        metrics.http_latency.labels(route=route).observe(time.perf_counter() - started)
