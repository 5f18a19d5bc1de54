"""Matching one message against every rule at once. Pure: a jieba tokenizer and the rules in, matches out.

Cost per message is, at each character, one dictionary lookup per distinct length of the rules' words, whatever the
number of rules, plus one jieba cut of each clause that holds one of them (:func:`cut_block`): an inverted index
maps each word to the rules that use it. Intent patterns are indexed too: each pattern has texts one of which every match contains (see
:func:`tagging.rules.domain.required_literals`); it is filed under the rarest character of each, and runs only on
messages containing that text. So neither words nor patterns are ever looped over per message.

How a word found in a message is read (each occurrence gets a :class:`Verdict`, shown in the evidence):

* **token boundaries** — the text is cut by jieba's own dictionary (plus the catalog's product names), *not* by the
  rules' words, so a keyword cannot carve itself out of a longer word: an occurrence that starts or ends inside a
  token is ``inside`` that word (到货 in 到/货款, 还要 in 还/要求). A word of two or more characters may sit inside one
  token (批发 in 批发价, 坏了 in 又坏了); a one-character word must be a whole token (漏 is not in 遗漏).
* **clauses** — the message is split into clauses at ，。！？；… and line breaks; exclusions and negation only reach
  within the clause around the keyword. An excluded word vetoes the rule's keywords in its own clause only
  (``excluded``), so "不用退，补给我" keeps its second signal.
* **negation** — a general negator token (不, 没, 没有, 别, 不用, 不要, 无所谓 …) before the keyword in its clause, or a
  resolution after it (解决了, 处理好了, 无所谓 …), makes it ``negated``. A bare past (投诉过) is *not* a negation:
  "我投诉过三次了还不处理" is an escalation. A-not-A questions (能不能, 要不要, 贵不贵) are
  questions, not negations.

The tokenizer must be private to the matcher (catalog words are added to its dictionary) and is not changed after
construction, so one matcher may be used from several threads.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from math import log
from re import Pattern
from typing import TYPE_CHECKING, NamedTuple

from tagging.rules.domain import Rule, RuleSet, compile_pattern, normalize, required_literals

if TYPE_CHECKING:
    import jieba  # imported on first use, by scrm.core.tokenizer

_EXCLUDED = ""  # the "keyword" of an index entry for an excluded word

# Where a clause ends (after NFKC: full-width ，！？；： are their ASCII forms). 、 lists items within a clause.
CLAUSE_BREAKS = frozenset(",;!?:。…~～\n\r\t ")
_BREAK = re.compile("[" + re.escape("".join(sorted(CLAUSE_BREAKS))) + "]")
# General negators: a token of these before a keyword in its clause negates it. 不能 is not one ("不能便宜点吗" asks).
NEGATORS = frozenset(
    {
        "不",
        "没",
        "没有",
        "别",
        "不用",
        "不要",
        "不是",
        "不想",
        "不需要",
        "不必",
        "无需",
        "无所谓",
        "未",
        "甭",
        "不会",
        "不再",
        "从不",
        "并不",
        "从没",
        "从来不",
        "没必要",
        "用不着",
        "不打算",
    }
)
# Resolutions and indifference after a keyword in its clause: the complaint is over, the price does not matter.
RESOLVED = (
    "解决了",
    "已解决",
    "已经解决",
    "处理好了",
    "处理完了",
    "已处理",
    "搞定了",
    "没事了",
    "没问题了",
    "换好了",
    "修好了",
    "无所谓",
    "不要紧",
    "不用了",
)


class Verdict(StrEnum):
    MATCHED = "matched"  # counts
    NEGATED = "negated"  # a negator before it (or a resolution after it) in its clause
    EXCLUDED = "excluded"  # one of the rule's excluded words is in its clause
    INSIDE = "inside"  # part of a longer word (the token boundaries say it is not this word)


class WordCheck(NamedTuple):
    """One occurrence of a rule's word (or a pattern's match) in a message, and how it was read."""

    word: str  # as written (a synonym as the customer wrote it, a pattern's matched text)
    hit: str  # the keyword it stands for, or "/pattern/"
    verdict: Verdict
    by: str = ""  # the negator, the excluded word, or the longer word it sits in

    def reason(self) -> str:
        """The reading in Chinese, as the evidence and the dry run show it."""
        if self.verdict is Verdict.MATCHED:
            return f"“{self.word}”命中" + (f"（算作“{self.hit}”）" if self.hit != self.word and not self.hit.startswith("/") else "")
        if self.verdict is Verdict.NEGATED and self.by in NEGATORS:
            return f"“{self.word}”被“{self.by}”否定，不计"
        if self.verdict is Verdict.NEGATED:
            return f"“{self.word}”后面有“{self.by}”（已解决），不计"
        if self.verdict is Verdict.EXCLUDED:
            return f"“{self.word}”所在分句有排除词“{self.by}”，不计"
        return f"“{self.word}”在词“{self.by}”之内，不计"


class RuleMatch(NamedTuple):  # a tuple, not a dataclass: built on the hot path, several per message
    """One rule matched by one message (or, from :meth:`Matcher.explain`, looked at and not counted), and why."""

    rule: Rule
    words: tuple[str, ...]  # what the customer wrote that counted, in order (synonyms as written, pattern texts)
    hits: tuple[str, ...]  # the distinct keywords (a synonym counts as its keyword) and patterns ("/…/") matched
    score: float  # rule.weight × len(hits)
    checks: tuple[WordCheck, ...] = ()  # every occurrence of the rule's words, counted or not, in order

    def reasons(self) -> list[str]:
        return [c.reason() for c in self.checks]


@dataclass(frozen=True)
class _PatternEntry:
    rule_index: int
    source: str
    regex: Pattern[str]
    literals: tuple[str, ...]


def dictionary_freq(tokenizer: jieba.Tokenizer, word: str) -> int:
    """The frequency that keeps ``word`` whole when jieba cuts it alone, and no lower than it already has."""
    return max(int(tokenizer.suggest_freq(word, tune=False)), int(tokenizer.FREQ.get(word) or 0), 1)


def add_catalog_words(tokenizer: jieba.Tokenizer, words: Iterable[str]) -> None:
    """Put catalog words (product names, aliases) in ``tokenizer``'s dictionary, so text is cut around them and no
    keyword matches across a product name. Call before the tokenizer is shared, or inside the shared one's use_catalog."""
    for word in dict.fromkeys(normalize(w).strip() for w in words):
        if word and not any(ch.isspace() for ch in word):
            tokenizer.add_word(word, freq=dictionary_freq(tokenizer, word))


# What jieba cuts with its dictionary as one block (jieba.re_han_default), and the characters it glues together when
# each is a word alone (jieba.re_eng).
_HAN_BLOCK = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+")
_ENG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def cut_block(tokenizer: jieba.Tokenizer, block: str) -> list[str]:
    """``list(tokenizer.cut(block, HMM=False))`` for one block of jieba's (text :data:`_HAN_BLOCK` matches whole),
    computed the same way — the same dictionary DAG, the same best route by log frequency (ties to the longer word),
    single letters and digits glued — but in one pass over plain lists, without the DAG dict, the route tuples and
    the generators: about half the time, the largest part of matching a message. Equality with jieba's own cut is
    tested on generated text."""
    freq, n = tokenizer.FREQ, len(block)
    logtotal = log(tokenizer.total)
    score = [0.0] * (n + 1)
    nxt = [0] * (n + 1)
    for idx in range(n - 1, -1, -1):
        top, top_end = 0.0, -1
        i, frag = idx, block[idx]
        while (f := freq.get(frag)) is not None:  # jieba's DAG: every prefix in the dictionary, kept when its freq > 0
            if f:
                candidate = log(f) - logtotal + score[i + 1]
                if top_end < 0 or candidate >= top:
                    top, top_end = candidate, i
            i += 1
            if i >= n:
                break
            frag = block[idx : i + 1]
        if top_end < 0:  # no word starts here: the character alone (jieba's `FREQ.get(...) or 1`)
            top, top_end = log(freq.get(block[idx]) or 1) - logtotal + score[idx + 1], idx
        score[idx], nxt[idx] = top, top_end + 1
    out: list[str] = []
    buf = ""
    x = 0
    while x < n:
        y = nxt[x]
        if y == x + 1 and block[x] in _ENG:
            buf += block[x]
        else:
            if buf:
                out.append(buf)
                buf = ""
            out.append(block[x:y])
        x = y
    if buf:
        out.append(buf)
    return out


class MessageReading:
    """One message cut into tokens and clauses: where tokens start and end, which clause a character is in, and the
    negator tokens of each clause.

    Given ``tokens`` (the whole message's cut), every clause is read at once. Given ``cut`` instead, a clause is cut
    only when a word in it is looked at — the matcher's way: most clauses of a chat line hold no rule's word, and
    the cut is most of the cost of reading one. Both give the same reading, because every clause break is a
    character jieba cuts blocks at (it is neither a Han character nor one of ``a-zA-Z0-9+#&._%-``), so a clause cut
    alone gives exactly the tokens the whole message's cut has there.
    """

    __slots__ = ("_clauses", "_cut", "breaks", "text")

    def __init__(self, text: str, tokens: Iterable[str] | None = None, *, cut: Callable[[str], Iterable[str]] | None = None) -> None:
        if (tokens is None) == (cut is None):
            raise TypeError("give the message's tokens or a cut function, not both")
        self.text = text
        # Clause k runs from after break k-1 to break k; break positions belong to no clause (-1).
        self.breaks = [m.start() for m in _BREAK.finditer(text)]
        self._cut = cut
        # clause → (token starts, token ends, negators as (end, token)), all in message positions
        self._clauses: dict[int, tuple[list[int], list[int], list[tuple[int, str]]]] = {}
        if tokens is not None:
            pos = 0
            for tok in tokens:
                clause = self.clause_of(pos)
                if clause >= 0:
                    self._add(clause, pos, tok)
                pos += len(tok)

    def _add(self, clause: int, start: int, tok: str) -> None:
        entry = self._clauses.get(clause)
        if entry is None:
            entry = self._clauses[clause] = ([], [], [])
        end = start + len(tok)
        entry[0].append(start)
        entry[1].append(end)
        if len(tok) <= 3 and tok in NEGATORS and not self._a_not_a(start, end):
            entry[2].append((end, tok))

    def _clause(self, clause: int) -> tuple[list[int], list[int], list[tuple[int, str]]]:
        entry = self._clauses.get(clause)
        if entry is None:
            if self._cut is None:  # read at once: a clause with no tokens is empty
                return [], [], []
            pos = self.clause_start(clause)
            for tok in self._cut(self.text[pos : self.clause_end(clause)]):
                self._add(clause, pos, tok)
                pos += len(tok)
            entry = self._clauses.setdefault(clause, ([], [], []))
        return entry

    def clause_of(self, i: int) -> int:
        """The clause character ``i`` is in (-1 for a clause break itself)."""
        k = bisect_left(self.breaks, i)
        return -1 if k < len(self.breaks) and self.breaks[k] == i else k

    def clause_start(self, clause: int) -> int:
        return self.breaks[clause - 1] + 1 if clause > 0 else 0

    def clause_end(self, clause: int) -> int:
        return self.breaks[clause] if clause < len(self.breaks) else len(self.text)

    def _a_not_a(self, start: int, end: int) -> bool:
        """能不能 / 要不要 / 贵不贵 / 有没有: the same character on both sides of 不 or 没 — a question."""
        text = self.text
        if text[start] not in "不没" or start == 0 or start + 1 >= len(text):
            return False
        return text[start - 1] == text[start + 1]

    def _token(self, i: int) -> tuple[int, int]:
        """Start and end of the token character ``i`` is in (a clause break is a token of its own)."""
        clause = self.clause_of(i)
        if clause < 0:
            return i, i + 1
        starts, ends, _ = self._clause(clause)
        k = bisect_right(starts, i) - 1
        return starts[k], ends[k]

    def inside(self, start: int, end: int) -> str:
        """ "" when [start, end) respects the token boundaries, else the longer word it cuts into."""
        s0, e0 = self._token(start)
        if (s0, e0) == (start, end):
            return ""
        if e0 >= end:  # within one token: a word of two or more characters may sit inside it
            return "" if end - start >= 2 else self.text[s0:e0]
        if s0 != start:
            return self.text[s0:e0]
        s1, e1 = self._token(end - 1)
        return "" if e1 == end else self.text[s1:e1]

    def negator(self, start: int, end: int) -> str:
        """The negator before [start, end) in its clause, or the resolution after it; "" for none."""
        clause = self.clause_of(start)
        for neg_end, tok in self._clause(clause)[2]:
            if neg_end <= start:
                return tok
        tail = self.text[end : self.clause_end(clause)]
        if tail:
            for marker in RESOLVED:
                if marker in tail:
                    return marker
        return ""


class Matcher:
    def __init__(self, rules: RuleSet | Sequence[Rule], tokenizer: jieba.Tokenizer, *, extra_words: Iterable[str] = ()) -> None:
        """Index ``rules`` and add ``extra_words`` (catalog product names, which shape how text is cut) to
        ``tokenizer``'s dictionary. The rules' own words are *not* added: token boundaries must be jieba's reading of
        the text, not the rules' wish. The tokenizer must be initialised; one shared (scrm.core.tokenizer) gets the words
        under its catalog's build lock."""
        self.rules: tuple[Rule, ...] = tuple(rules.rules if isinstance(rules, RuleSet) else rules)
        self._tokenizer = tokenizer
        index: dict[str, list[tuple[int, str]]] = {}
        for i, rule in enumerate(self.rules):
            for word in rule.keywords:
                index.setdefault(word, []).append((i, word))
            for synonym, keyword in rule.synonyms:
                index.setdefault(synonym, []).append((i, keyword))
            for word in rule.excluded:
                index.setdefault(word, []).append((i, _EXCLUDED))
        add_catalog_words(tokenizer, extra_words)
        self._index: dict[str, tuple[tuple[int, str], ...]] = {w: tuple(e) for w, e in index.items()}
        # first character → the lengths of the indexed words starting with it: the scan looks up only those.
        sizes: dict[str, set[int]] = {}
        for w in index:
            if w:
                sizes.setdefault(w[0], set()).add(len(w))
        self._sizes: dict[str, tuple[int, ...]] = {ch: tuple(sorted(n)) for ch, n in sizes.items()}
        self._gates: dict[str, list[int]] = {}
        self._patterns: list[_PatternEntry] = []
        freq = tokenizer.FREQ
        for i, rule in enumerate(self.rules):
            for source in rule.patterns:
                literals = tuple(sorted(required_literals(source)))
                if not literals:  # rules.parse_rules refuses these; a hand-built Rule may still carry one
                    raise ValueError(f"pattern /{source}/ of rule {rule.id!r} has no fixed text to index it by")
                self._patterns.append(_PatternEntry(i, source, compile_pattern(source), literals))
                for lit in literals:
                    key = min(lit, key=lambda ch: (freq.get(ch) or 0, ch))
                    self._gates.setdefault(key, []).append(len(self._patterns) - 1)
        self._gate_chars = frozenset(self._gates)

    # ---- reading ------------------------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        """The tokens rules are matched on (normalised text, dictionary cut without HMM)."""
        return list(self._cut(normalize(text)))

    def _cut(self, text: str) -> Iterable[str]:
        if _HAN_BLOCK.fullmatch(text):  # the usual clause: one block of jieba's, cut here without its generators
            return cut_block(self._tokenizer, text)
        return self._tokenizer.cut(text, HMM=False)

    def pattern_candidates(self, normalized: str) -> list[int]:
        """Indexes of the patterns whose fixed text occurs in the (normalised) message: the only ones run."""
        gates = self._gates
        found: set[int] = set()
        for ch in self._gate_chars.intersection(normalized):
            found.update(gates[ch])
        patterns = self._patterns
        return sorted(p for p in found if any(lit in normalized for lit in patterns[p].literals))

    def explain(self, text: str) -> list[RuleMatch]:
        """Every rule one of whose words (or patterns) occurs in the message, in rule order — counted or not — each
        with every occurrence's :class:`WordCheck`; a rule none of whose occurrences counted has score 0."""
        norm = normalize(text)
        index, sizes_of, n = self._index, self._sizes, len(norm)
        occurrences: list[tuple[int, int, tuple[tuple[int, str], ...]]] = []  # (start, end, index entries)
        for i, ch in enumerate(norm):
            sizes = sizes_of.get(ch)
            if sizes is None:
                continue
            for size in sizes:
                if i + size > n:
                    break
                entries = index.get(norm[i : i + size])
                if entries is not None:
                    occurrences.append((i, i + size, entries))
        candidates = self.pattern_candidates(norm) if self._gate_chars else []
        if not occurrences and not candidates:
            return []
        reading = MessageReading(norm, cut=self._cut)
        # (rule, hit, word, start, end, inside-of) for the rules' words; (rule, clause) → excluded word found there
        found: list[tuple[int, str, str, int, int, str]] = []
        excluded: dict[tuple[int, int], str] = {}
        for start, end, entries in occurrences:
            clause = reading.clause_of(start)
            if clause < 0:
                continue
            word = norm[start:end]
            inside = reading.inside(start, end)
            for rule_index, hit in entries:
                if hit:
                    found.append((rule_index, hit, word, start, end, inside))
                elif not inside:
                    excluded.setdefault((rule_index, clause), word)
        checks: dict[int, list[tuple[int, int, WordCheck]]] = {}
        for rule_index, hit, word, start, end, inside in found:
            if inside:
                check = WordCheck(word, hit, Verdict.INSIDE, inside)
            elif by := excluded.get((rule_index, reading.clause_of(start)), ""):
                check = WordCheck(word, hit, Verdict.EXCLUDED, by)
            elif by := reading.negator(start, end):
                check = WordCheck(word, hit, Verdict.NEGATED, by)
            else:
                check = WordCheck(word, hit, Verdict.MATCHED)
            checks.setdefault(rule_index, []).append((start, end, check))
        for p in candidates:
            entry = self._patterns[p]
            for m in entry.regex.finditer(norm):
                start, end = m.span()
                if start == end or reading.clause_of(start) < 0:
                    continue
                hit = f"/{entry.source}/"
                if by := excluded.get((entry.rule_index, reading.clause_of(start)), ""):
                    check = WordCheck(m.group(0), hit, Verdict.EXCLUDED, by)
                elif by := reading.negator(start, end):
                    check = WordCheck(m.group(0), hit, Verdict.NEGATED, by)
                else:
                    check = WordCheck(m.group(0), hit, Verdict.MATCHED)
                checks.setdefault(entry.rule_index, []).append((start, end, check))
                if check.verdict is Verdict.MATCHED:
                    break
        out: list[RuleMatch] = []
        for rule_index in sorted(checks):
            rule = self.rules[rule_index]
            spans = checks[rule_index]
            counted = [(s, e, c.hit) for s, e, c in spans if c.verdict is not Verdict.INSIDE]
            kept: list[WordCheck] = []
            hits: dict[str, str] = {}
            for s, e, c in sorted(spans, key=lambda x: (x[0], x[1])):
                if any(cs <= s and e <= ce and (cs, ce) != (s, e) and (c.verdict is Verdict.INSIDE or h == c.hit) for cs, ce, h in counted):
                    continue  # 漏 inside 漏水, 优惠 inside 优惠券 (its synonym) when the longer one is read: say it once
                kept.append(c)
                if c.verdict is Verdict.MATCHED:
                    hits.setdefault(c.hit, c.word)
            words = tuple(dict.fromkeys(hits.values()))
            out.append(RuleMatch(rule, words, tuple(hits), rule.weight * len(hits), tuple(kept)))
        return out

    def match(self, text: str) -> list[RuleMatch]:
        """Every rule the message matches, in rule order, each with the words that counted, its score and the
        reading of every occurrence (:attr:`RuleMatch.checks`). Score = weight × number of distinct keywords and
        patterns matched."""
        return [m for m in self.explain(text) if m.hits]
