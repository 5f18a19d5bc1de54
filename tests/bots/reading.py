"""What the understanding tests share: ``understand`` read as (intent, sorted lines)."""

from __future__ import annotations

from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand


def read(parser: OrderParser, text: str, *, has_draft: bool = False, pending: str | None = None) -> tuple[str, list[tuple[str, int]]]:
    u = understand(parser, text, has_draft=has_draft, pending=pending)
    return u.intent, sorted(u.lines)
