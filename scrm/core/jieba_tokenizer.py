"""The jieba tokenizer the process shares (:mod:`scrm.core.tokenizer` says how it is used). This module imports
jieba (≈9 MiB with its ``pkg_resources``): only :mod:`scrm.core.tokenizer` imports it, on first use."""

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


def private_copy(shared: SharedTokenizer) -> jieba.Tokenizer:
    """A tokenizer with ``shared``'s dictionary without its catalog's words: a copy of its table (≈15 MiB; the
    strings and integers are shared)."""
    with shared._build_lock, shared._words_lock:
        tokenizer = jieba.Tokenizer()
        tokenizer.FREQ = dict(shared.FREQ)
        tokenizer.FREQ.update(shared._before)  # without the catalog's words
        tokenizer.total = shared.total if shared._total_before is None else shared._total_before
        tokenizer.initialized = True
    return tokenizer


def load() -> SharedTokenizer:
    """jieba's default dictionary, read from disk (≈1 s)."""
    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print
    tokenizer = SharedTokenizer()
    tokenizer.initialize()
    return tokenizer
