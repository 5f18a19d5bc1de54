"""The labelled chat corpus (bench/chat_corpus) and the scoring of ``python -m bench.chat``.

The corpus checks are plain file checks. The scoring is exercised with a small adapter over today's
``OrderParser.parse`` standing in for ``bots.dialogue.understanding.understand`` (not there yet on this branch):
it proves the bench's bookkeeping, not the parser's quality.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench import chat, chat_perturb
from bench.chat import CorpusError, Message, Outcome, load_catalog, load_corpus, parse_message, score, shops
from bots.dialogue.intents import (
    AddSameAsLast,
    Cancel,
    Clarify,
    Confirm,
    Correction,
    NotAnOrder,
    OrderLines,
    ParseResult,
    RemoveItem,
)
from bots.dialogue.parser import OrderParser

SHOPS = ("bakery", "building", "grocery", "tea")
CATEGORIES = {
    "plain_order", "multi_item", "question_with_number", "price_question", "stock_question", "delivery_question",
    "order_status", "complaint", "hedge", "negation", "correction", "colloquial_number", "shared_quantity",
    "non_quantity_number", "list_marker", "dozen", "yes_after_clarify", "traditional", "discount", "chitchat",
    "add", "remove", "cancel", "confirm", "ambiguous_product", "unit_mismatch", "vague_quantity", "bad_input",
}  # fmt: skip
MIN_MESSAGES = 600
MIN_PER_CATEGORY = 20


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[Message]]:
    return {shop: load_corpus(shop) for shop in shops()}


def every(corpus: dict[str, list[Message]]) -> list[Message]:
    return [m for messages in corpus.values() for m in messages]


# -- the corpus files ------------------------------------------------------------------------------


def test_every_shop_has_a_catalog_and_a_corpus() -> None:
    assert tuple(shops()) == SHOPS
    for shop in SHOPS:
        assert (chat.CORPUS_DIR / f"{shop}.jsonl").is_file()


@pytest.mark.parametrize("shop", SHOPS)
def test_catalog_is_well_formed(shop: str) -> None:
    products = load_catalog(shop)
    skus = [p.sku for p in products]
    assert len(skus) == len(set(skus)) >= 10
    for p in products:
        assert p.sku and p.name and p.unit and p.aliases, p
    aliases = Counter(a for p in products for a in set(p.aliases))
    assert any(n > 1 for n in aliases.values()), "each catalog has an ambiguous alias on purpose"


def test_every_line_parses_with_valid_fields(corpus: dict[str, list[Message]]) -> None:
    ids = Counter(m.id for m in every(corpus))
    assert [i for i, n in ids.items() if n > 1] == []
    for shop, messages in corpus.items():
        skus = {p.sku for p in load_catalog(shop)}
        for m in messages:
            assert m.shop == shop and m.id.startswith(f"{shop}-"), m.id
            assert m.category in CATEGORIES, m.id
            assert {sku for sku, _ in m.lines} <= skus, f"{m.id}: SKU not in the {shop} catalog"
            assert m.text == m.text.strip() and len(m.text) <= 300, m.id
            assert m.intent != "confirm" or m.has_draft or m.pending in ("unit", "confirm"), f"{m.id}: confirm of nothing"
            assert m.intent not in ("add", "change") or m.has_draft, f"{m.id}: needs a draft"
            # README rule 16: a removal needs a draft, or the bot waiting on 确认下单吗？ (pending "confirm")
            assert m.intent != "remove" or m.has_draft or m.pending == "confirm", f"{m.id}: remove of nothing"


def test_size_and_coverage(corpus: dict[str, list[Message]]) -> None:
    messages = every(corpus)
    assert len(messages) >= MIN_MESSAGES
    per_category = Counter(m.category for m in messages)
    assert set(per_category) == CATEGORIES
    assert {c: n for c, n in per_category.items() if n < MIN_PER_CATEGORY} == {}
    assert {m.category for m in messages if m.split == "tune"} == CATEGORIES, "every category in tune"
    held = [m for m in messages if m.split == "heldout"]
    if held:  # none between a spent set's retirement into tune and the next set's arrival (heldout/README.md)
        assert {m.category for m in held} == CATEGORIES, "every category in heldout"
        # Enough to tell 0.5 % of wrong orders apart (three messages at least), however large tune has grown.
        assert len(held) >= 500
        # The seventh set, written on 2026-12-07 while the sixth (<shop>-v001…v160) was being retired into tune:
        # <shop>-v201…v360 and v401…v430 (ids are never reused).
        assert all(m.id.startswith(f"{m.shop}-v") and int(m.id[len(m.shop) + 2 :]) > 200 for m in held), "heldout ids: <shop>-v2NN…"
    texts = Counter((m.shop, m.text, m.has_draft, m.pending) for m in messages)
    assert [t for t, n in texts.items() if n > 1] == [], "no message twice in the same context"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not json", "not JSON"),
        ('{"id": "x"}', "missing"),
        (
            '{"id": "x", "shop": "s", "text": "t", "has_draft": 0, "pending": null, "intent": "order", "lines": [], '
            '"category": "c", "split": "tune"}',
            "has_draft",
        ),
        (
            '{"id": "x", "shop": "s", "text": "t", "has_draft": false, "pending": null, "intent": "order", "lines": [], '
            '"category": "c", "split": "tune"}',
            "lines are for order/add",
        ),
        (
            '{"id": "x", "shop": "s", "text": "t", "has_draft": false, "pending": "maybe", "intent": "ordr", '
            '"lines": [["A", 0]], "category": "c", "split": "test"}',
            "pending, intent, split, lines",
        ),
    ],
)
def test_invalid_lines_are_reported_with_their_place(raw: str, problem: str) -> None:
    with pytest.raises(CorpusError, match=problem) as err:
        parse_message(raw, "shop.jsonl:7")
    assert "shop.jsonl:7" in str(err.value)


def test_the_file_decides_the_split(tmp_path: Path) -> None:
    """heldout/<shop>.jsonl is held out, <shop>.jsonl is tuned on; a split field saying otherwise is refused."""
    (tmp_path / "heldout").mkdir()
    line = (
        '{{"id": "s-{n}", "shop": "s", "text": "你好{n}", "has_draft": false, "pending": null, "intent": "chitchat", '
        '"lines": [], "category": "chitchat", "split": "{split}"}}'
    )
    (tmp_path / "s.jsonl").write_text(line.format(n=1, split="tune") + "\n", encoding="utf-8")
    assert [m.split for m in load_corpus("s", tmp_path)] == ["tune"]  # no heldout file: tune only
    (tmp_path / "heldout" / "s.jsonl").write_text(line.format(n="f001", split="heldout") + "\n", encoding="utf-8")
    assert [(m.id, m.split) for m in load_corpus("s", tmp_path)] == [("s-1", "tune"), ("s-f001", "heldout")]
    (tmp_path / "heldout" / "s.jsonl").write_text(line.format(n="f001", split="tune") + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"heldout/s.jsonl:1: split 'tune' in a heldout file"):
        load_corpus("s", tmp_path)


# -- the scoring ---------------------------------------------------------------------------------------


@dataclass
class Understood:
    intent: str
    lines: list[tuple[str, int]] = field(default_factory=list)


def parse_adapter(parser: OrderParser, text: str, *, has_draft: bool = False, pending: str | None = None) -> Understood:
    """Today's OrderParser.parse read as an Understanding — a stand-in to test the bench, nothing more."""
    result: ParseResult = parser.parse(text, has_draft=has_draft)
    if isinstance(result, OrderLines):
        return Understood("add" if result.mode == "add" else "order", [(ln.sku, ln.qty) for ln in result.lines])
    simple: dict[type[Any], str] = {
        Correction: "change",
        RemoveItem: "remove",
        Cancel: "cancel",
        Confirm: "confirm",
        Clarify: "clarify",
        AddSameAsLast: "clarify",
        NotAnOrder: "unknown",
    }
    return Understood(simple[type(result)])


def message(intent: str, lines: tuple[tuple[str, int], ...] = (), split: str = "tune", category: str = "c") -> Message:
    return Message("t-1", "t", "文本", False, None, intent, lines, category, split)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "got", "exact", "wrong"),
    [
        (("order", (("A", 2),)), ("order", (("A", 2),)), True, False),
        (("order", (("A", 2), ("B", 1))), ("order", (("A", 2), ("B", 1))), True, False),
        (("order", (("A", 2),)), ("order", (("A", 3),)), False, True),  # other quantity
        (("order", (("A", 2), ("B", 1))), ("order", (("A", 2),)), False, True),  # a silent partial order
        (("price_question", ()), ("order", (("A", 5),)), False, True),  # a question read as an order
        (("clarify", ()), ("order", (("A", 1),)), False, True),  # a guess instead of a question
        (("order", (("A", 2),)), ("add", (("A", 2),)), False, False),  # wrong intent, right goods
        (("order", (("A", 2),)), ("clarify", ()), False, False),  # asking back is a miss, not a wrong order
        (("hedge", ()), ("unknown", ()), False, False),
    ],
)
def test_exact_match_and_wrong_order(label: tuple[str, Any], got: tuple[str, Any], exact: bool, wrong: bool) -> None:
    o = Outcome(message(*label), got[0], got[1], 0.001)
    assert (o.exact, o.wrong_order) == (exact, wrong)


def test_an_exception_is_a_miss_and_the_run_goes_on() -> None:
    def broken(parser: OrderParser, text: str, **_: Any) -> Understood:
        raise RuntimeError("boom")

    outcomes = chat.run_shop(None, [message("order", (("A", 1),))], broken)  # type: ignore[arg-type]
    assert outcomes[0].error == "RuntimeError: boom" and not outcomes[0].exact and not outcomes[0].wrong_order
    assert score(outcomes).errors == 1


def test_scores_are_kept_per_split_and_category() -> None:
    outcomes = [
        Outcome(message("order", (("A", 1),), "tune", "x"), "order", (("A", 1),), 0.0),
        Outcome(message("hedge", (), "heldout", "x"), "order", (("A", 1),), 0.0),
        Outcome(message("hedge", (), "heldout", "y"), "hedge", (), 0.0),
    ]
    s = score(outcomes)
    assert (s.overall["tune"].exact_rate, s.overall["heldout"].exact_rate) == (1.0, 0.5)
    assert s.overall["heldout"].wrong_order_rate == 0.5 and s.by_category["x"]["heldout"].wrong_orders == 1
    assert s.targets_met == (False, False)


def test_the_bench_runs_end_to_end_and_never_shows_heldout_texts(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes, build = chat.evaluate(parse_adapter, ["grocery"])
    assert len(outcomes) == len(load_corpus("grocery")) and build["grocery"] > 0
    s = score(outcomes)
    assert 0 < s.overall["tune"].exact_rate < 1  # the stand-in gets some right and some wrong
    shown = "\n".join(chat.failures(outcomes))
    heldout = [o.message for o in outcomes if o.message.split == "heldout"]
    assert not any(m.id in shown for m in heldout)
    assert all(o.message.id in shown for o in outcomes if o.message.split == "tune" and not o.exact)
    table = chat.render(s, outcomes, build, ["python", "-m", "bench.chat"])
    assert "| **all** |" in table and "Targets (heldout)" in table
    # A text of one to three characters (the heldout 8, ok) is in any table of figures: look for the longer ones.
    assert [m.text for m in heldout if len(m.text) > 3 and m.text in table] == []


def test_heldout_texts_are_never_shown(tmp_path: Path) -> None:
    """With a heldout file, its misses are counted and its texts never printed."""
    line = (
        '{{"id": "grocery-{n}", "shop": "grocery", "text": "{text}", "has_draft": false, "pending": null, '
        '"intent": "hedge", "lines": [], "category": "hedge", "split": "{split}"}}'
    )
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "grocery.toml").write_text((chat.CORPUS_DIR / "catalogs" / "grocery.toml").read_text("utf-8"), "utf-8")
    (tmp_path / "grocery.jsonl").write_text(line.format(n="0001", text="可乐来三箱", split="tune") + "\n", "utf-8")
    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "grocery.jsonl").write_text(line.format(n="f999", text="雪碧搬两箱来", split="heldout") + "\n", "utf-8")
    outcomes, build = chat.evaluate(parse_adapter, ["grocery"], tmp_path)
    assert [o.message.split for o in outcomes] == ["tune", "heldout"] and not any(o.exact for o in outcomes)
    shown = "\n".join(chat.failures(outcomes))
    assert "grocery-0001" in shown and "grocery-f999" not in shown
    table = chat.render(score(outcomes), outcomes, build, ["python", "-m", "bench.chat"])
    assert "雪碧搬两箱来" not in table and "no held-out part" not in table


def test_without_heldout_the_targets_are_not_measured() -> None:
    """No heldout file: the bench says so plainly and marks the targets ✘ — tune figures are never judged."""
    s = score([Outcome(message("order", (("A", 1),), "tune", "x"), "order", (("A", 1),), 0.0)])
    assert s.overall["heldout"].n == 0
    table = chat.render(s, [], {}, ["python", "-m", "bench.chat"])
    assert "no held-out part" in table and "✔" not in table.split("Targets (heldout)")[1].split("\n")[0]
    report = chat.report_of(s)
    assert not report.ok and report.exit_code() == 1
    targets = {v.name: v for v in report.verdicts if v.kind == "target"}
    assert set(targets) == {"heldout wrong-order rate", "heldout exact match"}
    assert all(not v.ok and "not measured" in v.detail for v in targets.values())
    assert "no held-out part" in report.headline


def test_without_understanding_the_bench_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(chat, "understand_module", lambda: None)
    assert chat.main(["--no-write"]) == 2
    assert chat.NOT_IMPLEMENTED in capsys.readouterr().err


# -- very long and odd inputs (kept out of the JSONL corpus) ----------------------------------------------------

LONG_INPUTS = [
    "啊" * 10_000,
    "？" * 10_000,
    "1" * 10_000,
    "要3箱" * 2_000,
    "😀" * 5_000,
    "老板在吗" + " " * 9_990 + "。",
    "大米" * 5_000,
]


@pytest.fixture(scope="module")
def grocery_parser() -> OrderParser:
    return OrderParser(load_catalog("grocery"))


@pytest.mark.parametrize("text", LONG_INPUTS, ids=lambda t: f"{t[:4]}…{len(t)}")
def test_very_long_inputs_never_become_an_order(text: str, grocery_parser: OrderParser) -> None:
    understanding = pytest.importorskip(chat.UNDERSTANDING_MODULE)
    parser = grocery_parser
    t0 = time.perf_counter()
    got = understanding.understand(parser, text, has_draft=False, pending=None)
    assert time.perf_counter() - t0 < 2.0
    assert got.intent in chat.INTENTS and got.intent not in ("order", "add") and not got.lines


def test_the_perturbation_check_rewrites_with_the_label_each_variant_must_have() -> None:
    m = Message("grocery-9999", "grocery", "可乐要3箱", False, None, "order", (("COLA-500", 3),), "plain_order", "tune")
    got = {(v.family, v.text): v.label for v in chat_perturb.variants(m, load_catalog("grocery"), random.Random(1))}
    assert got[("courtesy", "老板 可乐要3箱")] == ("order", (("COLA-500", 3),))
    assert got[("numerals", "可乐要三箱")] == ("order", (("COLA-500", 3),))
    assert got[("verbs", "可乐来3箱")] == ("order", (("COLA-500", 3),))
    assert got[("scope", "可能可乐要3箱")] == ("hedge", ())
    assert got[("correction", "可乐要3箱，不对，5箱")] == ("order", (("COLA-500", 5),))
    tallies = chat_perturb.check(["grocery"])
    assert tallies and all(t.wrong_orders == 0 for t in tallies.values()), tallies
