"""The emulator's request model and dispatcher: access-token checks, errcode answers shaped like WeCom's.

Endpoint functions are plain Python ``(state, call) -> dict``: they read ``call.query`` / ``call.body``, apply
the API's rules to :class:`~bots.sandbox.state.SandboxState` and return the answer's fields, or raise
:class:`ApiFailure`. The HTTP layer (``emulator.py``) only parses, injects faults and serialises.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.entities import random_id
from bots.sandbox.state import SandboxState

MESSAGES = {
    Errcode.BUSY: "system busy",
    Errcode.INVALID_SECRET: "invalid credential",
    Errcode.INVALID_TOKEN: "invalid access_token",
    Errcode.TOKEN_MISSING: "access_token missing",
    Errcode.TOKEN_EXPIRED: "access_token expired",
    Errcode.RATE_LIMITED: "api freq out of limit",
    Errcode.CONCURRENCY_LIMITED: "api concurrent out of limit",
    Errcode.INVALID_PARAMETER: "invalid parameter",
    Errcode.NOT_EXTERNAL_CONTACT: "not external contact",
    Errcode.WELCOME_CODE_INVALID: "invalid welcome_code",
    Errcode.INVALID_OAUTH_CODE: "invalid code",
    Errcode.KF_WINDOW_CLOSED: "send msg session status invalid",
    Errcode.KF_QUOTA_EXHAUSTED: "send msg count exceed limit",
    Errcode.INVALID_MEDIA_TYPE: "invalid media type",
    Errcode.INVALID_FILE_TYPE: "invalid file type",
    Errcode.INVALID_FILE_SIZE: "invalid file size",
    Errcode.INVALID_MEDIA_ID: "invalid media_id",
    Errcode.INVALID_IMAGE_SIZE: "invalid image size",
}


class ApiFailure(Exception):
    """An errcode answer (HTTP 200, like the real service)."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg or MESSAGES.get(errcode, "error")


def error_answer(errcode: int, errmsg: str = "") -> dict[str, Any]:
    """``{"errcode","errmsg"}`` with the hint and help link the real service appends."""
    text = errmsg or MESSAGES.get(errcode, "error")
    hint = random_id(length=16)
    return {
        "errcode": errcode,
        "errmsg": f"{text}, hint: [{hint}], more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }


@dataclass(frozen=True)
class UploadedFile:
    """One file of a multipart/form-data request (media/upload)."""

    filename: str
    content_type: str
    content: bytes


@dataclass
class Call:
    """One API request: the query parameters and the JSON body (empty for GET), or a multipart form's files."""

    query: Mapping[str, str]
    body: dict[str, Any]
    files: Mapping[str, UploadedFile] = field(default_factory=dict)

    def param(self, name: str, *, required: bool = True) -> str:
        value = self.query.get(name, "")
        if required and not value:
            raise ApiFailure(Errcode.INVALID_PARAMETER, f"missing {name}")
        return value

    def field(self, name: str, kind: type | tuple[type, ...] = str, *, required: bool = True, default: Any = None) -> Any:
        """A body field of the given type; missing/wrongly typed required fields answer 40058."""
        if name not in self.body or self.body[name] is None:
            if required:
                raise ApiFailure(Errcode.INVALID_PARAMETER, f"missing {name}")
            return default
        value = self.body[name]
        if kind is int and isinstance(value, str) and value.lstrip("-").isdecimal():
            value = int(value)  # WeCom accepts numbers given as strings (agentid "1000002")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ApiFailure(Errcode.INVALID_PARAMETER, f"{name} has the wrong type")
        return value

    def strings(self, name: str, *, required: bool = True, limit: int | None = None) -> list[str]:
        values = self.field(name, list, required=required, default=[])
        if not all(isinstance(v, str) for v in values) or (limit is not None and len(values) > limit):
            raise ApiFailure(Errcode.INVALID_PARAMETER, f"{name} must be a list of at most {limit} strings")
        return list(values)

    def text_content(self) -> str:
        text = self.field("text", dict)
        content = text.get("content")
        if not isinstance(content, str) or not content:
            raise ApiFailure(Errcode.INVALID_PARAMETER, "missing text.content")
        return content


Endpoint = Callable[[SandboxState, Call], dict[str, Any]]


def encode_cursor(state: SandboxState, offset: int) -> str:
    """An opaque paging cursor (WeCom's are opaque strings too)."""
    return base64.urlsafe_b64encode(f"{state.epoch}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(state: SandboxState, cursor: str) -> int:
    """The offset of a cursor; "" = start. A cursor of an earlier emulator (the sandbox restarted and its log
    is gone) restarts from 0 rather than failing forever: consumers dedupe on msgid, so re-reading is
    harmless."""
    if not cursor:
        return 0
    try:
        epoch, _, offset = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        value = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid cursor") from None
    if value < 0:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid cursor")
    return value if epoch == state.epoch else 0


def page(state: SandboxState, items: list[Any], cursor: str, limit: int) -> tuple[list[Any], str]:
    """One page of ``items`` after ``cursor``; the next cursor is "" when this page is the last."""
    start = min(decode_cursor(state, cursor), len(items))
    chunk = items[start : start + limit]
    end = start + len(chunk)
    return chunk, encode_cursor(state, end) if end < len(items) else ""


TOKEN_PATHS = {"wecom": "gettoken", "mp": "token"}


def check_token(state: SandboxState, api: str, call: Call) -> None:
    """Every path but the token one needs a live access_token: 41001 missing, 40014 (MP: 40001) unknown,
    42001 expired."""
    status = state.token_status(api, call.query.get("access_token", ""))
    if status == "missing":
        raise ApiFailure(Errcode.TOKEN_MISSING)
    if status == "unknown":
        raise ApiFailure(Errcode.INVALID_TOKEN if api == "wecom" else Errcode.MP_INVALID_TOKEN, "invalid access_token")
    if status == "expired":
        raise ApiFailure(Errcode.TOKEN_EXPIRED)


def dispatch(state: SandboxState, api: str, path: str, call: Call, table: Mapping[str, Endpoint]) -> dict[str, Any]:
    """Answer one call: ``{"errcode":0,"errmsg":"ok",…}`` or an errcode answer. Raises KeyError for an unknown
    path (the HTTP layer answers 404)."""
    endpoint = table[path]
    try:
        if path != TOKEN_PATHS[api]:
            check_token(state, api, call)
        result = endpoint(state, call)
    except ApiFailure as exc:
        return error_answer(exc.errcode, exc.errmsg)
    return {"errcode": 0, "errmsg": "ok", **result}


# ---- temporary media (both APIs) ------------------------------------------------------------------------
MEDIA_TYPES = ("image", "voice", "video", "file")
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # WeCom: images up to 10 MB, JPG or PNG
MIN_FILE_BYTES = 6  # "every file must be larger than 5 bytes"


def media_upload(api: str) -> Endpoint:
    """``media/upload?type=`` with the file in the form field ``media``: stored, answered with a media_id valid
    3 days. An image must really be a PNG or JPG (by its signature, whatever its name says)."""

    def upload(state: SandboxState, call: Call) -> dict[str, Any]:
        kind = call.param("type")
        if kind not in MEDIA_TYPES:
            raise ApiFailure(Errcode.INVALID_MEDIA_TYPE)
        file = call.files.get("media")
        if file is None:
            raise ApiFailure(Errcode.INVALID_PARAMETER, "missing media")
        if len(file.content) < MIN_FILE_BYTES:
            raise ApiFailure(Errcode.INVALID_FILE_SIZE)
        content_type = file.content_type
        if kind == "image":
            sniffed = next((t for sig, t in IMAGE_SIGNATURES.items() if file.content.startswith(sig)), None)
            if sniffed is None:
                raise ApiFailure(Errcode.INVALID_FILE_TYPE)
            if len(file.content) > MAX_IMAGE_BYTES:
                raise ApiFailure(Errcode.INVALID_IMAGE_SIZE)
            content_type = sniffed
        media = state.store_media(api, kind, file.filename, content_type, file.content)
        created = int(media.created_at.timestamp())
        # WeCom answers created_at as a string of seconds, the Official Account as a number.
        return {"type": kind, "media_id": media.media_id, "created_at": str(created) if api == "wecom" else created}

    return upload
