"""HTTP callbacks: ``GET|POST /callback/wecom`` and ``GET|POST /callback/mp``.

Order of checks (cheapest and safest first): query parameters → timestamp window → body size → envelope XML
(entities refused) → signature → decrypt (receive id) → plaintext XML → normalise → store + outbox in one
transaction → 200 with an empty body. Rejections answer JSON errors and store nothing; a database failure answers
503 so WeCom retries.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bots.gateway.crypto import (
    CallbackCrypto,
    CallbackRejected,
    check_signature,
    check_timestamp,
    parse_query,
    require,
)
from bots.gateway.domain import Inbound, normalize_mp, normalize_wecom
from bots.gateway.ingest import writer
from bots.gateway.xmlparse import BadXml, parse_xml
from scrm.core import metrics
from scrm.core.http.errors import json_error
from scrm.core.http.keys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)

WECOM_CRYPTO = web.AppKey("wecom_crypto", CallbackCrypto)
MP_CRYPTO = web.AppKey("mp_crypto", CallbackCrypto)


def _rejected(channel: str, exc: CallbackRejected) -> web.Response:
    metrics.callbacks.labels(channel=channel, outcome=exc.code).inc()
    log.info("callback rejected", extra={"channel": channel, "code": exc.code, "reason": exc.message})
    return json_error(exc.status, exc.code, exc.message)


async def _read_body(request: web.Request) -> str:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRejected(400, "bad_request", "body is not UTF-8") from None


async def _store(request: web.Request, channel: str, item: Inbound) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        stored = await writer(rt).submit(item)
    except (SQLAlchemyError, OSError) as exc:
        metrics.callbacks.labels(channel=channel, outcome="db_error").inc()
        log.error("callback not stored; asking the sender to retry", extra={"channel": channel, "error": str(exc)})
        return json_error(503, "unavailable", "storage unavailable, retry later")
    metrics.callbacks.labels(channel=channel, outcome="duplicate" if stored.duplicate else "stored").inc()
    return web.Response(status=200, body=b"")


# ---- WeCom --------------------------------------------------------------------------------------------
async def wecom_verify(request: web.Request) -> web.Response:
    crypto = request.app[WECOM_CRYPTO]
    try:
        _, (sig, ts, nonce, echostr) = _fresh_query(request, "msg_signature", "timestamp", "nonce", "echostr")
        check_signature(sig, crypto.token, ts, nonce, echostr)
        plain = crypto.decrypt(echostr)
    except CallbackRejected as exc:
        return _rejected("wecom", exc)
    return web.Response(text=plain, content_type="text/plain")


async def wecom_callback(request: web.Request) -> web.Response:
    crypto = request.app[WECOM_CRYPTO]
    rt = request.app[RUNTIME]
    try:
        _, (sig, ts, nonce) = _fresh_query(request, "msg_signature", "timestamp", "nonce")
        plain = _open_envelope(crypto, _parse(await _read_body(request)), sig, ts, nonce)
        fields = _parse(plain)
    except CallbackRejected as exc:
        return _rejected("wecom", exc)
    return await _store(request, "wecom", normalize_wecom(fields, plain, rt.clock.now()))


# ---- Official Account ---------------------------------------------------------------------------------
async def mp_verify(request: web.Request) -> web.Response:
    crypto = request.app[MP_CRYPTO]
    try:
        _, (sig, ts, nonce, echostr) = _fresh_query(request, "signature", "timestamp", "nonce", "echostr")
        check_signature(sig, crypto.token, ts, nonce)
    except CallbackRejected as exc:
        return _rejected("mp", exc)
    return web.Response(text=echostr, content_type="text/plain")


async def mp_callback(request: web.Request) -> web.Response:
    crypto = request.app[MP_CRYPTO]
    rt = request.app[RUNTIME]
    try:
        query, (sig, ts, nonce) = _fresh_query(request, "signature", "timestamp", "nonce")
        check_signature(sig, crypto.token, ts, nonce)
        body = await _read_body(request)
        doc = _parse(body)
        if query.get("encrypt_type", "raw") == "aes":
            (msg_sig,) = require(query, "msg_signature")
            body = _open_envelope(crypto, doc, msg_sig, ts, nonce)
            doc = _parse(body)
        elif rt.settings.mp_aes_key:
            raise CallbackRejected(400, "bad_request", "this account is in safe mode: encrypt_type=aes required")
    except CallbackRejected as exc:
        return _rejected("mp", exc)
    response = await _store(request, "mp", normalize_mp(doc, body, rt.clock.now()))
    if response.status == 200:
        # The Official Account shows "该公众号暂时无法提供服务" for anything but "success" or an empty body.
        return web.Response(text="success", content_type="text/plain")
    return response


def _fresh_query(request: web.Request, *names: str) -> tuple[dict[str, str], list[str]]:
    """The query's named parameters (all required), after the timestamp-window check."""
    query = parse_query(request.rel_url.raw_query_string)
    values = require(query, *names)
    rt = request.app[RUNTIME]
    check_timestamp(query["timestamp"], rt.clock.timestamp(), rt.settings.callback_max_skew)
    return query, values


def _open_envelope(crypto: CallbackCrypto, envelope: dict[str, object], sig: str, ts: str, nonce: str) -> str:
    """Check the signature over the envelope's Encrypt element and decrypt it (WeCom, and OA safe mode)."""
    encrypted = envelope.get("Encrypt")
    if not isinstance(encrypted, str) or not encrypted.strip():
        raise CallbackRejected(400, "bad_request", "envelope has no Encrypt element")
    check_signature(sig, crypto.token, ts, nonce, encrypted.strip())
    return crypto.decrypt(encrypted.strip())


def _parse(text: str) -> dict[str, object]:
    try:
        return parse_xml(text)
    except BadXml as exc:
        raise CallbackRejected(400, "bad_xml", str(exc)) from None


def setup_routes(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.wecom_enabled:
        app[WECOM_CRYPTO] = CallbackCrypto(settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id, work=True)
        app.router.add_get("/callback/wecom", wecom_verify)
        app.router.add_post("/callback/wecom", wecom_callback)
    if settings.mp_enabled:
        aes = settings.mp_aes_key.get()
        # Plain-mode accounts have no AES key; the crypto object then only carries the token.
        app[MP_CRYPTO] = CallbackCrypto(settings.mp_token.get(), aes or "A" * 43, settings.mp_app_id, work=False)
        app.router.add_get("/callback/mp", mp_verify)
        app.router.add_post("/callback/mp", mp_callback)
