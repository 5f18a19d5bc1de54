"""The one place that sends to customers and staff, and records every message and every attempt.

Each logical message is one ``outbound_messages`` row under a unique idempotency key; each API call is one
``outbound_attempts`` row (outcome, errcode, duration). Guarantees:

* A key is acted on once: calling again with a key that is sent / skipped / failed / awaiting the salesperson
  returns the stored result without calling the API (a job that runs twice sends once). A key left pending by
  a rate limit or an outage is attempted again on the next call.
* Concurrent calls with one key do not both call the API: an attempt is claimed first; the loser gets
  :class:`~scrm.core.jobs.RetryLater`. A claim abandoned by a crash lapses after :func:`claim_lease`.
* 微信客服 sends pass the msgid derived from the key, so even a crash between the API call and the record
  cannot make WeCom deliver twice. The other APIs have no such key: there a crash in that gap may repeat one.
* Nothing vanishes: a message is sent, skipped with a reason (kf window closed / quota used up), failed with
  the errcode, or still pending with the last error while its job retries — on the job's last try it is failed
  ("retries exhausted: …") rather than left pending for nobody.

Pictures (``send_kf_image``, ``send_mp_custom_image``) are uploaded as temporary media inside the message's attempt
(a cached media_id is reused: :mod:`bots.outbound.media`); an upload that fails — any errcode, a rate limit or an
outage — settles the message as failed "media_upload_failed: …" at once with the upload's attempt, so the caller
says it another way (a link) now rather than retrying a picture for minutes. A media_id the API calls invalid
(40007: gone before its 3 days) is forgotten and the picture uploaded afresh and sent once more at once.

Errors: 45009/45033 → attempt recorded, message left pending, ``RetryLater(60 s)`` raised; -1 after the client's
quick retries, timeouts and network errors → attempt recorded, :class:`~bots.outbound.client.ApiUnavailable`
raised for the job to retry — except a timeout (or a broken answer) of an API without an idempotency key (all but
微信客服): that call may have been carried out, so the message is failed "delivery_unknown" rather than repeated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.outbound.client import (
    KF_REFUSALS,
    MP_API,
    WECOM_API,
    ApiError,
    ApiUnavailable,
    Errcode,
    RateLimited,
    TokenApi,
)
from bots.outbound.media import Image, forget_media_id, image_media_id
from bots.outbound.models import OutboundStatus, kf_windows, outbound_attempts, outbound_messages
from scrm.core import metrics
from scrm.core.db import insert_ignore
from scrm.core.ids import digest_key
from scrm.core.jobs import RetryLater, on_final_try
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)
CLAIM_LEASE = dt.timedelta(seconds=120)  # the most a claim may hold a key; see claim_lease()
SETTLED = {OutboundStatus.SENT, OutboundStatus.SKIPPED, OutboundStatus.FAILED, OutboundStatus.AWAITING_SALESPERSON}
KEY_MAX = 64  # outbound_messages.idempotency_key


@dataclass(frozen=True)
class OutboundResult:
    """What became of one logical message (the stored row's view)."""

    message_id: int
    status: str
    channel: str
    error_code: int | None = None
    error_message: str | None = None
    remote_id: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == OutboundStatus.SENT


@dataclass(frozen=True)
class _Draft:
    key: str
    channel: str
    purpose: str
    recipient: str
    payload: dict[str, Any]
    customer_id: int | None = None


@dataclass(frozen=True)
class _Attempt:
    at: dt.datetime
    api_path: str
    outcome: str  # ok | error | timeout | network
    duration_ms: int
    error_code: int | None = None
    error_message: str | None = None


Also = Callable[[AsyncConnection], Awaitable[None]]
Prepare = Callable[[], Awaitable["dict[str, Any] | _Attempt"]]  # the body to send, or the failed attempt to make it
MEDIA_UPLOAD_FAILED = "media_upload_failed"  # error_message head of an image message whose picture could not be uploaded


def claim_lease(rt: Runtime) -> dt.timedelta:
    """How long a claim holds a key: longer than one attempt can take — token fetch, call, token refresh, call and
    two busy retries, each bounded by the HTTP timeout — and no longer, so the key of a process that died
    mid-attempt (a killed worker) is taken over soon rather than after minutes."""
    return min(CLAIM_LEASE, dt.timedelta(seconds=6 * rt.settings.http_timeout + 5))


def storable_key(key: str) -> str:
    """The key as stored: long keys keep a readable head plus a digest of the whole (fits 64 chars)."""
    return key if len(key) <= KEY_MAX else key[: KEY_MAX - 33] + ":" + digest_key(key)


def _result(row: Any) -> OutboundResult:
    return OutboundResult(row.id, row.status, row.channel, row.error_code, row.error_message, row.remote_id)


async def _load(conn: AsyncConnection, message_id: int) -> Any:
    return (await conn.execute(sa.select(outbound_messages).where(outbound_messages.c.id == message_id))).one()


# ---- the shared machinery: open (insert-or-get + claim) → call → finish --------------------------------
async def _open(rt: Runtime, draft: _Draft) -> OutboundResult | int:
    """Record the message once and claim the next attempt. Returns the stored result when the key is settled,
    else the id of the claimed row. Raises RetryLater while another attempt of this key is in flight."""
    now = rt.clock.now()
    lease = claim_lease(rt)
    msgs = outbound_messages.c
    async with rt.db.write() as conn:
        await conn.execute(
            insert_ignore(outbound_messages, rt.db.dialect).values(
                idempotency_key=draft.key,
                channel=draft.channel,
                purpose=draft.purpose,
                recipient=draft.recipient[:256],
                customer_id=draft.customer_id,
                payload=draft.payload,
                status=OutboundStatus.PENDING,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
        row = (await conn.execute(sa.select(outbound_messages).where(msgs.idempotency_key == draft.key))).one()
        if row.status in SETTLED:
            return _result(row)
        recorded = (
            sa.select(sa.func.count()).select_from(outbound_attempts).where(outbound_attempts.c.message_id == row.id).scalar_subquery()
        )
        # In flight = a claim without its attempt row, younger than the lease. Taking over a lapsed claim
        # resets the counter to the attempts actually recorded (the crashed one left no trace).
        claimed = await conn.execute(
            sa.update(outbound_messages)
            .where(
                msgs.id == row.id,
                msgs.status == OutboundStatus.PENDING,
                sa.or_(msgs.attempts <= recorded, msgs.updated_at < now - lease),
            )
            .values(attempts=recorded + 1, updated_at=now)
        )
        if claimed.rowcount == 1:
            return int(row.id)
        row = await _load(conn, row.id)
        if row.status in SETTLED:
            return _result(row)
    raise RetryLater(lease.total_seconds() / 4, f"outbound message {row.id}: an attempt is in flight")


class _DeliveryUnknown(Exception):
    """A call without an idempotency key may have been carried out (timeout after sending): not to be repeated."""

    def __init__(self, attempt: _Attempt) -> None:
        super().__init__(attempt.error_message)
        self.attempt = attempt


DELIVERY_UNKNOWN = "delivery_unknown"  # error_message head of a message given up so it cannot arrive twice


async def _call(
    rt: Runtime, message_id: int, api: TokenApi, path: str, body: dict[str, Any], *, idempotent: bool = True
) -> tuple[dict[str, Any] | None, ApiError | None, _Attempt]:
    """One API call. Returns (answer, None, attempt) or (None, error, attempt) for an errcode answer; records
    the attempt itself and raises for rate limits (RetryLater) and outages (ApiUnavailable). For a call that is
    not ``idempotent`` an outage after the request may have reached the API raises :class:`_DeliveryUnknown`
    instead (nothing recorded yet): repeating it could deliver the message twice."""
    at, started = rt.clock.now(), time.monotonic()

    def attempt(outcome: str, code: int | None = None, message: str | None = None) -> _Attempt:
        return _Attempt(at, path, outcome, int((time.monotonic() - started) * 1000), code, message)

    try:
        data = await api.call(path, body)
    except RateLimited as exc:
        await _record_retry(rt, message_id, attempt("error", exc.errcode, exc.errmsg))
        raise RetryLater(exc.retry_after, f"{path}: rate limited ({exc.errcode})") from exc
    except ApiUnavailable as exc:
        outcome = attempt("timeout" if exc.timeout else "network", None, exc.reason)
        if not idempotent and exc.maybe_delivered:
            raise _DeliveryUnknown(outcome) from exc
        await _record_retry(rt, message_id, outcome)
        raise
    except ApiError as exc:
        return None, exc, attempt("error", exc.errcode, exc.errmsg)
    return data, None, attempt("ok")


async def _insert_attempt(conn: AsyncConnection, message_id: int, a: _Attempt) -> None:
    await conn.execute(
        sa.insert(outbound_attempts).values(
            message_id=message_id,
            attempted_at=a.at,
            api_path=a.api_path,
            outcome=a.outcome,
            error_code=a.error_code,
            error_message=a.error_message,
            duration_ms=a.duration_ms,
        )
    )


async def _record_retry(rt: Runtime, message_id: int, a: _Attempt) -> None:
    """The attempt did not settle the message: keep it pending with the last error (and release the claim)."""
    async with rt.db.write() as conn:
        await _insert_attempt(conn, message_id, a)
        await conn.execute(
            sa.update(outbound_messages)
            .where(outbound_messages.c.id == message_id)
            .values(error_code=a.error_code, error_message=a.error_message, updated_at=rt.clock.now())
        )
        row = await _load(conn, message_id)
    metrics.outbound.labels(channel=row.channel, outcome="retry").inc()


async def _finish(
    rt: Runtime,
    message_id: int,
    *,
    status: str,
    attempt: _Attempt | None = None,
    error_code: int | None = None,
    error_message: str | None = None,
    remote_id: str | None = None,
    also: Also | None = None,
) -> OutboundResult:
    """Settle the message (and record the attempt) in one transaction; ``also`` runs in it when we settled."""
    now = rt.clock.now()
    values: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "error_message": error_message,
        "remote_id": remote_id,
        "updated_at": now,
    }
    if status in (OutboundStatus.SENT, OutboundStatus.AWAITING_SALESPERSON):
        values["sent_at"] = now
    if attempt is None:
        values["attempts"] = outbound_messages.c.attempts - 1  # the claim led to no API call
    async with rt.db.write() as conn:
        if attempt is not None:
            await _insert_attempt(conn, message_id, attempt)
        done = await conn.execute(
            sa.update(outbound_messages)
            .where(outbound_messages.c.id == message_id, outbound_messages.c.status == OutboundStatus.PENDING)
            .values(**values)
        )
        if done.rowcount == 1 and also is not None:
            await also(conn)
        row = await _load(conn, message_id)
    metrics.outbound.labels(channel=row.channel, outcome=row.status).inc()
    return _result(row)


async def _give_up(rt: Runtime, message_id: int, reason: str) -> OutboundResult:
    """Settle a message whose attempts were all recorded (and the claim released) as failed with ``reason``."""
    async with rt.db.write() as conn:
        await conn.execute(
            sa.update(outbound_messages)
            .where(outbound_messages.c.id == message_id, outbound_messages.c.status == OutboundStatus.PENDING)
            .values(status=OutboundStatus.FAILED, error_message=reason[:500], updated_at=rt.clock.now())
        )
        row = await _load(conn, message_id)
    metrics.outbound.labels(channel=row.channel, outcome=row.status).inc()
    return _result(row)


async def _send(
    rt: Runtime,
    draft: _Draft,
    api: TokenApi,
    path: str,
    settle: Callable[[int, dict[str, Any], _Attempt], Awaitable[OutboundResult]],
    refused: Callable[[int, ApiError, _Attempt], Awaitable[OutboundResult]] | None = None,
    precheck: Callable[[], Awaitable[str | None]] | None = None,
    *,
    idempotent: bool = False,
    prepare: Prepare | None = None,
    invalid_media: Callable[[], None] | None = None,
) -> OutboundResult:
    """open → (precheck: a reason to skip) → (prepare: the body, e.g. after a media upload) → call → settle on
    success / refused-or-failed on an errcode. A ``prepare`` that fails settles the message as failed with its
    attempt (the customer's fallback is the caller's business). 40007 (invalid media_id) calls ``invalid_media``
    (forget the cached id) and prepares and calls once more.

    ``idempotent``: the API dedupes on a key of ours (kf msgid), so a call that timed out may be repeated.
    Otherwise a timeout after sending settles the message as failed ("delivery_unknown"): at most once beats
    twice. -1 (busy) after the client's quick retries leaves the message pending for the job to retry later."""
    opened = await _open(rt, draft)
    if isinstance(opened, OutboundResult):
        return opened
    reason = await precheck() if precheck is not None else None
    if reason:
        return await _finish(rt, opened, status=OutboundStatus.SKIPPED, error_message=reason)
    media_retried = False
    while True:
        body = draft.payload
        if prepare is not None:
            prepared = await prepare()
            if isinstance(prepared, _Attempt):
                note = f"{MEDIA_UPLOAD_FAILED}: {prepared.error_message}"
                return await _finish(
                    rt, opened, status=OutboundStatus.FAILED, attempt=prepared, error_code=prepared.error_code, error_message=note
                )
            body = prepared
        try:
            data, error, attempt = await _call(rt, opened, api, path, body, idempotent=idempotent)
            if error is not None and error.errcode == Errcode.BUSY:
                await _record_retry(rt, opened, attempt)
                raise ApiUnavailable(path, f"errcode -1 (busy) after the client's retries: {error.errmsg}", maybe_delivered=False)
        except _DeliveryUnknown as exc:
            note = f"{DELIVERY_UNKNOWN}: {exc.attempt.error_message}; not repeated ({path} has no idempotency key)"
            return await _finish(rt, opened, status=OutboundStatus.FAILED, attempt=exc.attempt, error_message=note)
        except (RetryLater, ApiUnavailable) as exc:
            if on_final_try():  # nobody will try again: say so on the message instead of leaving it pending
                return await _give_up(rt, opened, f"retries exhausted: {exc}")
            raise
        if error is None or error.errcode != Errcode.INVALID_MEDIA_ID or invalid_media is None:
            break
        invalid_media()  # the media is gone before its 3 days (or the emulator restarted): never send that id again
        if media_retried:
            break
        # Once more at once with a fresh upload: the refusal delivered nothing, and the claim is taken anew.
        media_retried = True
        await _record_retry(rt, opened, attempt)
        reopened = await _open(rt, draft)
        if isinstance(reopened, OutboundResult):
            return reopened
        opened = reopened
    if error is None:
        assert data is not None
        return await settle(opened, data, attempt)
    if refused is not None:
        return await refused(opened, error, attempt)
    return await _finish(rt, opened, status=OutboundStatus.FAILED, attempt=attempt, error_code=error.errcode, error_message=error.errmsg)


# ---- 微信客服 ---------------------------------------------------------------------------------------------
def _window(open_kfid: str, external_userid: str) -> Any:
    return sa.and_(kf_windows.c.open_kfid == open_kfid, kf_windows.c.external_userid == external_userid)


async def record_customer_message(conn: AsyncConnection, *, open_kfid: str, external_userid: str, at: dt.datetime) -> None:
    """The customer wrote at ``at``: their 48 h window starts again with a fresh 5-message quota. Call it in the
    transaction that stores the message. Never moves the window back (an older message synced late)."""
    await conn.execute(
        insert_ignore(kf_windows, conn.dialect.name).values(
            open_kfid=open_kfid, external_userid=external_userid, last_customer_msg_at=at, sent_since_customer_msg=0
        )
    )
    await conn.execute(
        sa.update(kf_windows)
        .where(_window(open_kfid, external_userid), kf_windows.c.last_customer_msg_at <= at)
        .values(last_customer_msg_at=at, sent_since_customer_msg=0)
    )


async def kf_window_reason(rt: Runtime, *, open_kfid: str, external_userid: str) -> str | None:
    """None while the bot may write to this customer in 微信客服; else "kf_window_closed" (48 h since they last
    wrote, or never) or "kf_quota_exhausted" (5 messages since)."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(kf_windows).where(_window(open_kfid, external_userid)))).first()
    if row is None or row.last_customer_msg_at + dt.timedelta(hours=rt.settings.kf_window_hours) <= rt.clock.now():
        return KF_REFUSALS[Errcode.KF_WINDOW_CLOSED]
    if row.sent_since_customer_msg >= rt.settings.kf_max_messages:
        return KF_REFUSALS[Errcode.KF_QUOTA_EXHAUSTED]
    return None


async def send_kf_text(
    rt: Runtime,
    *,
    open_kfid: str,
    external_userid: str,
    text: str,
    key: str,
    purpose: str = "reply",
    customer_id: int | None = None,
) -> OutboundResult:
    """Send ``text`` to a customer in 微信客服 once per ``key``: sent, or skipped with the window reason (no API
    call when our record already says the window is closed or the quota used up)."""
    return await _send_kf(rt, open_kfid, external_userid, key, purpose, customer_id, {"msgtype": "text", "text": {"content": text}})


async def send_kf_image(
    rt: Runtime,
    *,
    open_kfid: str,
    external_userid: str,
    image: Image,
    key: str,
    purpose: str = "reply",
    customer_id: int | None = None,
) -> OutboundResult:
    """Send a picture to a customer in 微信客服 once per ``key`` (``msgtype: image``), under the same window and
    quota rules as a text. The picture is uploaded as temporary media first — or its cached media_id reused
    (:mod:`bots.outbound.media`); an upload that fails settles the message as failed "media_upload_failed: …"
    with the upload's attempt, so the caller can say it another way (a link)."""
    api = rt.get(WECOM_API)
    described = {"msgtype": "image", "image": {"sha256": image.digest, "bytes": len(image.content)}}

    used: list[str] = []

    async def prepare() -> dict[str, Any] | _Attempt:
        uploaded = await _media_id(rt, api, image)
        if isinstance(uploaded, _Attempt):
            return uploaded
        used.append(uploaded)
        return _kf_body(open_kfid, external_userid, key, {"msgtype": "image", "image": {"media_id": uploaded}})

    def invalid_media() -> None:
        for media_id in used:
            forget_media_id(rt, api, image, media_id)

    return await _send_kf(
        rt, open_kfid, external_userid, key, purpose, customer_id, described, prepare=prepare, invalid_media=invalid_media
    )


def _kf_body(open_kfid: str, external_userid: str, key: str, content: dict[str, Any]) -> dict[str, Any]:
    # WeCom dedupes on msgid: our idempotency key reaches the API
    return {"touser": external_userid, "open_kfid": open_kfid, "msgid": digest_key(key), **content}


async def _media_id(rt: Runtime, api: TokenApi, image: Image) -> str | _Attempt:
    """The image's media_id (cached or uploaded now), or the failed upload as an attempt."""
    at, started = rt.clock.now(), time.monotonic()
    try:
        return await image_media_id(rt, api, image)
    except ApiError as exc:  # RateLimited too: a picture that cannot go now goes as a link, not minutes later
        outcome, code, message = "error", exc.errcode, exc.errmsg
    except ApiUnavailable as exc:
        outcome, code, message = ("timeout" if exc.timeout else "network"), None, exc.reason
    log.warning("image upload failed", extra={"errcode": code, "reason": message})
    return _Attempt(at, "media/upload", outcome, int((time.monotonic() - started) * 1000), code, message)


async def _send_kf(
    rt: Runtime,
    open_kfid: str,
    external_userid: str,
    key: str,
    purpose: str,
    customer_id: int | None,
    content: dict[str, Any],
    *,
    prepare: Prepare | None = None,
    invalid_media: Callable[[], None] | None = None,
) -> OutboundResult:
    body = _kf_body(open_kfid, external_userid, key, content)
    msgid = body["msgid"]
    window = _window(open_kfid, external_userid)
    api = rt.get(WECOM_API)

    async def settle(message_id: int, data: dict[str, Any], attempt: _Attempt) -> OutboundResult:
        async def count(conn: AsyncConnection) -> None:
            await conn.execute(sa.update(kf_windows).where(window).values(sent_since_customer_msg=kf_windows.c.sent_since_customer_msg + 1))

        return await _finish(
            rt, message_id, status=OutboundStatus.SENT, attempt=attempt, remote_id=str(data.get("msgid") or msgid), also=count
        )

    async def refused(message_id: int, error: ApiError, attempt: _Attempt) -> OutboundResult:
        reason = KF_REFUSALS.get(error.errcode)
        if reason is None:
            return await _finish(
                rt, message_id, status=OutboundStatus.FAILED, attempt=attempt, error_code=error.errcode, error_message=error.errmsg
            )

        async def exhaust(conn: AsyncConnection) -> None:
            # WeCom knows better than our count (a servicer wrote by hand): stop trying until the customer writes.
            if error.errcode == Errcode.KF_QUOTA_EXHAUSTED:
                await conn.execute(sa.update(kf_windows).where(window).values(sent_since_customer_msg=rt.settings.kf_max_messages))

        return await _finish(
            rt, message_id, status=OutboundStatus.SKIPPED, attempt=attempt, error_code=error.errcode, error_message=reason, also=exhaust
        )

    async def precheck() -> str | None:
        return await kf_window_reason(rt, open_kfid=open_kfid, external_userid=external_userid)

    draft = _Draft(storable_key(key), "kf", purpose, external_userid, body, customer_id)
    return await _send(
        rt, draft, api, "kf/send_msg", settle, refused, precheck, idempotent=True, prepare=prepare, invalid_media=invalid_media
    )


# ---- staff, Official Account, salesperson tasks -------------------------------------------------------
APP_DUPLICATE_CHECK_SECONDS = 1800  # WeCom's default; the same alert text twice in 30 min reaches a member once


async def send_app_message(rt: Runtime, *, touser: list[str], text: str, key: str, purpose: str = "alert") -> OutboundResult:
    """An app message (应用消息) to members once per ``key``. Members WeCom does not know are noted in
    error_message (the message is still sent to the others); none valid → failed (81013)."""
    if not touser:
        raise ValueError("send_app_message needs at least one member userid")
    agent = rt.settings.wecom_agent_id
    body = {
        "touser": "|".join(touser),
        "msgtype": "text",
        "agentid": int(agent) if agent.isdecimal() else agent,
        "text": {"content": text},
        # A retry after a lost answer (the database gone between WeCom's reply and our record of it) must not reach
        # the member twice: WeCom drops the same content to the same members within the interval
        "enable_duplicate_check": 1,
        "duplicate_check_interval": APP_DUPLICATE_CHECK_SECONDS,
    }

    async def settle(message_id: int, data: dict[str, Any], attempt: _Attempt) -> OutboundResult:
        invalid = str(data.get("invaliduser") or "")
        return await _finish(
            rt,
            message_id,
            status=OutboundStatus.SENT,
            attempt=attempt,
            error_message=f"invaliduser: {invalid}" if invalid else None,
            remote_id=str(data.get("msgid") or "") or None,
        )

    draft = _Draft(storable_key(key), "wecom_app", purpose, "|".join(touser), body)
    return await _send(rt, draft, rt.get(WECOM_API), "message/send", settle)


async def send_mp_template(
    rt: Runtime,
    *,
    openid: str,
    template_id: str,
    data: dict[str, Any],
    key: str,
    purpose: str = "notice",
    url: str | None = None,
) -> OutboundResult:
    """A template message (模板消息) to an Official Account follower once per ``key`` (allowed at any time)."""
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
    if url:
        body["url"] = url

    async def settle(message_id: int, answer: dict[str, Any], attempt: _Attempt) -> OutboundResult:
        return await _finish(rt, message_id, status=OutboundStatus.SENT, attempt=attempt, remote_id=str(answer.get("msgid") or "") or None)

    draft = _Draft(storable_key(key), "mp_template", purpose, openid, body)
    return await _send(rt, draft, rt.get(MP_API), "message/template/send", settle)


async def send_mp_custom_text(rt: Runtime, *, openid: str, text: str, key: str, purpose: str = "reply") -> OutboundResult:
    """A customer-service message (客服消息) once per ``key``; 48 h after the follower's last interaction it is
    skipped with "mp_window_closed"."""
    return await _send_mp_custom(rt, openid, key, purpose, {"msgtype": "text", "text": {"content": text}})


async def send_mp_custom_image(rt: Runtime, *, openid: str, image: Image, key: str, purpose: str = "reply") -> OutboundResult:
    """A picture as a customer-service message (客服消息, ``msgtype: image``) once per ``key``, under the same 48 h
    rule as a text. Uploaded to the Official Account as temporary media first (or its cached media_id reused);
    a failed upload settles the message as failed "media_upload_failed: …"."""
    api = rt.get(MP_API)
    used: list[str] = []

    async def prepare() -> dict[str, Any] | _Attempt:
        uploaded = await _media_id(rt, api, image)
        if isinstance(uploaded, _Attempt):
            return uploaded
        used.append(uploaded)
        return {"touser": openid, "msgtype": "image", "image": {"media_id": uploaded}}

    def invalid_media() -> None:
        for media_id in used:
            forget_media_id(rt, api, image, media_id)

    described = {"msgtype": "image", "image": {"sha256": image.digest, "bytes": len(image.content)}}
    return await _send_mp_custom(rt, openid, key, purpose, described, prepare=prepare, invalid_media=invalid_media)


async def _send_mp_custom(
    rt: Runtime,
    openid: str,
    key: str,
    purpose: str,
    content: dict[str, Any],
    *,
    prepare: Prepare | None = None,
    invalid_media: Callable[[], None] | None = None,
) -> OutboundResult:
    body = {"touser": openid, **content}

    async def settle(message_id: int, answer: dict[str, Any], attempt: _Attempt) -> OutboundResult:
        return await _finish(rt, message_id, status=OutboundStatus.SENT, attempt=attempt)

    async def refused(message_id: int, error: ApiError, attempt: _Attempt) -> OutboundResult:
        closed = error.errcode == Errcode.MP_OUT_OF_WINDOW
        return await _finish(
            rt,
            message_id,
            status=OutboundStatus.SKIPPED if closed else OutboundStatus.FAILED,
            attempt=attempt,
            error_code=error.errcode,
            error_message="mp_window_closed" if closed else error.errmsg,
        )

    draft = _Draft(storable_key(key), "mp_custom", purpose, openid, body)
    return await _send(rt, draft, rt.get(MP_API), "message/custom/send", settle, refused, prepare=prepare, invalid_media=invalid_media)


async def create_msg_template_task(
    rt: Runtime, *, sender_userid: str, external_userids: list[str], text: str, key: str, purpose: str = "notice"
) -> OutboundResult:
    """A confirm-to-send task (add_msg_template) for the salesperson once per ``key``: awaiting_salesperson, or
    failed when WeCom refused every customer (not theirs / monthly cap); partial refusals are noted."""
    if not external_userids:
        raise ValueError("create_msg_template_task needs at least one external_userid")
    body = {"chat_type": "single", "external_userid": list(external_userids), "sender": sender_userid, "text": {"content": text}}

    async def settle(message_id: int, data: dict[str, Any], attempt: _Attempt) -> OutboundResult:
        failed = [str(x) for x in data.get("fail_list") or []]
        note = f"fail_list: {','.join(failed)}" if failed else None
        everyone = set(failed) >= set(external_userids)
        return await _finish(
            rt,
            message_id,
            attempt=attempt,
            error_message=note,
            status=OutboundStatus.FAILED if everyone else OutboundStatus.AWAITING_SALESPERSON,
            remote_id=str(data.get("msgid") or "") or None,
        )

    draft = _Draft(storable_key(key), "msg_template", purpose, ",".join(external_userids), body)
    return await _send(rt, draft, rt.get(WECOM_API), "externalcontact/add_msg_template", settle)


# ---- 客户联系 welcome message -----------------------------------------------------------------------------
WELCOME_WINDOW = dt.timedelta(seconds=20)  # send_welcome_msg is accepted within 20 s of the add event (docs/wecom.md §5)
WELCOME_RETRY_DELAY = 0.5  # seconds between attempts after a retryable failure (busy, rate limit, outage)
WELCOME_MAX_ATTEMPTS = 4
WELCOME_WINDOW_PASSED = "welcome_window_passed"


async def send_welcome_message(
    rt: Runtime,
    *,
    welcome_code: str,
    text: str,
    key: str,
    deadline: dt.datetime,
    recipient: str = "",
    customer_id: int | None = None,
) -> OutboundResult:
    """The welcome message (欢迎语) of an add_external_contact event, once per ``key``, never a retry storm.

    * Sent → sent. 41051 (code used, unknown or expired) and other refusals → failed with the errcode, never
      retried: the code is single use, a retry can only fail again.
    * Busy, rate limit or outage → retried here, a short pause apart, while ``deadline`` (event time + 20 s)
      has not passed, at most :data:`WELCOME_MAX_ATTEMPTS` calls; then failed ("welcome_window_passed" /
      "welcome_retries_exhausted").
    * Called after the deadline (a backlog) → failed "welcome_window_passed" without calling the API.
    * A 41051 after a timed-out attempt most likely means that attempt was delivered: noted in the message.
    """
    body = {"welcome_code": welcome_code, "text": {"content": text}}
    draft = _Draft(storable_key(key), "welcome", "welcome", recipient, body, customer_id)
    api = rt.get(WECOM_API)
    path = "externalcontact/send_welcome_msg"
    last_code: int | None = None
    timed_out = False
    calls = 0
    while True:
        opened = await _open(rt, draft)
        if isinstance(opened, OutboundResult):
            return opened
        if rt.clock.now() >= deadline:
            return await _finish(rt, opened, status=OutboundStatus.FAILED, error_code=last_code, error_message=WELCOME_WINDOW_PASSED)
        if calls >= WELCOME_MAX_ATTEMPTS:
            return await _finish(rt, opened, status=OutboundStatus.FAILED, error_code=last_code, error_message="welcome_retries_exhausted")
        calls += 1
        try:
            _data, error, attempt = await _call(rt, opened, api, path, body)
        except RetryLater as exc:  # rate limited: _call recorded the attempt
            last_code = exc.__cause__.errcode if isinstance(exc.__cause__, ApiError) else last_code
            await asyncio.sleep(WELCOME_RETRY_DELAY)
            continue
        except ApiUnavailable as exc:
            timed_out = timed_out or exc.timeout
            await asyncio.sleep(WELCOME_RETRY_DELAY)
            continue
        if error is None:
            return await _finish(rt, opened, status=OutboundStatus.SENT, attempt=attempt)
        if error.errcode == Errcode.BUSY:  # still busy after the client's own retries
            last_code = error.errcode
            await _record_retry(rt, opened, attempt)
            await asyncio.sleep(WELCOME_RETRY_DELAY)
            continue
        message = error.errmsg
        if error.errcode == Errcode.WELCOME_CODE_INVALID and timed_out:
            message = "41051 after a timed-out attempt: that attempt was probably delivered"
        return await _finish(rt, opened, status=OutboundStatus.FAILED, attempt=attempt, error_code=error.errcode, error_message=message)
