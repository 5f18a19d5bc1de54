"""The tagger in force: the rules version in force (database) and the catalog, turned into a :class:`Matcher`,
rebuilt when either changes.

Like :mod:`bots.dialogue.catalog_cache`, the build runs off the event loop (a worker thread). The matcher cuts with
the process's one tokenizer (:mod:`scrm.core.tokenizer`: jieba's dictionary, read from disk once per process,
plus the catalog's product names, which the order parser adds too) — the rules' words are not added to it (see
:mod:`tagging.rules.matcher`), so editing the rules changes no dictionary. A new catalog takes the old one's words
out of it and bumps its generation; a tagger built under another generation is rebuilt.

The rules live in the database, versioned (:mod:`tagging.rules.versions`). Each use checks the number of the
version in force (one index lookup, beside the catalog's version): a save from any process is in force in every
process from its next message, with no restart and no file written. A stored version that does not validate any
more (a newer code's stricter check) leaves the previous rules in force; ``error`` says why, and the console shows it.
When the table is empty, ``config/tag_rules.toml`` is stored as version 1 (the seed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

from config.settings import CONFIG_DIR
from fulfillment.catalog.services import CATALOG_VERSION, ProductInfo, catalog_naming, list_products
from fulfillment.sequences import current_value
from scrm.core.runtime import ResourceKey, Runtime
from scrm.core.tokenizer import fresh_tokenizer, loaded_generation, shared_tokenizer
from tagging.rules import versions
from tagging.rules.domain import EMPTY_RULES, RuleSet, RulesFileError, normalize, parse_rules
from tagging.rules.matcher import Matcher

log = logging.getLogger(__name__)

RULES_FILE = CONFIG_DIR / "tag_rules.toml"  # the seed: version 1 when the database has no rules yet
_CJK_RUN = re.compile(r"[\u3400-\u9fff]{2,}")


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
_built_lock = threading.Lock()
_built: OrderedDict[tuple[RuleSet, tuple[str, ...], Hashable, int], Matcher] = OrderedDict()
_BUILT_MAX = 4  # the rules in force and a few candidates being tried (they share the process's tokenizer)


def build_matcher(rules: RuleSet, words: tuple[str, ...] = (), catalog: Hashable = None) -> Matcher:
    """A matcher for ``rules`` with ``words`` (catalog words) in its dictionary. Blocking (≈1 ms per hundred rules;
    the first call in a process also loads jieba): call it in a thread. With ``catalog`` (the key of the catalog
    ``words`` come from, :func:`fulfillment.catalog.services.catalog_naming`) it cuts with the process's shared
    tokenizer, as the order parser does; without, with a private copy of jieba's dictionary (≈15 MiB, tests and
    benchmarks). The last few builds are kept, so the same rules and catalog are built once per process."""
    if catalog is None:
        return Matcher(rules, fresh_tokenizer(), extra_words=words)
    tokenizer = shared_tokenizer()
    with tokenizer.use_catalog(catalog) as generation:
        key = (rules, words, catalog, generation)
        with _built_lock:
            if key in _built:
                _built.move_to_end(key)
                return _built[key]
        matcher = Matcher(rules, tokenizer, extra_words=words)
    with _built_lock:
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
    rules_number: int = 0  # the stored version the rules come from (0: none)
    words: tuple[str, ...] = ()  # the catalog's words in the matcher's dictionary (a candidate built with them shares it)
    catalog: Hashable = None  # the catalog's key in the shared tokenizer (fulfillment.catalog.services.catalog_naming)
    generation: int = 0  # the shared tokenizer's generation the matcher was built under


@dataclass(frozen=True)
class TaggerStatus:
    number: int  # the stored version in force (0 for none)
    version: str  # its digest ("" for none)
    rules: int
    error: str  # why the newest stored version is not the rules in force; "" when it is
    loaded_at: dt.datetime | None


class TaggerCache:
    def __init__(self, seed: Path = RULES_FILE) -> None:
        self.seed = seed  # stored as version 1 when the database has no rules yet
        self._rules: RuleSet = EMPTY_RULES
        self._number = 0  # the stored version _rules come from
        self._seen = -1  # the newest stored version looked at (it may not have validated)
        self._tagger: Tagger | None = None
        self._error = ""
        self._loaded_at: dt.datetime | None = None
        self._lock = asyncio.Lock()

    async def _load(self, rt: Runtime, number: int) -> None:
        """Read stored version ``number`` into ``_rules`` (or keep the old rules and set ``_error``)."""
        async with rt.db.read() as conn:
            found = await versions.get_version(conn, number)
        if found is None:  # no version at all (the seed failed): nothing to load until one is stored
            self._seen = number
            return
        try:
            rules = await asyncio.to_thread(parse_rules, found.text)
        except RulesFileError as exc:
            self._error = f"版本 {number}: {exc}"
            log.error("tag rules version not loaded; previous rules stay in force", extra={"version": number, "error": str(exc)})
        else:
            if rules.version != self._rules.version:
                log.info("tag rules loaded", extra={"version": number, "digest": rules.version, "rules": len(rules.rules)})
            self._rules, self._number, self._error = rules, number, ""
        self._seen = number

    async def get(self, rt: Runtime) -> Tagger:
        """The tagger for the rules version and catalog in force now; rebuilds (off the loop) when either changed."""
        async with rt.db.read() as conn:
            catalog = await current_value(conn, CATALOG_VERSION)
            number = await versions.current_number(conn)
        tagger = self._tagger
        if tagger is not None and number == self._seen and tagger.catalog_version == catalog and tagger.generation == loaded_generation():
            return tagger
        async with self._lock:
            if number == 0:
                try:
                    if await versions.seed_if_empty(rt, self.seed):
                        log.info("tag rules seeded from the rules file", extra={"path": str(self.seed)})
                except (RulesFileError, OSError) as exc:  # no rules then; tagging goes on matching nothing
                    self._error = f"初始规则文件无法导入 (seed not loaded) {self.seed}: {exc}"
                    log.error("tag rules seed not loaded", extra={"path": str(self.seed), "error": str(exc)})
            if number == 0:
                async with rt.db.read() as conn:
                    number = await versions.current_number(conn)
            if number != self._seen:
                await self._load(rt, number)
            tagger = self._tagger
            if (
                tagger is not None
                and tagger.rules == self._rules
                and tagger.catalog_version == catalog
                and tagger.generation == loaded_generation()
            ):
                return tagger
            async with rt.db.read() as conn:
                infos = await list_products(conn)
            words, naming = product_words(infos), catalog_naming(infos)
            rules = self._rules
            matcher = await asyncio.to_thread(build_matcher, rules, words, naming)
            generation = loaded_generation()  # the build loaded the tokenizer: no longer 0
            self._tagger = Tagger(rules, matcher, catalog, rt.clock.now(), self._number, words, naming, generation)
            self._loaded_at = self._tagger.built_at
            return self._tagger

    def status(self) -> TaggerStatus:
        return TaggerStatus(self._number, self._rules.version, len(self._rules.rules), self._error, self._loaded_at)

    async def warm_up(self, rt: Runtime) -> None:
        """Seed the rules if needed, load jieba and build the tagger before the first customer message (at start)."""
        try:
            await self.get(rt)
        except Exception:
            log.exception("tagger warm-up failed; it is built on first use")


TAGGER_CACHE: ResourceKey[TaggerCache] = ResourceKey("tagger_cache")


def tagger_cache(rt: Runtime) -> TaggerCache:
    """The runtime's tagger cache (created on first use; seeds from config/tag_rules.toml)."""
    if not rt.has(TAGGER_CACHE):
        rt.put(TAGGER_CACHE, TaggerCache())
    return rt.get(TAGGER_CACHE)
