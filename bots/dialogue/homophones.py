"""Homophones of the characters in product names, for names typed with pinyin input (雪壁 for 雪碧, 铁关音 for 铁观音,
泥子粉 for 腻子粉): the character a customer picked from the candidate list sounds the same as the right one.

The table ``pinyin.txt`` lists the 6,763 characters of GB2312 under each toneless syllable they can be read as
(every reading of a polyphone). It is data derived from ``pypinyin`` (MIT): regenerate it with
``python -m bots.dialogue.homophones`` (``pypinyin`` is a dev dependency; the product reads the file only).
Only the 3,755 level-1 characters of GB2312 — the common ones, the first a pinyin input offers — count as typos.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("pinyin.txt")
_LEVEL_1_END = 0xD8  # GB2312 rows 16–55 (lead bytes 0xB0–0xD7) are level 1, ordered by pinyin


def common(ch: str) -> bool:
    """A level-1 GB2312 character: what pinyin input offers first."""
    try:
        encoded = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(encoded) == 2 and 0xB0 <= encoded[0] < _LEVEL_1_END


@cache
def _syllables() -> dict[str, str]:
    """Toneless syllable → every GB2312 character read that way."""
    table: dict[str, str] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            syllable, chars = line.split(" ", 1)
            table[syllable] = chars
    return table


def homophones(chars: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each character, the common characters that share one of its readings (itself left out)."""
    table = _syllables()
    found: dict[str, frozenset[str]] = {}
    for ch in set(chars):
        same = {c for chars_ in table.values() if ch in chars_ for c in chars_ if c != ch and common(c)}
        if same:
            found[ch] = frozenset(same)
    return found


def _toneless(reading: str) -> str:
    bare = "".join(c for c in unicodedata.normalize("NFD", reading) if not unicodedata.combining(c))
    return bare.replace("ü", "v")


def generate() -> str:  # pragma: no cover - needs the dev dependency pypinyin
    from pypinyin.pinyin_dict import pinyin_dict  # noqa: PLC0415 - a dev dependency, only to regenerate the table

    by_syllable: dict[str, list[str]] = {}
    for lead in range(0xB0, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                ch = bytes((lead, trail)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            for reading in pinyin_dict.get(ord(ch), "").split(","):
                if reading:
                    chars = by_syllable.setdefault(_toneless(reading), [])
                    if ch not in chars:
                        chars.append(ch)
    head = "# toneless syllable, then every GB2312 character read that way (level 1 first); from pypinyin, see homophones.py\n"
    return head + "".join(f"{s} {''.join(cs)}\n" for s, cs in sorted(by_syllable.items()))


if __name__ == "__main__":  # pragma: no cover
    TABLE.write_text(generate(), encoding="utf-8")
    sys.stdout.write(f"wrote {TABLE} ({len(_syllables.__wrapped__())} syllables)\n")
