"""jieba's dictionary, once per process: one tokenizer shared by every reader of chat text (the order parser in
``bots.dialogue`` and the tagger in ``tagging.rules``).

jieba's default dictionary is ≈500 k Python strings and integers (≈60 MiB, ≈1 s to load). The parser and the
tagger used to cut with a copy each (≈15 MiB a copy) beside a pristine original; now both cut with
:func:`shared_tokenizer`: jieba's dictionary plus the words of the catalog in force (product names and aliases,
added by the parser and by the tagger for the same catalog, so both cut text around product names the same way).

A new catalog takes the previous catalog's words out again (:meth:`scrm.core.jieba_tokenizer.SharedTokenizer.use_catalog`): every word's
frequency before the first catalog word touched it is kept, and put back. Nothing is ever deleted from the
dictionary — a word jieba did not know goes back to frequency 0, which jieba reads as "a prefix, not a word",
exactly as if it were absent — so a message being cut in another thread while a catalog changes may be read with
either catalog's words, never raises. Each change of catalog bumps the tokenizer's ``generation``: a reader
that built state for one catalog (the parser's alias table, the tagger's index) rebuilds it when the generation
it built under is not the current one.

A reader that must add words of its own without changing anyone else's cuts (a test, a parser built alone) takes
a private copy: :func:`fresh_tokenizer`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jieba

    from scrm.core.jieba_tokenizer import SharedTokenizer

_lock = threading.Lock()
_shared: SharedTokenizer | None = None


def shared_tokenizer() -> SharedTokenizer:
    """The process's tokenizer: jieba's default dictionary, read from disk on the first call (≈1 s, blocking —
    call it in a thread) plus the catalog's words. jieba itself is imported then too: a process that reads no
    chat text (a server whose jobs run in ``run.py worker``) never holds it."""
    global _shared
    with _lock:
        if _shared is None:
            from scrm.core import jieba_tokenizer

            _shared = jieba_tokenizer.load()
        return _shared


def loaded_generation() -> int:
    """The shared tokenizer's generation, or 0 while it is not loaded (loads nothing)."""
    shared = _shared
    return shared.generation if shared is not None else 0


def fresh_tokenizer() -> jieba.Tokenizer:
    """A private tokenizer with jieba's default dictionary and no catalog words, for a reader that adds words of its
    own (a test, a parser built alone): a copy of the shared one's dictionary table (≈15 MiB)."""
    from scrm.core import jieba_tokenizer

    return jieba_tokenizer.private_copy(shared_tokenizer())
