"""Messages typed in pinyin letters (kele 3xiang / fagun duoshao qian yi gen / quxiao ba / 香米jg): a customer who did
not pick the characters their input method offered. Each run of letters that reads, whole, as known words — a
product alias's own pinyin, or a word of ``cue_words.toml`` [pinyin_words] — is written in characters, and the
message is then understood as if it had been typed so. A run that does not read whole is left as it is (English,
a code, a name we do not know): nothing is guessed.

Pure and fast: the dictionary is built once per catalog (the parser's aliases), the segmentation is a small dynamic
programme over each run of letters.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from functools import cache
from typing import Final

from bots.dialogue.cue_words import pinyin_words
from bots.dialogue.homophones import TABLE

_LETTERS: Final = re.compile(r"[a-z]+", re.IGNORECASE)
# Latin words and codes customers and catalogs use as such: never read as pinyin
_NOT_PINYIN: Final = frozenset(
    "ok okay hi hello hey thx thanks thank bye yes no sorry pvc dn bv js ml kg mm cm so vip wifi app qq id pdf jpg png "
    "http https www com cn xswl yyds emm hhh haha".split()
)
_MAX_READINGS: Final = 16  # pinyin spellings tried per alias (polyphones multiply)


@cache
def _readings() -> dict[str, tuple[str, ...]]:
    """Character → its toneless readings (from the table homophones.py reads)."""
    out: dict[str, list[str]] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            syllable, chars = line.split(" ", 1)
            for ch in chars:
                out.setdefault(ch, []).append(syllable)
    return {ch: tuple(s) for ch, s in out.items()}


def spellings(word: str) -> list[str]:
    """Every toneless pinyin spelling of a word of Chinese characters (at most a few, for polyphones); [] when a
    character has no reading (a letter, a digit)."""
    readings = _readings()
    parts = [readings.get(ch) for ch in word]
    if not parts or any(p is None for p in parts):
        return []
    return ["".join(combo) for combo in itertools.islice(itertools.product(*parts), _MAX_READINGS)]  # type: ignore[arg-type]


def dictionary(aliases: Iterable[str]) -> dict[str, str]:
    """Pinyin → characters: the fixed words, then each alias (two characters or more) under each of its spellings —
    an alias never overrides a fixed word."""
    words = dict(pinyin_words())
    for alias in sorted(aliases, key=len, reverse=True):
        if len(alias) >= 2 and re.fullmatch(r"[\u4e00-\u9fff]+", alias):
            for spelling in spellings(alias):
                words.setdefault(spelling, alias)
    return words


def _segment(run: str, words: dict[str, str]) -> str | None:
    """The run read whole as known words (fewest pieces), in characters; None when it does not read whole."""
    best: list[tuple[int, str] | None] = [None] * (len(run) + 1)
    best[0] = (0, "")
    for end in range(1, len(run) + 1):
        for start in range(max(0, end - 24), end):
            if best[start] is None or (hanzi := words.get(run[start:end])) is None:
                continue
            pieces, text = best[start]  # type: ignore[misc]
            if best[end] is None or pieces + 1 < best[end][0]:  # type: ignore[index]
                best[end] = (pieces + 1, text + hanzi)
    return best[-1][1] if best[-1] is not None else None


def from_pinyin(text: str, words: dict[str, str]) -> str:
    """``text`` with each run of letters that reads whole as pinyin written in characters (the rest unchanged)."""

    def convert(m: re.Match[str]) -> str:
        run = m.group(0).lower()
        if len(run) < 2 or run in _NOT_PINYIN:
            return m.group(0)
        return _segment(run, words) or m.group(0)

    return _LETTERS.sub(convert, text)
