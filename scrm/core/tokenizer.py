"""jieba's dictionary, once per process: one tokenizer shared by every reader of chat text (the order parser in
``bots.dialogue`` and the tagger in ``tagging.rules``).

jieba's default dictionary is ≈500 k Python strings and integers (≈60 MiB, ≈1 s to load). The parser and the
tagger used to cut with a copy each (≈15 MiB a copy) beside a pristine original; now both cut with
:func:`shared_tokenizer`: jieba's dictionary plus the words of the catalog in force (product names and aliases,
added by the parser and by the tagger for the same catalog, so both cut text around product names the same way).

A new catalog takes the previous catalog's words out again (:meth:`SharedTokenizer.use_catalog`): every word's
frequency before the first catalog word touched it is kept, and put back. Nothing is ever deleted from the
dictionary — a word jieba did not know goes back to frequency 0, which jieba reads as "a prefix, not a word",
exactly as if it were absent — so a message being cut in another thread while a catalog changes may be read with
either catalog's words, never raises. Each change of catalog bumps :attr:`SharedTokenizer.generation`: a reader
that built state for one catalog (the parser's alias table, the tagger's index) rebuilds it when the generation
it built under is not the current one.

A reader that must add words of its own without changing anyone else's cuts (a test, a parser built alone) takes
a private copy: :func:`fresh_tokenizer`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import jieba


class SharedTokenizer(jieba.Tokenizer):  # type: ignore[misc]
    """A jieba tokenizer whose added words belong to a catalog and can be taken out again."""

    def __init__(self) -> None:
        super().__init__()
        self.catalog: Hashable = None  # the key of the catalog whose words are in (None: jieba's own words only)
        self.generation = 0  # bumped at every change of catalog
        self._before: dict[str, int] = {}  # word → its frequency before this catalog (0: not in jieba's dictionary)
        self._tags_before: dict[str, str | None] = {}
        self._total_before: int | None = None
        self._words_lock = threading.Lock()  # add_word's reads and writes of one word are not atomic
        self._build_lock = threading.RLock()  # one catalog build at a time (the parser's and the tagger's)

    def add_word(self, word: str, freq: int | None = None, tag: str | None = None) -> None:
        """jieba's ``add_word``, remembering what it overwrites (the word, its prefixes, the total, the tag)."""
        self.check_initialized()
        with self._words_lock:
            if self._total_before is None:
                self._total_before = self.total
            for end in range(1, len(word) + 1):
                self._before.setdefault(word[:end], self.FREQ.get(word[:end]) or 0)
            if tag:
                self._tags_before.setdefault(word, self.user_word_tag_tab.get(word))
            super().add_word(word, freq, tag)

    @contextmanager
    def use_catalog(self, key: Hashable) -> Iterator[int]:
        """Hold the dictionary for catalog ``key`` while its words are added; yields the generation they belong to.
        A different catalog's words are taken out first (and the generation bumped); the same catalog keeps its
        words, so the parser and the tagger each add theirs."""
        with self._build_lock:
            if key != self.catalog:
                self._forget_catalog()
                self.catalog = key
                self.generation += 1
            yield self.generation

    def _forget_catalog(self) -> None:
        with self._words_lock:
            for word, freq in self._before.items():
                self.FREQ[word] = freq  # never deleted: a reader in another thread may be between `in` and `[]`
            for word, tag in self._tags_before.items():
                if tag is None:
                    self.user_word_tag_tab.pop(word, None)
                else:
                    self.user_word_tag_tab[word] = tag
            if self._total_before is not None:
                self.total = self._total_before
            self._before.clear()
            self._tags_before.clear()
            self._total_before = None


_lock = threading.Lock()
_shared: SharedTokenizer | None = None


def shared_tokenizer() -> SharedTokenizer:
    """The process's tokenizer: jieba's default dictionary, read from disk on the first call (≈1 s, blocking —
    call it in a thread, or before forking servers so they share its pages) plus the catalog's words."""
    global _shared
    with _lock:
        if _shared is None:
            jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print
            tokenizer = SharedTokenizer()
            tokenizer.initialize()
            _shared = tokenizer
        return _shared


def loaded_generation() -> int:
    """The shared tokenizer's generation, or 0 while it is not loaded (loads nothing)."""
    shared = _shared
    return shared.generation if shared is not None else 0


def fresh_tokenizer() -> jieba.Tokenizer:
    """A private tokenizer with jieba's default dictionary and no catalog words: a copy of the shared one's
    dictionary table (≈15 MiB; the strings and integers are shared), for a reader that adds words of its own."""
    shared = shared_tokenizer()
    with shared._build_lock, shared._words_lock:
        tokenizer = jieba.Tokenizer()
        tokenizer.FREQ = dict(shared.FREQ)
        tokenizer.FREQ.update(shared._before)  # without the catalog's words
        tokenizer.total = shared.total if shared._total_before is None else shared._total_before
        tokenizer.initialized = True
    return tokenizer
