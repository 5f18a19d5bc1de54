"""Matching one message against every rule at once. Pure: a jieba tokenizer and the rules in, matches out.

Cost per message is one jieba pass plus a dictionary lookup per token (and per sub-word of tokens longer than
two characters), whatever the number of rules: an inverted index maps each word to the rules that use it. Intent
patterns are indexed too: each pattern has texts one of which every match contains (see
:func:`tagging.rules.domain.required_literals`); it is filed under the rarest character of each, and runs only on
messages containing that text. So neither words nor patterns are ever looped over per message.

The tokenizer must be private to the matcher (words are added to its dictionary) and is not changed after
construction, so one matcher may be used from several threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from re import Pattern
from typing import NamedTuple

import jieba

from tagging.rules.domain import Rule, RuleSet, compile_pattern, normalize, required_literals

_EXCLUDED = ""  # the "keyword" of an index entry for an excluded word
TOKEN_CACHE_SIZE = 100_000


class RuleMatch(NamedTuple):  # a tuple, not a dataclass: built on the hot path, several per message
    """One rule matched by one message, and why."""

    rule: Rule
    words: tuple[str, ...]  # what the customer wrote that counted, in order (synonyms as written, pattern texts)
    hits: tuple[str, ...]  # the distinct keywords (a synonym counts as its keyword) and patterns ("/…/") matched
    score: float  # rule.weight × len(hits)


@dataclass(frozen=True)
class _PatternEntry:
    rule_index: int
    source: str
    regex: Pattern[str]
    literals: tuple[str, ...]


def dictionary_freq(tokenizer: jieba.Tokenizer, word: str) -> int:
    """The frequency that keeps ``word`` whole when jieba cuts it alone, and no lower than it already has."""
    return max(int(tokenizer.suggest_freq(word, tune=False)), int(tokenizer.FREQ.get(word) or 0), 1)


class Matcher:
    def __init__(self, rules: RuleSet | Sequence[Rule], tokenizer: jieba.Tokenizer, *, extra_words: Iterable[str] = ()) -> None:
        """Index ``rules`` and add their words (and ``extra_words``, e.g. catalog product names, which only shape
        how text is cut) to ``tokenizer``'s dictionary. The tokenizer must be initialised and used by no one else."""
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
        for word in dict.fromkeys([*(normalize(w).strip() for w in extra_words), *index]):
            if word and not any(ch.isspace() for ch in word):
                tokenizer.add_word(word, freq=dictionary_freq(tokenizer, word))
        self._index: dict[str, tuple[tuple[int, str], ...]] = {w: tuple(e) for w, e in index.items()}
        # Lengths of indexed words that may sit inside a longer token (one-character words match whole tokens only).
        self._sub_lengths = tuple(sorted({len(w) for w in index if len(w) >= 2}))
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
        # token → its index entries; bounded (cleared when full). Plain dict reads and writes are atomic, so threads
        # sharing the matcher at worst compute an entry twice.
        self._token_cache: dict[str, tuple[tuple[int, str, str], ...]] = {}

    def _token_entries(self, token: str) -> tuple[tuple[int, str, str], ...]:
        """(rule, hit, word) for a token: the token itself, and for tokens longer than two characters every indexed
        word of two or more characters inside it. Tokens repeat, so :meth:`match` caches this per token."""
        index = self._index
        out = [(rule_index, hit, token) for rule_index, hit in index.get(token, ())]
        n = len(token)
        if n > 2:
            for size in self._sub_lengths:
                if size >= n:
                    break
                for start in range(n - size + 1):
                    sub = token[start : start + size]
                    out.extend((rule_index, hit, sub) for rule_index, hit in index.get(sub, ()))
        return tuple(out)

    # ---- reading ------------------------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        """The tokens rules are matched on (normalised text, dictionary cut without HMM)."""
        return list(self._tokenizer.cut(normalize(text), HMM=False))

    def pattern_candidates(self, normalized: str) -> list[int]:
        """Indexes of the patterns whose fixed text occurs in the (normalised) message: the only ones run."""
        gates = self._gates
        found: set[int] = set()
        for ch in self._gate_chars.intersection(normalized):
            found.update(gates[ch])
        patterns = self._patterns
        return sorted(p for p in found if any(lit in normalized for lit in patterns[p].literals))

    def match(self, text: str) -> list[RuleMatch]:
        """Every rule the message matches, in rule order, each with the words that counted and its score.

        A rule matches when one of its keywords (or their synonyms) is a token of the message — or, for words of
        two or more characters, part of one — or one of its patterns matches; an excluded word vetoes the rule for
        this message. Score = weight × number of distinct keywords and patterns matched."""
        norm = normalize(text)
        found: dict[int, dict[str, str]] = {}  # rule → {hit: first word said for it}
        vetoed: set[int] = set()
        cache = self._token_cache
        for token in self._tokenizer.cut(norm, HMM=False):
            entries = cache.get(token)
            if entries is None:
                entries = self._token_entries(token)
                if len(cache) >= TOKEN_CACHE_SIZE:
                    cache.clear()
                cache[token] = entries
            for rule_index, hit, word in entries:
                if hit:
                    found.setdefault(rule_index, {}).setdefault(hit, word)
                else:  # an excluded word
                    vetoed.add(rule_index)
        if self._gate_chars:
            for p in self.pattern_candidates(norm):
                entry = self._patterns[p]
                if entry.rule_index in vetoed:
                    continue
                m = entry.regex.search(norm)
                if m is not None:
                    found.setdefault(entry.rule_index, {}).setdefault(f"/{entry.source}/", m.group(0))
        out: list[RuleMatch] = []
        for rule_index in sorted(found.keys() - vetoed):
            hits = found[rule_index]
            rule = self.rules[rule_index]
            words = tuple(dict.fromkeys(hits.values()))
            out.append(RuleMatch(rule, words, tuple(hits), rule.weight * len(hits)))
        return out
