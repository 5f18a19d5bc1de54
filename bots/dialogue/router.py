"""The dialogue router: a customer's text → an intent → a reply (Simplified Chinese).

Each skill module (ordering, order status, balance, stock, coupons; help and greeting here) lists its ``INTENTS``
— a matcher and a one-line description for 帮助 — and the composition root installs them all on the runtime.
Matching is on normalised text: full-width folded to half-width, lower-cased, surrounding punctuation and whitespace stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from scrm.core.runtime import ResourceKey, Runtime


@dataclass
class Turn:
    """One customer message to answer."""

    rt: Runtime
    channel: str  # kf | mp
    customer_id: int
    text: str
    inbound_id: int
    external_userid: str = ""
    openid: str = ""
    open_kfid: str = ""
    state: dict[str, Any] = field(default_factory=dict)  # what the bot waits for; saved after the turn
    scratch: dict[str, Any] = field(default_factory=dict)  # this turn only (the message's reading), never saved

    @property
    def normalized(self) -> str:
        return normalize_text(self.text)


@dataclass(frozen=True)
class ReplyImage:
    """A picture sent before the reply's text (a referral poster, PNG). When it went out, ``text`` is sent instead of
    the reply's own text — which stays the fallback that carries the picture's link."""

    png: bytes
    text: str
    filename: str = "image.png"


@dataclass
class Reply:
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    image: ReplyImage | None = None


Matcher = Callable[[str], bool]
IntentHandler = Callable[[Turn], Awaitable[Reply | None]]


@dataclass(frozen=True)
class Intent:
    """A keyword intent (``matcher`` set; the handler always answers) or a stage (``matcher`` None; the handler
    looks at the turn itself and returns None to let the next intent try)."""

    name: str
    matcher: Matcher | None
    handler: IntentHandler
    help_line: str = ""  # shown by 帮助; empty = not listed
    priority: int = 100  # lower runs first


# Every skill's intents (router, ordering, order status, balance, coupons: each module's INTENTS), installed on the
# runtime by the composition root — the dialogue knows no skill by import.
INTENTS_KEY: ResourceKey[tuple[Intent, ...]] = ResourceKey("dialogue_intents")

_PUNCT = " \t\r\n。，,.!！?？~～、;；:："


def normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", folded).strip(_PUNCT)


def exact(*words: str) -> Matcher:
    options = {normalize_text(w) for w in words}
    return lambda text: text in options


def install_intents(rt: Runtime, intents: Iterable[Intent]) -> None:
    """Install the dialogue's intents, in the order they are tried (priority, then name); names are unique."""
    by_name: dict[str, Intent] = {}
    for item in intents:
        if item.name in by_name:
            raise ValueError(f"two intents named {item.name!r}")
        by_name[item.name] = item
    rt.put(INTENTS_KEY, tuple(sorted(by_name.values(), key=lambda i: (i.priority, i.name))))


def intents(rt: Runtime) -> tuple[Intent, ...]:
    return rt.get(INTENTS_KEY)


async def respond(turn: Turn) -> Reply:
    """Pick the first intent whose matcher accepts the text; the fallback answers everything else."""
    text = turn.normalized
    for item in intents(turn.rt):
        if item.matcher is not None and not item.matcher(text):
            continue
        reply = await item.handler(turn)
        if reply is not None:
            reply.meta.setdefault("intent", item.name)
            return reply
    return await fallback(turn)


def help_text(rt: Runtime) -> str:
    lines = [f"· {i.help_line}" for i in intents(rt) if i.help_line]
    return "您好！我是在线客服助手，可以帮您：\n" + "\n".join(lines) + "\n有其他问题也可以直接留言，销售顾问会尽快回复您。"


async def help_intent(turn: Turn) -> Reply:
    return Reply(help_text(turn.rt))


async def greeting(turn: Turn) -> Reply:
    return Reply("您好，很高兴为您服务！\n" + help_text(turn.rt))


_MARKUP = re.compile(r"<[^>]*>")
_READABLE = re.compile(r"[0-9A-Za-z\u3400-\u9fff]")


async def fallback(turn: Turn) -> Reply:
    # Quote the start of the message back, readable text only: no markup, no emoji-only or punctuation-only echo.
    shown = _MARKUP.sub("", turn.text).strip()
    if len(shown) > 20:
        shown = shown[:20] + "…"
    quoted = f"“{shown}”" if _READABLE.search(shown) and shown == turn.text.strip()[: len(shown)] else "您的消息"
    return Reply(
        f"抱歉，我暂时没理解{quoted}。\n您可以发送“帮助”查看我能做什么；您的留言已记录，销售顾问会尽快回复您。",
        meta={"intent": "fallback"},
    )


# What this skill understands (the composition root installs every skill's list on the runtime).
INTENTS = [
    Intent(
        "help",
        exact("帮助", "help", "菜单", "?", "？", "功能", "怎么用", "h"),
        help_intent,
        help_line="发送“帮助”查看我能做什么",
        priority=0,
    ),
    Intent("greeting", exact("你好", "您好", "在吗", "在不在", "hi", "hello", "嗨", "哈喽"), greeting, priority=10),
]
