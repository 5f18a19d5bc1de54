"""The process's one jieba tokenizer (scrm/core/tokenizer.py): the order parser and the tagger cut with it, a
catalog's words come out again for the next catalog, a private copy carries no catalog's words — and only a process
that reads the customers' messages loads it at start."""

from __future__ import annotations

import asyncio

import jieba
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bots.dialogue.catalog_cache import PARSER_CACHE
from bots.dialogue.intents import Product
from bots.dialogue.parser import OrderParser
from scrm.app.webapp import create_app
from scrm.core.http.keys import RUNTIME
from scrm.core.tokenizer import fresh_tokenizer, loaded_generation, shared_tokenizer
from tagging.rules.domain import parse_rules
from tagging.rules.engine import TAGGER_CACHE, build_matcher
from tests.conftest import make_settings

RULES = parse_rules(
    """
[[rules]]
id = "water"
tag = "关注饮用水"
keywords = ["喝水"]
"""
)
TEXT = "我要三箱桂花乌龙冰茶和两袋火山岩大米"


def cut(tokenizer: jieba.Tokenizer, text: str = TEXT) -> list[str]:
    return [w for w, _, _ in tokenizer.tokenize(text, HMM=False)]


def test_a_catalogs_words_come_out_for_the_next_catalog() -> None:
    shared = shared_tokenizer()
    plain = cut(fresh_tokenizer())
    assert "桂花乌龙冰茶" not in plain and "火山岩大米" not in plain
    with shared.use_catalog(("test", "tea")) as first:
        shared.add_word("桂花乌龙冰茶", 10_000, tag="nz")
    assert "桂花乌龙冰茶" in cut(shared)
    with shared.use_catalog(("test", "tea")) as same:  # the same catalog keeps its words (parser + tagger)
        shared.add_word("火山岩大米", 20_000)
    assert same == first and {"桂花乌龙冰茶", "火山岩大米"} <= set(cut(shared))
    assert shared.FREQ["火山岩大米"] == 20_000
    with shared.use_catalog(("test", "rice")) as second:
        pass
    assert second == first + 1 == loaded_generation()
    assert cut(shared) == plain
    assert "桂花乌龙冰茶" not in shared.user_word_tag_tab
    # Nothing is deleted: a word jieba did not know is back to 0 ("a prefix, not a word"); known words keep theirs.
    assert shared.FREQ["火山岩大米"] == 0 and shared.FREQ["大米"] == fresh_tokenizer().FREQ["大米"] > 0
    assert shared.total == fresh_tokenizer().total


def test_the_parser_and_the_tagger_cut_with_one_tokenizer() -> None:
    shared = shared_tokenizer()
    catalog = ("test", "parser and tagger")
    with shared.use_catalog(catalog):
        parser = OrderParser([Product("TEA-1", "桂花乌龙冰茶", ("乌龙冰茶",), "箱")], tokenizer=shared)
    matcher = build_matcher(RULES, ("桂花乌龙冰茶", "乌龙冰茶"), catalog)
    assert matcher._tokenizer is shared and parser._tokenizer is shared
    # The tagger's build keeps the parser's alias (it only raises frequencies), so the parser still reads it.
    assert "桂花乌龙冰茶" in cut(shared)
    assert parser.parse("桂花乌龙冰茶三箱").lines[0].sku == "TEA-1"  # type: ignore[union-attr]


def test_a_private_copy_has_no_catalog_words() -> None:
    shared = shared_tokenizer()
    with shared.use_catalog(("test", "private")):
        shared.add_word("桂花乌龙冰茶", 10_000)
    private = fresh_tokenizer()
    assert private.FREQ is not shared.FREQ
    assert "桂花乌龙冰茶" in cut(shared) and "桂花乌龙冰茶" not in cut(private)
    private.add_word("火山岩大米", 10_000)
    assert "火山岩大米" in cut(private) and "火山岩大米" not in cut(shared)


@pytest.mark.redis
async def test_a_server_whose_jobs_run_in_workers_builds_no_parser_or_tagger_at_start(database_url: str, redis_url: str) -> None:
    """With Redis the workers read the customers' messages (and warm up there); with in-process jobs the server does."""
    for redis, warms_up in ((redis_url, False), ("", True)):
        settings = make_settings(database_url=database_url, redis_url=redis)
        async with TestClient(TestServer(create_app(settings))) as client:
            rt = client.app[RUNTIME]
            for _ in range(300):  # the warm-ups run in the background: give them time to register
                if rt.has(PARSER_CACHE) and rt.has(TAGGER_CACHE):
                    break
                await asyncio.sleep(0.01)
            assert (rt.has(PARSER_CACHE), rt.has(TAGGER_CACHE)) == (warms_up, warms_up)
