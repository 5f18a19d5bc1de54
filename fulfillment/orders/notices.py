"""Notices: an order event → the text the customer (or staff) reads. Templates live in config/notices.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.settings import CONFIG_DIR
from scrm.core.money import format_fen

TEMPLATES_FILE = CONFIG_DIR / "notices.toml"


@lru_cache(maxsize=4)
def templates(path: Path = TEMPLATES_FILE) -> dict[str, str]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: str(section["text"]) for name, section in data.items()}


class _Strict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"notice template needs {{{key}}}, which this event does not provide")


def render(name: str, /, **values: Any) -> str:
    """Fill template ``name``; a placeholder the event lacks is an error, never a silently blank text."""
    return templates()[name].format_map(_Strict(values)).strip()


def format_lines(lines: Iterable[Any], *, qty_attr: str = "qty") -> str:
    """Order lines as chat text: '· 矿泉水 550ml×24 × 3箱 = ¥108.00'."""
    out = []
    for ln in lines:
        qty = getattr(ln, qty_attr) if not isinstance(ln, dict) else ln[qty_attr]
        get = (lambda k, ln=ln: ln[k]) if isinstance(ln, dict) else (lambda k, ln=ln: getattr(ln, k))
        price = get("unit_price_fen") if _has(ln, "unit_price_fen") else None
        text = f"· {get('name')} × {qty}{get('unit')}"
        if price is not None:
            text += f" = {format_fen(price * qty)}"
        out.append(text)
    return "\n".join(out)


def _has(obj: Any, key: str) -> bool:
    return key in obj if isinstance(obj, dict) else hasattr(obj, key)
