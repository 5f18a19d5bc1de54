"""Reading JSON request bodies with clear errors: :func:`read_body` validates a body into its pydantic model at the edge."""

from __future__ import annotations

import json
from typing import Any, ClassVar, TypeVar

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

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


class Body(BaseModel):
    """A JSON request body. Strict JSON types (an integer is a JSON integer, never ``true`` or ``"1"``); unknown
    fields are ignored unless a model says ``extra="forbid"`` (where the API always refused them).

    ``messages`` replaces the generated message for a field (the existing wording scripts and tests rely on)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    messages: ClassVar[dict[str, str]] = {}
    error_types: ClassVar[dict[str, type[InvalidInput]]] = {}  # a field whose problems keep a specific code


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


# A required string: stripped, not blank. ``Annotated[str, NonBlank, Field(max_length=N)]``.
NonBlank = StringConstraints(min_length=1)
# An optional string: null or absent reads as "".
OrEmpty = BeforeValidator(_none_as_empty)

B = TypeVar("B", bound=BaseModel)


async def read_body(request: web.Request, model: type[B], *, allow_empty: bool = False) -> B:
    """The JSON body validated into ``model``; any problem leaves as 400 ``invalid_input`` naming the field."""
    data = await read_json(request, allow_empty=allow_empty)
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise invalid(model, exc) from None


def invalid(model: type[BaseModel], exc: ValidationError) -> InvalidInput:
    """The first problem of a validation as :class:`InvalidInput` (all unknown fields at once)."""
    problems = exc.errors(include_url=False)
    extra = sorted(str(e["loc"][-1]) for e in problems if e["type"] == "extra_forbidden")
    if extra:
        return InvalidInput(f"未知字段 (unknown fields): {', '.join(extra)}", field=extra[0])
    first = problems[0]
    loc = first["loc"]
    top = str(loc[0]) if loc else ""
    names = [str(part) for part in loc if isinstance(part, str)]
    name = names[-1] if names else top
    where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
    messages: dict[str, str] = getattr(model, "messages", {})
    error = getattr(model, "error_types", {}).get(top, InvalidInput)
    if where in messages or top in messages:
        return error(messages.get(where) or messages[top], field=name)
    return error(_message(where or "body", first), field=name or None)


def _message(name: str, error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return f"缺少字段 {name} ({name} is required)"
    if kind in ("string_type", "string_too_short"):
        return f"字段 {name} 必须是非空字符串 ({name} must be a non-empty string)"
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return f"字段 {name} 必须是不超过 {n} 字的字符串 ({name} must be a string ≤ {n})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"字段 {name} 必须是整数 ({name} must be an integer)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"字段 {name} 超出范围 ({name}: {error['msg']})"
    if kind == "bool_type":
        return f"{name} 必须是 true/false ({name} must be true or false)"
    if kind in ("list_type", "too_short", "too_long"):
        return f"字段 {name} 必须是数组，{error['msg']} ({name}: {error['msg']})"
    if kind in ("literal_error", "enum"):
        return f"字段 {name} 只能是 {ctx.get('expected', '')} ({name} must be one of {ctx.get('expected', '')})"
    if kind.startswith("date") or kind.startswith("timezone"):
        return f"{name} 需为 ISO 8601 日期/时间 ({name}: {error['msg']})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name} 必须是对象 ({name} must be an object)"
    return f"字段 {name} 不合法 ({name}: {error['msg']})"
