"""``POST /api/v1/archive/messages``: the chat-archive sidecar hands over decrypted records (bearer auth by the
/api/v1 middleware). Thin: read the body under its own size cap, split it, let :func:`services.ingest` do the rest.

Answers: 200 ``{"accepted","duplicates","rejected":[{"line","error"}]}`` when anything was accepted or all were
duplicates; 422 (same counts, plus the JSON error) when every record was rejected; 400 when the body itself is
unreadable; 413 over the cap — the sidecar then splits the batch.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from scrm.core.errors import InvalidInput
from scrm.core.http.errors import json_error
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, ErrorBody, add_api_route
from scrm.crm.archive import services
from scrm.crm.archive.services import ACTIONS

# Batches of a few thousand records; larger than the app-wide body cap, so this route streams its own body.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BODY_BYTES = web.AppKey("archive_max_body_bytes", int)


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (checked on Content-Length first, then while reading)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def post_messages(request: web.Request) -> web.Response:
    """Accept a JSON array of records, or JSON Lines (``Content-Type: application/x-ndjson``)."""
    limit = request.app.get(MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES)
    raw = await _read_capped(request, limit)
    if raw is None:
        return json_error(413, "payload_too_large", f"请求体超过 {limit} 字节，请分批发送 (body over {limit} bytes: send smaller batches)")
    try:
        items, rejected = services.split_body(raw, request.content_type)
    except services.UnreadableBody as exc:
        raise InvalidInput(str(exc)) from None
    report = await services.ingest(request.app[RUNTIME], items, report=services.IntakeReport(rejected=rejected))
    body = report.to_json()
    if report.accepted or report.duplicates:
        return web.json_response(body)
    if not report.rejected:
        raise InvalidInput("请求中没有记录 (no records in the body)")
    error = {"code": "invalid_input", "message": "所有记录均不合格，未保存任何记录 (every record was rejected; nothing stored)"}
    return web.json_response({"error": error, **body}, status=422)


class ArchiveText(BaseModel):
    content: str = ""


class ArchiveRecord(BaseModel):
    """A decrypted 会话内容存档 record as the WeCom SDK returns it; other fields are kept as they are (checked per
    record by the intake: a bad record is reported by line, the others are stored)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    msgid: str = Field(max_length=128)
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    sender: str = Field("", alias="from")
    tolist: list[str] = Field(default_factory=list)
    roomid: str = Field("", description="group chat id; empty for a 1:1 chat")
    msgtime: int = Field(0, description="milliseconds since 1970")
    msgtype: str = ""
    text: ArchiveText | None = None


class ArchiveBatch(RootModel[list[ArchiveRecord]]):
    """A JSON array of records (or JSON Lines, one record a line, as application/x-ndjson)."""


class ArchiveRejectedLine(ApiModel):
    line: int = Field(description="line of a JSON Lines body, element (1-based) of an array")
    error: str


class ArchiveIntake(ApiModel):
    accepted: int
    duplicates: int
    rejected: list[ArchiveRejectedLine]


class ArchiveAllRejected(ArchiveIntake):
    """422: every record was rejected; the counts plus the usual error."""

    error: ErrorBody


def setup_routes(app: web.Application, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    app[MAX_BODY_BYTES] = max_body_bytes
    add_api_route(
        app,
        "POST",
        "/archive/messages",
        post_messages,
        summary="Chat-archive records from the SDK sidecar (JSON array, or JSON Lines as application/x-ndjson); dedupe on msgid",
        request_body=ArchiveBatch,
        response={200: ArchiveIntake, 422: ArchiveAllRejected},
        errors=(400, 401, 413, 422),
    )
