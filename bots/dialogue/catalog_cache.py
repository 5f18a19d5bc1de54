"""The chat order parser for the current catalog, rebuilt when the catalog changes.

jieba's dictionary takes about a second to load (once per process: :mod:`scrm.core.tokenizer`), so a parser is
built off the event loop (a worker thread), at start and again when the catalog version changes. It cuts with the
process's one tokenizer, shared with the tagger: its aliases go into that dictionary for the catalog in force, and
a new catalog takes the old one's out (bumping the tokenizer's generation, which rebuilds a parser built under
another).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bots.dialogue.intents import Product
from bots.dialogue.parser import OrderParser
from fulfillment.catalog.services import CATALOG_VERSION, ProductInfo, catalog_naming, list_products
from fulfillment.sequences import current_value
from scrm.core.runtime import ResourceKey, Runtime
from scrm.core.tokenizer import loaded_generation, shared_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParserSnapshot:
    version: int
    parser: OrderParser
    products: dict[str, ProductInfo]  # by sku
    generation: int  # the shared tokenizer's generation the parser's aliases belong to


class ParserCache:
    def __init__(self) -> None:
        self._snapshot: ParserSnapshot | None = None
        self._lock = asyncio.Lock()

    async def get(self, rt: Runtime) -> ParserSnapshot:
        async with rt.db.read() as conn:
            version = await current_value(conn, CATALOG_VERSION)
        snap = self._snapshot
        if snap is not None and snap.version == version and snap.generation == loaded_generation():
            return snap
        async with self._lock:
            snap = self._snapshot
            if snap is not None and snap.version == version and snap.generation == loaded_generation():
                return snap
            async with rt.db.read() as conn:
                infos = await list_products(conn)
            self._snapshot = await asyncio.to_thread(self._build, version, infos)
            return self._snapshot

    def _build(self, version: int, infos: list[ProductInfo]) -> ParserSnapshot:
        products = [Product(p.sku, p.name, p.aliases, p.unit) for p in infos]
        tokenizer = shared_tokenizer()
        with tokenizer.use_catalog(catalog_naming(infos)) as generation:
            parser = OrderParser(products, tokenizer=tokenizer)
        return ParserSnapshot(version, parser, {p.sku: p for p in infos}, generation)

    async def warm_up(self, rt: Runtime) -> None:
        """Load jieba before the first customer message (called at start)."""
        try:
            await self.get(rt)
        except Exception:
            log.exception("order parser warm-up failed; it is built on first use")


PARSER_CACHE: ResourceKey[ParserCache] = ResourceKey("order_parser_cache")


def parser_cache(rt: Runtime) -> ParserCache:
    if not rt.has(PARSER_CACHE):
        rt.put(PARSER_CACHE, ParserCache())
    return rt.get(PARSER_CACHE)
