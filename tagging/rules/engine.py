"""The tagger in force: the rules file and the catalog, turned into a :class:`Matcher`, rebuilt when either changes.

Like :mod:`bots.dialogue.catalog_cache`, the build runs off the event loop (a worker thread) and each version gets a
tokenizer of its own — words are added to a tokenizer while it is built, never while someone cuts with it. jieba's
dictionary is read from disk once per process (≈0.5–0.8 s) into a pristine base tokenizer that is never changed;
each build starts from a copy of its dictionary (≈10 ms), so editing the rules costs no second load.

The rules file is checked on every use (one ``stat``): a changed file is read again and, if its text changed,
rebuilt — no restart. A file that does not validate leaves the previous rules in force; ``error`` says why, and
the console shows it. The catalog's product names and aliases go into the dictionary too, so a keyword never
matches across a product name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba

from config.settings import CONFIG_DIR
from fulfillment.catalog.services import CATALOG_VERSION, ProductInfo, list_products
from fulfillment.sequences import current_value
from scrm.core.errors import Conflict
from scrm.core.runtime import ResourceKey, Runtime
from tagging.rules.domain import EMPTY_RULES, RuleSet, RulesFileError, load_rules, normalize, parse_rules, version_of
from tagging.rules.matcher import Matcher

log = logging.getLogger(__name__)

RULES_FILE = CONFIG_DIR / "tag_rules.toml"
_CJK_RUN = re.compile(r"[\u3400-\u9fff]{2,}")


def rules_path(settings: Any) -> Path:
    """The rules file of these settings: ``tag_rules_file`` when the settings have one, else config/tag_rules.toml."""
    configured = str(getattr(settings, "tag_rules_file", "") or "")
    return Path(configured) if configured else RULES_FILE


def product_words(products: Iterable[ProductInfo]) -> tuple[str, ...]:
    """Dictionary words from the catalog: aliases, and the Chinese runs of names (矿泉水 550ml×24 → 矿泉水)."""
    words: dict[str, None] = {}
    for p in products:
        for alias in p.aliases:
            alias = normalize(alias).strip()
            if len(alias) >= 2 and not any(ch.isspace() for ch in alias):
                words[alias] = None
        for run in _CJK_RUN.findall(normalize(p.name)):
            words[run] = None
    return tuple(sorted(words))


# ---- building (in a worker thread) ---------------------------------------------------------------------------
_base: jieba.Tokenizer | None = None
_base_lock = threading.Lock()
_built: OrderedDict[tuple[RuleSet, tuple[str, ...]], Matcher] = OrderedDict()
_BUILT_MAX = 2  # the rules in force and a candidate being tried (each holds a dictionary copy, ≈15 MB)


def fresh_tokenizer() -> jieba.Tokenizer:
    """A private, initialised tokenizer with jieba's default dictionary (loaded from disk once per process)."""
    global _base
    with _base_lock:
        if _base is None:
            jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print
            base = jieba.Tokenizer()
            base.initialize()
            _base = base
        tokenizer = jieba.Tokenizer()
        tokenizer.FREQ = dict(_base.FREQ)
        tokenizer.total = _base.total
        tokenizer.initialized = True
    return tokenizer


def build_matcher(rules: RuleSet, words: tuple[str, ...] = ()) -> Matcher:
    """A matcher for ``rules`` with ``words`` (catalog words) in its dictionary. Blocking (≈10 ms plus ≈1 ms per
    hundred words; the first call in a process also loads jieba): call it in a thread. The last few builds are
    kept, so the same rules and catalog are built once per process."""
    key = (rules, words)
    with _base_lock:
        if key in _built:
            _built.move_to_end(key)
            return _built[key]
    matcher = Matcher(rules, fresh_tokenizer(), extra_words=words)
    with _base_lock:
        _built[key] = matcher
        while len(_built) > _BUILT_MAX:
            _built.popitem(last=False)
    return matcher


# ---- the cache kept on the runtime ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Tagger:
    rules: RuleSet
    matcher: Matcher
    catalog_version: int
    built_at: dt.datetime


@dataclass(frozen=True)
class TaggerStatus:
    path: Path
    version: str  # of the rules in force ("" for none)
    rules: int
    error: str  # why the file on disk is not the rules in force; "" when it is
    loaded_at: dt.datetime | None


FileKey = tuple[int, int, int]  # inode, mtime_ns, size


class TaggerCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._rules: RuleSet = EMPTY_RULES
        self._file_key: FileKey | bool | None = False  # False: never read
        self._tagger: Tagger | None = None
        self._error = ""
        self._loaded_at: dt.datetime | None = None
        self._lock = asyncio.Lock()

    def _stat(self) -> FileKey | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self, key: FileKey | None) -> None:
        """Read the file into ``_rules`` (or keep the old rules and set ``_error``). Runs in a thread."""
        if key is None:
            self._error = f"找不到规则文件 (no rules file): {self.path}"
        else:
            try:
                rules = load_rules(self.path)
            except RulesFileError as exc:
                self._error = str(exc)
                log.error("tag rules file not loaded; previous rules stay in force", extra={"path": str(self.path), "error": str(exc)})
            else:
                if rules.version != self._rules.version:
                    log.info("tag rules loaded", extra={"path": str(self.path), "version": rules.version, "rules": len(rules.rules)})
                self._rules, self._error = rules, ""
        self._file_key = key

    async def get(self, rt: Runtime) -> Tagger:
        """The tagger for the rules file and catalog as they are now; rebuilds (off the loop) when either changed."""
        key = self._stat()
        async with rt.db.read() as conn:
            version = await current_value(conn, CATALOG_VERSION)
        tagger = self._tagger
        if tagger is not None and key == self._file_key and tagger.catalog_version == version:
            return tagger
        async with self._lock:
            key = self._stat()
            if key != self._file_key:
                await asyncio.to_thread(self._read, key)
            tagger = self._tagger
            if tagger is not None and tagger.rules == self._rules and tagger.catalog_version == version:
                return tagger
            async with rt.db.read() as conn:
                words = product_words(await list_products(conn))
            rules = self._rules
            matcher = await asyncio.to_thread(build_matcher, rules, words)
            self._tagger = Tagger(rules, matcher, version, rt.clock.now())
            self._loaded_at = self._tagger.built_at
            return self._tagger

    def invalidate(self) -> None:
        """Read the file again on the next use (after this process wrote it)."""
        self._file_key = False

    def read_text(self) -> tuple[str, str]:
        """The rules file as it is on disk and its version ("", "" when there is no file). Blocking (small file)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return "", ""
        return text, version_of(text)

    async def save(self, rt: Runtime, text: str, *, base_version: str | None = None) -> RuleSet:
        """Validate ``text`` and make it the rules file, in force at once in this process (others pick it up on
        their next message). Nothing is written when it does not validate (:class:`RulesFileError`) or when the file
        changed since the editor read it at ``base_version`` (:class:`Conflict`). The file is replaced atomically
        (write a temporary file, fsync, rename); the previous text is kept next to it as ``<name>.bak``."""
        rules = parse_rules(text)
        async with self._lock:
            _text, version = await asyncio.to_thread(self.read_text)
            if base_version is not None and version != base_version:
                raise Conflict("规则文件在您编辑期间已被修改，请重新打开页面后再改 (the file changed meanwhile)", version=version)
            await asyncio.to_thread(write_atomically, self.path, text, backup=bool(version))
            self._file_key = False
        await self.get(rt)
        return rules

    def status(self) -> TaggerStatus:
        return TaggerStatus(self.path, self._rules.version, len(self._rules.rules), self._error, self._loaded_at)

    async def warm_up(self, rt: Runtime) -> None:
        """Load jieba and build the tagger before the first customer message (called at start)."""
        try:
            await self.get(rt)
        except Exception:
            log.exception("tagger warm-up failed; it is built on first use")


def write_atomically(path: Path, text: str, *, backup: bool = True) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half of it; with
    ``backup`` the old file is copied to ``<name>.bak`` first. Keeps the old file's permissions (0644 for a new one)."""
    mode = 0o644
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if backup:
            bak = path.with_name(path.name + ".bak")
            bak.write_bytes(path.read_bytes())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


TAGGER_CACHE: ResourceKey[TaggerCache] = ResourceKey("tagger_cache")


def tagger_cache(rt: Runtime) -> TaggerCache:
    """The runtime's tagger cache (created on first use, for the settings' rules file)."""
    if not rt.has(TAGGER_CACHE):
        rt.put(TAGGER_CACHE, TaggerCache(rules_path(rt.settings)))
    return rt.get(TAGGER_CACHE)
