"""The chat order parser for the current catalog, rebuilt when the catalog changes.

jieba's dictionary takes about a second to load (once per process: ``tagging.rules.engine.fresh_tokenizer``), so a
parser is built off the event loop (a worker thread), at start and again only when the catalog version changes.
Each version gets its own tokenizer (a copy of that dictionary): adding words to a tokenizer another thread is
cutting with is not safe, and catalog changes are rare.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bots.dialogue.intents import Product
from bots.dialogue.parser import OrderParser
from fulfillment.catalog.services import CATALOG_VERSION, ProductInfo, list_products
from fulfillment.sequences import current_value
from scrm.core.runtime import ResourceKey, Runtime
from tagging.rules.engine import fresh_tokenizer


@dataclass(frozen=True)
class ParserSnapshot:
    version: int
    parser: OrderParser
    products: dict[str, ProductInfo]  # by sku


class ParserCache:
    def __init__(self) -> None:
        self._snapshot: ParserSnapshot | None = None
        self._lock = asyncio.Lock()

    async def get(self, rt: Runtime) -> ParserSnapshot:
        async with rt.db.read() as conn:
            version = await current_value(conn, CATALOG_VERSION)
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        async with self._lock:
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            async with rt.db.read() as conn:
                infos = await list_products(conn)
            self._snapshot = await asyncio.to_thread(self._build, version, infos)
            return self._snapshot

    def _build(self, version: int, infos: list[ProductInfo]) -> ParserSnapshot:
        products = [Product(p.sku, p.name, p.aliases, p.unit) for p in infos]
        # A private copy of jieba's dictionary, loaded once per process and shared with the tagger's builds
        # (``run.py serve --workers N`` loads it before forking).
        return ParserSnapshot(version, OrderParser(products, tokenizer=fresh_tokenizer()), {p.sku: p for p in infos})

    async def warm_up(self, rt: Runtime) -> None:
        """Load jieba before the first customer message (called at start)."""
        await self.get(rt)


PARSER_CACHE: ResourceKey[ParserCache] = ResourceKey("order_parser_cache")


def parser_cache(rt: Runtime) -> ParserCache:
    if not rt.has(PARSER_CACHE):
        rt.put(PARSER_CACHE, ParserCache())
    return rt.get(PARSER_CACHE)
