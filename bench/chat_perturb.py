"""How the chat understanding holds up when a tune message is written another way: ``python -m bench.chat_perturb``.

The tune split (``bench/chat_corpus/<shop>.jsonl``) is tuned on, so its exact-match rate says little about the next
customer's wording, and a held-out set is spent once it is looked at. This check needs neither: it takes each tune
message ``understand`` reads exactly as labelled, rewrites it in a way that must not change (or must change in a
known way) what the shop owner would do, and counts the readings that change — and among them the **wrong orders**
(an ``order`` / ``add`` with lines the rewritten message's expected label does not have). Each family is a kind of
variation customers produce:

- ``courtesy``: 老板 / 你好， in front, ～ / 啊 / ，麻烦了 / an emoji after — same label;
- ``run_on``: signs and spaces taken out, as voice input gives them (a decimal point kept) — same label;
- ``numerals``: 3箱 → 三箱, Arabic digits → full-width — same label;
- ``verbs``: the one 要 of an order → 来 / 拿 / 整 / 给我来 / 帮我拿 / 订 / 弄 / 称 / 搬 — same label;
- ``scope``: 可能 / 下个月再订 in front of an order → ``hedge``; ，一共多少钱 after it → ``price_question``;
  ，其他的过两天再说 after it → the same order; another product said "not" before or after it → the same order;
- ``correction``: ，不对，N+2 / 哦不 N+2 / ，改成N+2 … after a one-line order → that line with N+2.

A change is not always a fault (a rewrite can make a message mean something else); a wrong order is worth reading
every time. Pure: no database, no network; about a minute. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from bench.chat import Message, load_catalog, load_corpus, shops
from bots.dialogue.intents import Product
from bots.dialogue.parser import OrderParser
from bots.dialogue.understanding import understand

Label = tuple[str, tuple[tuple[str, int], ...]]
_ZH_DIGITS = dict(zip("123456789", "一两三四五六七八九", strict=True))
_UNIT_AFTER = "箱瓶袋包桶盒提个斤卷根片张方吨饼罐套条"
_SKIP = frozenset({"bad_input"})  # unreadable on purpose: a rewrite means nothing there


@dataclass(frozen=True)
class Variant:
    family: str
    text: str
    has_draft: bool
    label: Label  # what the rewritten message must read as


def _lines(m: Message) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(m.lines))


def _same(m: Message, family: str, text: str) -> Variant:
    return Variant(family, text, m.has_draft, (m.intent, _lines(m)))


def variants(m: Message, catalog: Sequence[Product], rng: random.Random) -> Iterator[Variant]:
    """The rewrites of one tune message, each with the label it must read as."""
    for form in ("老板 {}", "你好，{}", "{}～", "{} 😊", "{}啊", "{}，麻烦了"):
        yield _same(m, "courtesy", form.format(m.text))
    run_on = re.sub(r"[\s，,。！!～~]+|(?<!\d)\.|\.(?!\d)", "", m.text)
    if run_on != m.text and m.category not in ("list_marker", "correction"):  # numbers of a list or a retraction run together
        yield _same(m, "run_on", run_on)
    zh = re.sub(rf"(?<![\d.])([1-9])(?=\s*[{_UNIT_AFTER}])", lambda x: _ZH_DIGITS[x.group(1)], m.text)
    if zh != m.text:
        yield _same(m, "numerals", zh)
    wide = m.text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if wide != m.text:
        yield _same(m, "numerals", wide)
    plain_order = m.intent == "order" and not m.has_draft and m.pending is None
    if plain_order and m.text.count("要") == 1 and not re.search("不要|还要|也要|要是", m.text):
        for verb in ("来", "拿", "整", "给我来", "帮我拿", "订", "弄", "称", "搬"):
            yield _same(m, "verbs", m.text.replace("要", verb))
    if plain_order and m.category not in ("correction", "list_marker", "negation", "hedge", "question_with_number"):
        body = m.text.rstrip("。.!！")
        yield Variant("scope", f"可能{m.text}", False, ("hedge", ()))
        yield Variant("scope", f"下个月再订{m.text}", False, ("hedge", ()))
        yield Variant("scope", f"{body}，一共多少钱", False, ("price_question", ()))
        yield _same(m, "scope", f"{body}，其他的过两天再说")
        named = {sku for sku, _ in m.lines}
        others = [a for p in catalog if p.sku not in named for a in p.aliases if len(a) >= 2 and a not in m.text]
        if others:
            other = rng.choice(others)
            for form in ("{0}，{1}不要", "{0} {1}就不要了", "{0}，{1}家里还有"):
                yield _same(m, "scope", form.format(body, other))
            for form in ("{1}不要，{0}", "不要{1}了 {0}"):
                yield _same(m, "scope", form.format(m.text, other))
        if len(m.lines) == 1 and m.category != "dozen":
            sku, qty = m.lines[0]
            unit = next(p.unit for p in catalog if p.sku == sku)
            for form in ("{0}，不对，{1}{2}", "{0} 哦不 {1}{2}", "{0}，改成{1}{2}", "{0} 说错了 {1}{2}", "{0}，应该是{1}{2}"):
                yield Variant("correction", form.format(body, qty + 2, unit), False, ("order", ((sku, qty + 2),)))


@dataclass
class FamilyTally:
    n: int = 0
    changed: int = 0
    wrong_orders: int = 0


def check(selected: Sequence[str], seed: int = 7, show: Callable[[str], None] | None = None) -> dict[str, FamilyTally]:
    """Every variant of every tune message read right; per family: how many, how many changed, how many wrong orders."""
    rng = random.Random(seed)
    tallies: dict[str, FamilyTally] = {}
    for shop in selected:
        catalog = load_catalog(shop)
        parser = OrderParser(catalog)
        for m in load_corpus(shop):
            if m.split != "tune" or m.category in _SKIP:
                continue
            first = understand(parser, m.text, has_draft=m.has_draft, pending=m.pending)
            if (first.intent, tuple(sorted(first.lines))) != (m.intent, _lines(m)):
                continue  # a miss already: bench.chat --show-failures lists it
            for v in variants(m, catalog, rng):
                got = understand(parser, v.text, has_draft=v.has_draft, pending=m.pending if v.has_draft == m.has_draft else None)
                reading: Label = (got.intent, tuple(sorted(got.lines)))
                tally = tallies.setdefault(v.family, FamilyTally())
                tally.n += 1
                if reading != v.label:
                    tally.changed += 1
                    wrong = got.intent in ("order", "add") and bool(got.lines) and reading[1] != v.label[1]
                    tally.wrong_orders += wrong
                    if show is not None:
                        flag = " WRONG ORDER" if wrong else ""
                        show(f"{v.family} {m.id}{flag}: {v.text!r} → {got.intent} {list(reading[1])}, want {v.label[0]} {list(v.label[1])}")
    return tallies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_perturb", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", default="", help=f"comma-separated subset of {','.join(shops())} (all)")
    parser.add_argument("--show", action="store_true", help="print every changed reading")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in args.shops.split(",") if s.strip()] or shops()
    tallies = check(selected, show=print if args.show else None)
    print("| family | variants | readings changed | wrong orders |")
    print("|---|---:|---:|---:|")
    total = Counter[str]()
    for family, t in sorted(tallies.items()):
        print(f"| {family} | {t.n} | {t.changed} | {t.wrong_orders} |")
        total.update({"n": t.n, "changed": t.changed, "wrong": t.wrong_orders})
    print(f"| **all** | {total['n']} | {total['changed']} | {total['wrong']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
