"""What the chat order parser makes of one message: the intents (an order's lines, more of the last product, a
correction, a removal, confirm, cancel, a clarifying question, not an order) as plain frozen values. The dialogue
acts on them; :mod:`bots.dialogue.parser` produces them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    aliases: tuple[str, ...]
    unit: str  # the only unit the SKU is sold in (箱, 包, 瓶 …); quantities in another unit are queried


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit: str  # always the SKU's unit (a different written unit yields Clarify("unit_mismatch"))
    matched: str  # the normalised text that matched the product, for explanations and logs


@dataclass(frozen=True)
class OrderLines:
    lines: list[Line]
    mode: Literal["new", "add"]  # "add": 再来 / 再加 / 还要 — extend the draft rather than start one
    excluded: tuple[str, ...] = ()  # SKUs the same message said not to take (大米2袋，油先不要)
    kind: Literal["order_lines"] = field(default="order_lines", init=False)


@dataclass(frozen=True)
class AddSameAsLast:  # 还要一箱 / 再来两个: more of the last product; the dialogue resolves it on the draft
    qty: int
    unit: str | None
    kind: Literal["add_same_as_last"] = field(default="add_same_as_last", init=False)


@dataclass(frozen=True)
class Correction:  # 改成4箱: set a draft line's quantity
    sku: str | None  # None: the draft's only / last line
    qty: int
    unit: str | None  # the SKU's unit when sku is known, else as written (may be None)
    matched: str = ""
    candidates: tuple[str, ...] = ()  # sku None: the SKUs the product named may be (the draft holds one of them)
    # 蛋糕改成10寸的 / 不是茉莉花茶是白茶: the draft's line of one of these becomes ``sku`` (qty 0: the same amount)
    replaces: tuple[str, ...] = ()
    kind: Literal["correction"] = field(default="correction", init=False)


@dataclass(frozen=True)
class RemoveItem:  # 纸巾不要了 / 去掉纸巾
    sku: str
    also: tuple[str, ...] = ()  # further SKUs when several were named (纸巾和可乐都不要了)
    kind: Literal["remove_item"] = field(default="remove_item", init=False)

    @property
    def skus(self) -> tuple[str, ...]:
        return (self.sku, *self.also)


@dataclass(frozen=True)
class Confirm:
    kind: Literal["confirm"] = field(default="confirm", init=False)


@dataclass(frozen=True)
class Cancel:
    kind: Literal["cancel"] = field(default="cancel", init=False)


ClarifyReason = Literal[
    "ambiguous_product",  # one alias, several SKUs; candidates = those SKUs, numbered as in the question
    "missing_quantity",  # product known, no quantity
    "unknown_product",  # quantity + unit but nothing in the catalog; product_text = what they wrote
    "unit_mismatch",  # 3瓶矿泉水 when it is sold by 箱; qty/unit = the reading being offered (3, 箱)
    "invalid_quantity",  # 0, negative, > max_qty, 半箱, 1.5箱, vague (三四箱, 3-5箱)
    "missing_product",  # 要3箱 with no product; qty/unit kept (also the answer to "请问矿泉水要几箱？")
    "unclear_correction",  # 修改 / 减掉2箱 / several products in one correction: ask how
]


@dataclass(frozen=True)
class Clarify:
    reason: ClarifyReason
    question: str  # ready to send, Simplified Chinese
    candidates: list[str] = field(default_factory=list)  # SKUs
    product_text: str = ""
    qty: int | None = None
    unit: str | None = None
    kind: Literal["clarify"] = field(default="clarify", init=False)


@dataclass(frozen=True)
class NotAnOrder:
    kind: Literal["not_an_order"] = field(default="not_an_order", init=False)


ParseResult: TypeAlias = OrderLines | AddSameAsLast | Correction | RemoveItem | Confirm | Cancel | Clarify | NotAnOrder
