"""The cue-word lists of :mod:`bots.dialogue.understanding`, kept as data in ``cue_words.toml`` beside this module.

Each table of the file is one rule (``complaint``, ``price``, ``hedge`` …): a list of regular expressions,
most of them plain words. :func:`cue` compiles a table into one alternation once, and :class:`CueWords`
matches it and returns the match with the rule's name, which the understanding records as its evidence.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

CUE_WORDS_PATH: Final = Path(__file__).with_name("cue_words.toml")


@dataclass(frozen=True)
class CueWords:
    """One named list of cue words, compiled."""

    rule: str  # the table's name in cue_words.toml: what the evidence says matched
    words: tuple[str, ...]
    pattern: re.Pattern[str]

    @property
    def alternation(self) -> str:
        """The words as one regular expression source, to build a larger pattern from."""
        return self.pattern.pattern

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.pattern.search(text, pos)

    def __contains__(self, word: object) -> bool:
        return word in self.words


@cache
def _data() -> dict[str, dict[str, list[str]]]:
    return tomllib.loads(CUE_WORDS_PATH.read_text(encoding="utf-8"))


@cache
def _tables() -> dict[str, list[str]]:
    return {name: list(table["words"]) for name, table in _data().items() if "words" in table}


@cache
def homophone_typos() -> dict[str, tuple[str, ...]]:
    """Character → the homophones customers type for it in a product name (table ``homophone_typos``: "蛋=旦")."""
    out: dict[str, tuple[str, ...]] = {}
    for pair in _data()["homophone_typos"]["pairs"]:
        right, typo = pair.split("=")
        out[right] = (*out.get(right, ()), typo)
    return out


@cache
def pinyin_words() -> dict[str, str]:
    """Pinyin letters → the word they are typed for (table ``pinyin_words``: "quxiao=取消"), spaces taken out."""
    return {left.replace(" ", ""): right for left, right in (pair.split("=") for pair in _data()["pinyin_words"]["pairs"])}


_RULES: dict[re.Pattern[str], str] = {}  # compiled pattern -> its rule's name, for rule_of()


@cache
def cue(rule: str) -> CueWords:
    """The cue words of one rule (a table of ``cue_words.toml``), compiled on first use."""
    words = tuple(_tables()[rule])
    compiled = CueWords(rule, words, re.compile("|".join(words)))
    _RULES[compiled.pattern] = rule
    return compiled


def rule_of(match: re.Match[str], *modules: object) -> str:
    """The name of the rule a match came from: a table of ``cue_words.toml``, or else the name of the module-level
    pattern (in ``modules``, e.g. :mod:`bots.dialogue.cues`) that produced it — ``_DAMAGED`` reads ``damaged``."""
    if (rule := _RULES.get(match.re)) is not None:
        return rule
    for module in modules:
        for name, value in vars(module).items():
            if value is match.re:
                return name.strip("_").lower()
    return ""
