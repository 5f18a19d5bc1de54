"""Chat understanding against the labelled corpus: how often ``understand`` reads a customer's message exactly as
the shop owner would, and how often it would place an order nobody asked for.

``python -m bench.chat [--show-failures] [--shops grocery,tea] [--no-write]``

The corpus is ``bench/chat_corpus/`` (its README has the format and the labelling rules): a catalog per shop and
one JSONL file of labelled messages per shop to tune on (``<shop>.jsonl``), and one held out
(``heldout/<shop>.jsonl``, written by an author who had not read the parser, never used for tuning). For each shop
the script builds an :class:`~bots.dialogue.parser.OrderParser` over the catalog (timed, not scored), then calls
``bots.dialogue.understanding.understand(parser, text, has_draft=…, pending=…)`` once per message, timing every
call. A message counts as an **exact match** when the intent and the lines (SKU, quantity — in any order) both
equal the label; a **wrong order** is a prediction of ``order`` / ``add`` with lines when the label has no lines or
other lines: goods the customer did not ask for. An exception from ``understand`` is a miss (never a wrong order).

Reported per category and overall, tune and heldout apart; plus per shop, and the time per message. Targets, on
the heldout split (never used for tuning): wrong-order rate ≤ 0.5 % and exact match ≥ 97 %. While there is no
heldout file (a spent set retired into tune, the next one not written yet) the run says so and the targets are
not measured: ✘, never ✔ — tune figures are never judged. ``--show-failures`` lists the tune split's misses —
heldout texts are never printed.

Exit code 0 = both targets met, 1 = a target missed or the run broke, 2 = ``bots.dialogue.understanding`` does not
exist yet (or hard timeout). Results go to stdout and to ``docs/BENCHMARKS.md`` (``<!-- bench:chat -->``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from bench.common import (
    PROJECT_ROOT,
    TIMED_OUT,
    add_run_options,
    command_line,
    generated_line,
    guarded,
    machine_lines,
    percentile,
    publish,
)
from bench.verdict import TARGET, Report, Verdict, at_least, at_most, check
from bots.dialogue.intents import Product
from bots.dialogue.parser import OrderParser

CORPUS_DIR = PROJECT_ROOT / "bench" / "chat_corpus"
UNDERSTANDING_MODULE = "bots.dialogue.understanding"
NOT_IMPLEMENTED = "bots.dialogue.understanding 尚未实现"
INTENTS = (
    "order",
    "add",
    "change",
    "remove",
    "cancel",
    "confirm",
    "clarify",
    "price_question",
    "stock_question",
    "delivery_question",
    "order_status",
    "complaint",
    "discount_request",
    "hedge",
    "chitchat",
    "unknown",
)
ORDERING_INTENTS = frozenset({"order", "add"})  # the intents that carry lines
PENDING = (None, "unit", "product", "quantity", "confirm")
SPLITS = ("tune", "heldout")
HELDOUT_DIR = "heldout"  # bench/chat_corpus/heldout/<shop>.jsonl: written by someone who had not read the parser
TARGET_WRONG_ORDER = 0.005  # heldout: at most 0.5 % of messages become an order nobody asked for
TARGET_EXACT = 0.97  # heldout: at least 97 % read exactly as labelled

Split: TypeAlias = Literal["tune", "heldout"]
Lines: TypeAlias = tuple[tuple[str, int], ...]
Understand: TypeAlias = Callable[..., Any]  # understand(parser, text, *, has_draft, pending) -> .intent, .lines


class CorpusError(ValueError):
    """A catalog or corpus file that does not follow bench/chat_corpus/README.md."""


@dataclass(frozen=True)
class Message:
    id: str
    shop: str
    text: str
    has_draft: bool
    pending: str | None
    intent: str
    lines: Lines  # sorted by SKU
    category: str
    split: Split


def split_of(path: Path) -> Split:
    """The split a corpus file's messages belong to: ``heldout/<shop>.jsonl`` is held out, ``<shop>.jsonl`` tuned on."""
    return "heldout" if path.parent.name == HELDOUT_DIR else "tune"


def sorted_lines(lines: Iterable[Sequence[Any]]) -> Lines:
    return tuple(sorted((str(sku), int(qty)) for sku, qty in lines))


# ---- loading ------------------------------------------------------------------------------------------------
def shops(directory: Path = CORPUS_DIR) -> list[str]:
    return sorted(p.stem for p in (directory / "catalogs").glob("*.toml"))


def load_catalog(shop: str, directory: Path = CORPUS_DIR) -> list[Product]:
    path = directory / "catalogs" / f"{shop}.toml"
    try:
        rows = tomllib.loads(path.read_text(encoding="utf-8"))["products"]
        return [Product(str(r["sku"]), str(r["name"]), tuple(map(str, r.get("aliases", ()))), str(r["unit"])) for r in rows]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path}: {exc!r}") from exc


def parse_message(raw: str, where: str) -> Message:
    """One JSONL line as a :class:`Message`; :class:`CorpusError` naming ``where`` when a field is missing or of
    the wrong type or value (SKUs are checked against the catalog by the caller)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: not an object")
    expected = {"id", "shop", "text", "has_draft", "pending", "intent", "lines", "category", "split"}
    if set(obj) != expected:
        raise CorpusError(f"{where}: fields {sorted(set(obj) ^ expected)} missing or unexpected")
    checks = [
        (isinstance(obj["id"], str) and obj["id"], "id"),
        (isinstance(obj["text"], str) and obj["text"], "text"),
        (isinstance(obj["has_draft"], bool), "has_draft"),
        (obj["pending"] in PENDING, "pending"),
        (obj["intent"] in INTENTS, "intent"),
        (isinstance(obj["category"], str) and obj["category"], "category"),
        (obj["split"] in SPLITS, "split"),
        (
            isinstance(obj["lines"], list)
            and all(
                isinstance(ln, list) and len(ln) == 2 and isinstance(ln[0], str) and type(ln[1]) is int and ln[1] > 0 for ln in obj["lines"]
            ),
            "lines",
        ),
    ]
    bad = [name for ok, name in checks if not ok]
    if bad:
        raise CorpusError(f"{where}: invalid {', '.join(bad)}")
    lines = sorted_lines(obj["lines"])
    if len({sku for sku, _ in lines}) != len(lines):
        raise CorpusError(f"{where}: a SKU twice in lines")
    if bool(lines) != (obj["intent"] in ORDERING_INTENTS):
        raise CorpusError(f"{where}: lines are for order/add and required there")
    return Message(
        obj["id"], obj["shop"], obj["text"], obj["has_draft"], obj["pending"], obj["intent"], lines, obj["category"], obj["split"]
    )


def corpus_files(shop: str, directory: Path = CORPUS_DIR) -> list[Path]:
    """The shop's tune file and, when there is one, its heldout file."""
    held = directory / HELDOUT_DIR / f"{shop}.jsonl"
    return [directory / f"{shop}.jsonl", *([held] if held.is_file() else [])]


def load_corpus(shop: str, directory: Path = CORPUS_DIR) -> list[Message]:
    """Every labelled message of ``shop``: its tune file, then its heldout file. A message whose ``split`` field
    does not say the split of the file it is in is refused (the file decides; the field makes it visible)."""
    out: list[Message] = []
    for path in corpus_files(shop, directory):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CorpusError(f"{path}: {exc}") from exc
        where = path.relative_to(directory)
        for n, raw in enumerate(text.splitlines(), 1):
            if raw.strip():
                m = parse_message(raw, f"{where}:{n}")
                if m.split != split_of(path):
                    raise CorpusError(f"{where}:{n}: split {m.split!r} in a {split_of(path)} file")
                out.append(m)
    return out


# ---- running and scoring ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    message: Message
    intent: str
    lines: Lines
    seconds: float
    error: str = ""  # the exception understand raised, if it did

    @property
    def exact(self) -> bool:
        return not self.error and self.intent == self.message.intent and self.lines == self.message.lines

    @property
    def wrong_order(self) -> bool:
        """Goods the customer did not ask for: an order/add with lines the label does not have."""
        return self.intent in ORDERING_INTENTS and bool(self.lines) and self.lines != self.message.lines


def understand_module() -> Understand | None:
    """``bots.dialogue.understanding.understand``, or None while that module does not exist."""
    try:
        module = importlib.import_module(UNDERSTANDING_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == UNDERSTANDING_MODULE:
            return None
        raise
    fn = getattr(module, "understand", None)
    return fn if callable(fn) else None


def run_shop(parser: OrderParser, messages: Sequence[Message], understand: Understand) -> list[Outcome]:
    out = []
    for m in messages:
        t0 = time.perf_counter()
        try:
            got = understand(parser, m.text, has_draft=m.has_draft, pending=m.pending)
            seconds = time.perf_counter() - t0
            out.append(Outcome(m, str(got.intent), sorted_lines(got.lines or ()), seconds))
        except Exception as exc:  # a crash on one message is a miss, reported, not the end of the run
            out.append(Outcome(m, "<error>", (), time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))
    return out


@dataclass
class Tally:
    n: int = 0
    exact: int = 0
    wrong_orders: int = 0

    def add(self, o: Outcome) -> None:
        self.n += 1
        self.exact += o.exact
        self.wrong_orders += o.wrong_order

    @property
    def exact_rate(self) -> float:
        return self.exact / self.n if self.n else float("nan")

    @property
    def wrong_order_rate(self) -> float:
        return self.wrong_orders / self.n if self.n else float("nan")


@dataclass
class Score:
    overall: dict[str, Tally] = field(default_factory=lambda: {s: Tally() for s in SPLITS})
    by_category: dict[str, dict[str, Tally]] = field(default_factory=lambda: defaultdict(lambda: {s: Tally() for s in SPLITS}))
    by_shop: dict[str, dict[str, Tally]] = field(default_factory=lambda: defaultdict(lambda: {s: Tally() for s in SPLITS}))
    errors: int = 0

    @property
    def targets_met(self) -> tuple[bool, bool]:
        held = self.overall["heldout"]
        return held.wrong_order_rate <= TARGET_WRONG_ORDER, held.exact_rate >= TARGET_EXACT


def score(outcomes: Iterable[Outcome]) -> Score:
    s = Score()
    for o in outcomes:
        split = o.message.split
        s.overall[split].add(o)
        s.by_category[o.message.category][split].add(o)
        s.by_shop[o.message.shop][split].add(o)
        s.errors += bool(o.error)
    return s


# ---- reporting ----------------------------------------------------------------------------------------------
def pct(value: float) -> str:
    return "–" if value != value else f"{value * 100:.1f} %"


def mark(ok: bool) -> str:
    return "✔" if ok else "✘"


def describe(intent: str, lines: Lines) -> str:
    return intent + (" " + ", ".join(f"{sku}×{qty}" for sku, qty in lines) if lines else "")


def failures(outcomes: Iterable[Outcome]) -> list[str]:
    """The tune split's misses, one line each. Heldout messages are skipped on purpose: their texts must not
    reach whoever tunes ``understand``."""
    out = []
    for o in outcomes:
        m = o.message
        if m.split != "tune" or o.exact:
            continue
        context = ", ".join(c for c in ("draft" if m.has_draft else "", f"pending={m.pending}" if m.pending else "") if c)
        got = o.error or describe(o.intent, o.lines)
        flag = " WRONG ORDER" if o.wrong_order else ""
        out.append(
            f"{m.id} [{m.category}{'; ' + context if context else ''}] {json.dumps(m.text, ensure_ascii=False)}: "
            f"want {describe(m.intent, m.lines)}, got {got}{flag}"
        )
    return out


def render(s: Score, outcomes: Sequence[Outcome], build_seconds: Mapping[str, float], command: Sequence[str]) -> str:
    tune, held = s.overall["tune"], s.overall["heldout"]
    wrong_ok, exact_ok = s.targets_met
    times = sorted(o.seconds for o in outcomes)
    lines = [
        "## Chat understanding (`python -m bench.chat`)",
        "",
        generated_line(command),
        "",
        *machine_lines(),
        "",
        f"Corpus `bench/chat_corpus/`: {tune.n + held.n} labelled messages from {len(s.by_shop)} shops, {len(s.by_category)} "
        f"categories; tune {tune.n}, heldout {held.n} (never used for tuning). Exact = intent and lines both as labelled; "
        "wrong order = `order`/`add` with lines the label does not have.",
        "",
        targets_line(held, wrong_ok, exact_ok),
        "",
        "| split | messages | exact match | wrong orders | wrong-order rate |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {t.n} | {pct(t.exact_rate)} | {t.wrong_orders} | {pct(t.wrong_order_rate)} |"
            for name, t in (("tune", tune), ("heldout", held))
        ),
        "",
        "| category | tune n | tune exact | heldout n | heldout exact | wrong orders (tune / heldout) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for category, by in sorted(s.by_category.items()):
        t, h = by["tune"], by["heldout"]
        lines.append(f"| {category} | {t.n} | {pct(t.exact_rate)} | {h.n} | {pct(h.exact_rate)} | {t.wrong_orders} / {h.wrong_orders} |")
    lines.append(
        f"| **all** | {tune.n} | {pct(tune.exact_rate)} | {held.n} | {pct(held.exact_rate)} | {tune.wrong_orders} / {held.wrong_orders} |"
    )
    lines += [
        "",
        "| shop | tune exact | heldout exact | wrong orders (tune / heldout) | parser build |",
        "|---|---:|---:|---:|---:|",
    ]
    for shop, by in sorted(s.by_shop.items()):
        t, h = by["tune"], by["heldout"]
        lines.append(
            f"| {shop} | {pct(t.exact_rate)} ({t.n}) | {pct(h.exact_rate)} ({h.n}) | {t.wrong_orders} / {h.wrong_orders} "
            f"| {build_seconds.get(shop, float('nan')):.2f} s |"
        )
    intents = Counter(o.intent for o in outcomes if not o.exact and o.message.split == "tune")
    lines += [
        "",
        f"Time per message (`understand` alone, {len(times)} calls): mean {_us(statistics.fmean(times) if times else float('nan'))}, "
        f"p50 {_us(percentile(times, 50))}, p99 {_us(percentile(times, 99))}, max {_us(times[-1] if times else float('nan'))}.",
        f"Exceptions raised by `understand`: {s.errors}."
        + (f" Tune misses by predicted intent: {', '.join(f'{k} {v}' for k, v in intents.most_common())}." if intents else ""),
    ]
    return "\n".join(lines) + "\n"


def targets_line(held: Tally, wrong_ok: bool, exact_ok: bool) -> str:
    if not held.n:
        return (
            f"**Targets (heldout)**: {mark(False)} not measured — there is no held-out part (no `{HELDOUT_DIR}/<shop>.jsonl`; "
            f"the last set was retired into tune, see `bench/chat_corpus/{HELDOUT_DIR}/README.md`). "
            f"Wrong-order rate ≤ {TARGET_WRONG_ORDER * 100:.1f} % and exact match ≥ {TARGET_EXACT * 100:.0f} % are judged on "
            "held-out messages only, never on tune."
        )
    return (
        f"**Targets (heldout)**: wrong-order rate ≤ {TARGET_WRONG_ORDER * 100:.1f} %: {mark(wrong_ok)} "
        f"{pct(held.wrong_order_rate)} ({held.wrong_orders} of {held.n}); exact match ≥ {TARGET_EXACT * 100:.0f} %: "
        f"{mark(exact_ok)} {pct(held.exact_rate)} ({held.exact} of {held.n})."
    )


def _us(seconds: float) -> str:
    return "–" if seconds != seconds else f"{seconds * 1e6:,.0f} µs"


# ---- main ---------------------------------------------------------------------------------------------------
def evaluate(understand: Understand, selected: Sequence[str], directory: Path = CORPUS_DIR) -> tuple[list[Outcome], dict[str, float]]:
    """Every message of the selected shops through ``understand``; (outcomes, parser build seconds per shop)."""
    outcomes: list[Outcome] = []
    build: dict[str, float] = {}
    for shop in selected:
        catalog, messages = load_catalog(shop, directory), load_corpus(shop, directory)
        skus = {p.sku for p in catalog}
        unknown = sorted({f"{m.id}: {sku}" for m in messages for sku, _ in m.lines if sku not in skus})
        if unknown:
            raise CorpusError(f"{shop}: labels name SKUs not in its catalog: {', '.join(unknown[:5])}")
        t0 = time.perf_counter()
        parser = OrderParser(catalog)
        build[shop] = time.perf_counter() - t0
        outcomes += run_shop(parser, messages, understand)
    return outcomes, build


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", default="", help=f"comma-separated subset of {','.join(shops())} (all)")
    parser.add_argument("--show-failures", action="store_true", help="list the tune split's misses (heldout never shown)")
    add_run_options(parser, hard_timeout=300.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    known = shops()
    args.shop_list = [s.strip() for s in args.shops.split(",") if s.strip()] or known
    unknown = set(args.shop_list) - set(known)
    if unknown:
        parser.error(f"--shops: unknown shop(s) {', '.join(sorted(unknown))}; choose from {','.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    understand = understand_module()
    if understand is None:
        print(f"{NOT_IMPLEMENTED}: {UNDERSTANDING_MODULE}.understand is needed to run this benchmark", file=sys.stderr)
        return 2
    code, result = guarded(lambda: evaluate(understand, args.shop_list), hard_timeout=args.hard_timeout)
    if code is not None or result is None:
        return code if code is not None else TIMED_OUT
    outcomes, build = result
    s = score(outcomes)
    if args.show_failures:
        shown = failures(outcomes)
        print(f"tune failures ({len(shown)}; heldout misses are counted, never shown):")
        print("\n".join(shown) if shown else "none")
    every_shop = set(args.shop_list) == set(shops())  # a subset's figures would overwrite the whole corpus's
    text = render(s, outcomes, build, command_line("bench.chat", argv))
    return publish("chat", text, report_of(s), write=every_shop and not args.no_write, results=args.results)


def report_of(s: Score) -> Report:
    """The heldout targets as this run's verdict (the tune split is reported, never judged: it is tuned on)."""
    held = s.overall["heldout"]
    report = Report("chat")
    report.add(check("understand raised no exception", s.errors == 0, f"{s.errors} exception(s)"))
    if held.n:
        report.add(
            at_most("heldout wrong-order rate", held.wrong_order_rate * 100, TARGET_WRONG_ORDER * 100, " %"),
            at_least("heldout exact match", held.exact_rate * 100, TARGET_EXACT * 100, " %"),
        )
        report.headline = (
            f"heldout: exact {pct(held.exact_rate)}, wrong orders {pct(held.wrong_order_rate)} ({held.wrong_orders} of {held.n})"
        )
    else:  # nothing held out: the targets are missed as not measured, never passed on tune figures
        report.add(
            Verdict("heldout wrong-order rate", False, f"not measured: no held-out part (≤ {TARGET_WRONG_ORDER * 100:.1f} %)", TARGET),
            Verdict("heldout exact match", False, f"not measured: no held-out part (≥ {TARGET_EXACT * 100:.0f} %)", TARGET),
        )
        tune = s.overall["tune"]
        report.headline = f"no held-out part (targets not measured); tune: exact {pct(tune.exact_rate)}, wrong orders {tune.wrong_orders}"
    report.figures = {"heldout_exact": held.exact_rate, "heldout_wrong_order_rate": held.wrong_order_rate, "n_heldout": held.n}
    return report


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
