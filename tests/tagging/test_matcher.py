"""Rule matching on real Chinese chat lines with the sample rules: words, synonyms, excluded words, intent
patterns, evidence — and an index whose work per message does not grow with the number of rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrm.core.tokenizer import fresh_tokenizer
from tagging.rules.domain import load_rules, normalize, parse_rules
from tagging.rules.engine import RULES_FILE, build_matcher
from tagging.rules.matcher import _HAN_BLOCK, Matcher, MessageReading, RuleMatch, cut_block

CATALOG_WORDS = ("矿泉水", "农夫山泉", "可乐", "可口可乐", "抽纸", "纸巾", "大米", "东北大米", "花生油")


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return build_matcher(load_rules(RULES_FILE), CATALOG_WORDS)


def by_tag(matches: list[RuleMatch]) -> dict[str, RuleMatch]:
    return {m.rule.tag: m for m in matches}


def test_price_inquiry_is_high_intent_with_its_words(matcher: Matcher) -> None:
    found = by_tag(matcher.match("老板，矿泉水批发价多少钱？给个价格表"))
    assert set(found) == {"意向-高"}
    m = found["意向-高"]
    assert m.words == ("批发", "多少钱", "价格表")  # 批发 inside the token 批发价; in the order written
    assert m.hits == ("批发", "多少钱", "价格表") and m.score == 3.0


def test_an_excluded_word_vetoes_the_rule(matcher: Matcher) -> None:
    assert matcher.match("不要投诉，就是问问") == []
    assert set(by_tag(matcher.match("再投诉一次，箱子又坏了"))) == {"投诉"}
    # Vetoes are per rule: 不买 stops 意向-高, not 价格敏感.
    assert set(by_tag(matcher.match("太贵了，不买了，多少钱都不买"))) == {"价格敏感"}


def test_synonyms_count_as_their_keyword_and_show_what_was_said(matcher: Matcher) -> None:
    m = by_tag(matcher.match("啥价？"))["意向-高"]
    assert m.words == ("啥价",) and m.hits == ("多少钱",)
    m = by_tag(matcher.match("上次的可乐碎了两瓶，我要退款"))["投诉"]
    assert m.words == ("碎了", "退款") and m.hits == ("坏了", "退货") and m.score == 4.0  # weight 2 × 2 keywords
    # A keyword and its synonym in one message are one hit.
    assert by_tag(matcher.match("快点，尽快发货"))["催单"].hits == ("快点",)


def test_intent_patterns(matcher: Matcher) -> None:
    m = by_tag(matcher.match("可乐多少钱一箱"))["意向-高"]
    assert m.words == ("多少钱", "多少钱一箱") and m.score == 2.0
    assert by_tag(matcher.match("送来的货少了3箱"))["投诉"].words == ("少了3箱",)
    assert by_tag(matcher.match("这次跟上次一样来5箱"))["复购"].words == ("跟上次一样",)
    big = by_tag(matcher.match("我们公司采购两百箱可乐"))["大客户"]
    assert big.words == ("公司采购", "两百箱") and big.score == 3.0  # weight 1.5 × (keyword + pattern)
    assert set(by_tag(matcher.match("啥时候能发货？"))) == {"催单"}


def test_whole_words_only_for_one_character_keywords(matcher: Matcher) -> None:
    assert by_tag(matcher.match("上次那箱水漏了"))["投诉"].words == ("漏",)
    assert matcher.match("遗漏了一个地址") == []  # 漏 inside 遗漏 is not a leak
    assert matcher.match("我还要求开个收据") == []  # 还要 is not cut out of 还要求


def test_matching_is_by_words_not_substrings(matcher: Matcher) -> None:
    # 老样子 is a keyword of 复购; 样子 alone is not.
    assert matcher.match("这个样子挺好看") == []
    assert "复购" in by_tag(matcher.match("老样子，再来十箱矿泉水"))
    # Full-width and upper-case text is read like the rules: NFKC + lower case.
    assert "比价" in by_tag(matcher.match("拼多多上才卖３０，別家便宜多了".replace("別", "别")))


def test_several_rules_in_one_message_in_rule_order(matcher: Matcher) -> None:
    found = matcher.match("我们公司采购一百箱，批量有优惠吗")
    assert [m.rule.tag for m in found] == ["大客户", "价格敏感"]
    assert found[0].words == ("公司采购", "一百箱", "批量") and found[1].words == ("优惠",)


def test_cost_does_not_grow_with_the_number_of_rules() -> None:
    sample = load_rules(RULES_FILE)
    extra = []
    for i in range(1000):
        extra.append(f'[[rules]]\nid = "gen-{i}"\ntag = "生成{i}"\nkeywords = ["词{i}甲", "词{i}乙"]\npatterns = ["编号{i}号"]\n')
    big = parse_rules("\n".join(extra))
    small_m = build_matcher(sample, CATALOG_WORDS)
    big_m = Matcher(sample.rules + big.rules, fresh_tokenizer(), extra_words=CATALOG_WORDS)
    text = "老板，矿泉水批发价多少钱？给个价格表，什么时候能到"
    # The same matches, and the same patterns looked at: the 1,000 extra ones are never tried on this line.
    assert [(m.rule.id, m.words) for m in big_m.match(text)] == [(m.rule.id, m.words) for m in small_m.match(text)]
    norm = text.lower()
    assert big_m.pattern_candidates(norm) == small_m.pattern_candidates(norm)
    assert len(big_m.rules) == len(sample.rules) + 1000
    assert [m.rule.id for m in big_m.match("请查一下编号417号和词99乙")] == ["gen-99", "gen-417"]


def test_tokens_are_jiebas_reading_plus_catalog_words_not_the_rules_wish(matcher: Matcher) -> None:
    # The rules' words are not forced into the dictionary (a keyword would carve itself out of a longer word);
    # the keyword 便宜点 still matches across the tokens 便宜 + 点, whose outer boundaries it respects.
    assert matcher.tokens("太贵了，能便宜点吗") == ["太贵", "了", ",", "能", "便宜", "点", "吗"]
    assert by_tag(matcher.match("太贵了，能便宜点吗"))["价格敏感"].words == ("太贵", "便宜点")
    assert "农夫山泉" in matcher.tokens("农夫山泉还有货吗")


def reasons(matcher: Matcher, text: str, tag: str) -> list[str]:
    return next(m for m in matcher.explain(text) if m.rule.tag == tag).reasons()


def test_an_excluded_word_vetoes_only_its_own_clause(matcher: Matcher) -> None:
    # Before: 不要投诉 anywhere vetoed 投诉 for the whole message, losing "箱子又坏了".
    m = by_tag(matcher.match("不要投诉，箱子又坏了"))["投诉"]
    assert m.words == ("坏了",) and m.score == 2.0
    assert m.reasons() == ["“投诉”所在分句有排除词“不要投诉”，不计", "“坏了”命中"]
    m = by_tag(matcher.match("不用退，补给我"))["投诉"]  # 不用退 is excluded; 补给我 (补发) is the second signal
    assert m.words == ("补给我",) and m.hits == ("补发",)
    assert matcher.match("不用退，没事") == []


def test_general_negators_before_the_keyword_in_its_clause(matcher: Matcher) -> None:
    assert matcher.match("价钱无所谓，不讲价") == []
    assert reasons(matcher, "价钱无所谓，不讲价", "价格敏感") == ["“讲价”被“不”否定，不计"]
    assert matcher.match("没嫌贵啊") == [] and reasons(matcher, "没嫌贵啊", "价格敏感") == ["“嫌贵”被“没”否定，不计"]
    assert matcher.match("别催了，不用快点") == []
    # Negation reaches its own clause only, and an A-not-A question is not a negation.
    assert by_tag(matcher.match("我不知道多少钱，报个价"))["意向-高"].words == ("报个价",)
    assert by_tag(matcher.match("能不能便宜点"))["价格敏感"].words == ("便宜点",)
    assert by_tag(matcher.match("要不要优惠券"))["价格敏感"].words == ("优惠券",)
    # 不 inside a word (不错) is not a negator token.
    assert by_tag(matcher.match("东西不错就是太贵了"))["价格敏感"].words == ("太贵",)


def test_a_resolved_or_past_complaint_does_not_tag_again(matcher: Matcher) -> None:
    assert matcher.match("上次投诉的问题已经解决了") == []
    assert reasons(matcher, "上次投诉的问题已经解决了", "投诉") == ["“投诉”后面有“解决了”（已解决），不计"]
    assert matcher.match("上次漏水的问题已经处理好了，谢谢") == []
    assert matcher.match("不会再投诉了") == []
    # A resolution in another clause does not cancel a new complaint, and a bare past is an escalation, not a negation.
    assert by_tag(matcher.match("上次的问题解决了，这次又漏水了"))["投诉"].words == ("漏水",)
    assert by_tag(matcher.match("我投诉过你们三次了还不处理"))["投诉"].words == ("投诉",)


def test_a_keyword_must_not_cut_into_a_longer_word() -> None:
    rules = parse_rules('[[rules]]\ntag = "到货提醒"\nkeywords = ["到货", "货款"]\n[[rules]]\ntag = "收款"\nkeywords = ["款"]\n')
    m = build_matcher(rules)
    explained = m.explain("到货款了吗")
    assert m.match("到货款了吗") == [m for m in explained if m.hits]
    assert [(e.rule.tag, e.words, e.reasons()) for e in explained] == [
        ("到货提醒", ("货款",), ["“到货”在词“货款”之内，不计", "“货款”命中"]),
        ("收款", (), ["“款”在词“货款”之内，不计"]),
    ]
    assert by_tag(m.match("什么时候到货"))["到货提醒"].words == ("到货",)


def test_a_pattern_without_fixed_text_is_refused_even_when_built_by_hand() -> None:
    rules = parse_rules('[[rules]]\ntag = "x"\nkeywords = ["y"]\n')
    from dataclasses import replace

    with pytest.raises(ValueError, match="no fixed text"):
        Matcher([replace(rules.rules[0], patterns=(r"\d+",))], fresh_tokenizer())


# ---- the cut the matcher reads with: jieba's own, clause by clause, computed without jieba's generators -------------

_PIECES = (
    "投诉",
    "到货款",
    "不",
    "没有",
    "能不能",
    "批发价",
    "农夫山泉",
    "矿泉水",
    "可乐",
    "ab",
    "x",
    "3",
    "12箱",
    "iPhone",
    "%",
    "-",
    ".",
    "，",
    "。",
    "！",
    " ",
    "、",
    "\n",
    "😀",
    "的",
    "了",
    "吗",
    "快点",
    "坏了",
    "退货",
    "遗漏",
    "解决了",
    "什么",
    "价格表",
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(_PIECES), st.text(alphabet="一二三四五六七八九十天地人水山大小不没要买卖abcXYZ019", max_size=4)),
        max_size=14,
    )
)
def test_cut_block_is_jiebas_cut(matcher: Matcher, pieces: list[str]) -> None:
    """cut_block reproduces tokenizer.cut(HMM=False) on every block: the same DAG, the same route, letters glued."""
    text = "".join(pieces)
    tokenizer = matcher._tokenizer
    for block in _HAN_BLOCK.findall(text):
        assert cut_block(tokenizer, block) == list(tokenizer.cut(block, HMM=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=16))
def test_reading_clause_by_clause_equals_reading_the_whole_message(matcher: Matcher, pieces: list[str]) -> None:
    """The matcher cuts only the clauses it looks at; every position reads the same as with the whole cut."""
    text = normalize("".join(pieces))
    whole = MessageReading(text, matcher.tokens(text))
    lazy = MessageReading(text, cut=matcher._cut)
    for start in range(len(text)):
        for end in range(start + 1, min(len(text), start + 5) + 1):
            assert lazy.inside(start, end) == whole.inside(start, end), (text, start, end)
            if whole.clause_of(start) >= 0:
                assert lazy.negator(start, end) == whole.negator(start, end), (text, start, end)


def test_a_reading_takes_tokens_or_a_cut_not_both() -> None:
    with pytest.raises(TypeError):
        MessageReading("你好")
    with pytest.raises(TypeError):
        MessageReading("你好", ["你好"], cut=lambda s: [s])
