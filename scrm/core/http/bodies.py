"""Reading JSON request bodies with clear errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from scrm.core.errors import InvalidInput


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidInput("请求体不能为空，需要 JSON 对象 (a JSON object body is required)")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("请求体不是合法的 JSON (body is not valid JSON)") from None
    except RecursionError:  # [[[[…]]]] nested deeper than Python's stack: not a body anyone means
        raise InvalidInput("请求体 JSON 嵌套过深 (JSON nested too deeply)") from None
    if not isinstance(data, dict):
        raise InvalidInput("请求体必须是 JSON 对象 (body must be a JSON object)")
    if _has_nul(data):
        raise InvalidInput("请求体含有空字符 \\u0000 (NUL characters are not allowed)")
    return data


def _has_nul(data: Any) -> bool:
    """True when any key or string value holds U+0000: PostgreSQL refuses it in text, and SQLite's LIKE stops at
    it (a search for "\\0" would match everything)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def get_str(data: dict[str, Any], name: str, *, required: bool = True, max_len: int = 256) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        raise InvalidInput(f"字段 {name} 必须是不超过 {max_len} 字的字符串 ({name} must be a string ≤ {max_len})", field=name)
    return value.strip()


def get_int(data: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"字段 {name} 必须是整数 ({name} must be an integer)", field=name)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidInput(f"字段 {name} 超出范围 ({name} must be between {minimum} and {maximum})", field=name)
    return value
