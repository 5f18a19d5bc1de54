"""The rules file: the sample validates; every mistake is reported with its rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagging.rules.domain import RulesFileError, load_rules, parse_rules, pattern_problem, required_literals
from tagging.rules.engine import RULES_FILE


def problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(RulesFileError) as info:
        parse_rules(text)
    return [(p.rule, p.field, p.message) for p in info.value.problems]


def test_the_sample_rules_file_is_valid_and_covers_the_shop() -> None:
    rules = load_rules(RULES_FILE)
    tags = {r.tag: r for r in rules.rules}
    assert {"意向-高", "投诉", "复购", "催单", "价格敏感", "大客户"} <= set(tags)
    intent = tags["意向-高"]
    assert {"报价", "多少钱", "批发", "价格表", "能便宜吗"} <= set(intent.keywords)
    assert ("啥价", "多少钱") in intent.synonyms
    assert intent.group == "购买意向" and intent.threshold == 2.0 and intent.half_life_days == 14
    assert "不要投诉" in tags["投诉"].excluded
    assert tags["大客户"].patterns and tags["催单"].patterns
    assert len(rules.version) == 16


def test_defaults_are_inherited_and_ids_default_to_the_tag() -> None:
    rules = parse_rules(
        """
[defaults]
group = "聊天"
threshold = 3
half_life_days = 7

[[rules]]
tag = "复购"
keywords = ["再来", "老样子", "再来"]

[[rules]]
id = "vip-2026"
tag = "VIP"
group = "客户等级"
keywords = ["ＶＩＰ会员"]
threshold = 1
"""
    )
    first, second = rules.rules
    assert (first.id, first.group, first.threshold, first.half_life_days, first.weight) == ("复购", "聊天", 3.0, 7.0, 1.0)
    assert first.keywords == ("再来", "老样子")  # duplicates dropped
    assert (second.id, second.group, second.threshold) == ("vip-2026", "客户等级", 1.0)
    assert second.keywords == ("vip会员",)  # NFKC + lower case, as messages are read
    assert parse_rules("").rules == ()


def test_each_mistake_names_the_rule_and_the_field() -> None:
    found = problems(
        """
[[rules]]
tag = "意向-高"
keyword = ["报价"]
keywords = ["报价", 3, "价 格"]
excluded = ["报价"]
patterns = ["(多少", "\\\\d+", ".*"]
weight = true
threshold = 1
remove_threshold = 2

[rules.synonyms]
"批发" = ["批发价"]

[[rules]]
group = "x"
keywords = []
half_life_days = -1
"""
    )

    def messages(rule: str, fld: str) -> str:
        return " | ".join(m for r, f, m in found if (r, f) == (rule, fld))

    assert "未知的字段" in messages("意向-高", "keyword")
    assert "3 不是文本" in messages("意向-高", "keywords") and "含有空格" in messages("意向-高", "keywords")
    assert "会否决自己" in messages("意向-高", "excluded")
    patterns = messages("意向-高", "patterns")
    assert "/(多少/ 不是有效的正则表达式" in patterns
    assert "需包含必须出现的固定文字" in patterns and "会匹配空文本" in patterns
    assert "不是数字" in messages("意向-高", "weight")
    assert "不能大于 threshold" in messages("意向-高", "remove_threshold")
    assert "不是本规则的关键词" in messages("意向-高", "synonyms.批发")
    assert "缺少此字段" in messages("第 2 条规则", "tag")
    assert "至少需要一个关键词或意图模式" in messages("第 2 条规则", "keywords")
    assert "超出范围" in messages("第 2 条规则", "half_life_days")


def test_problems_read_well_as_text() -> None:
    with pytest.raises(RulesFileError) as info:
        parse_rules('[[rules]]\ntag = "投诉"\nkeywords = ["投诉"]\nweight = 0\n')
    assert str(info.value) == "规则“投诉” · weight: 0 超出范围，应 > 0 且 ≤ 100 (out of range)"


def test_duplicates_syntax_and_top_level_errors() -> None:
    found = problems('[[rules]]\ntag = "投诉"\nkeywords = ["坏了"]\n[[rules]]\ntag = "投诉"\nkeywords = ["漏"]\n')
    assert found[0][:2] == ("投诉", "id") and "重复" in found[0][2]
    found = problems('[[rules]]\nid = "a"\ntag = "投诉"\nkeywords = ["坏了"]\n[[rules]]\nid = "b"\ntag = "投诉"\nkeywords = ["漏"]\n')
    assert found[0][:2] == ("投诉", "tag") and "每个标签只能有一条规则" in found[0][2]
    syntax = problems('[[rules]]\ntag = "投诉\nkeywords = []\n')
    unclosed = "TOML 语法错误：第 2 行第 10 列：字符串缺少结尾的引号（引号要在同一行内闭合）"
    assert len(syntax) == 1 and syntax[0][:2] == ("", "") and syntax[0][2] == unclosed
    bare_word = problems("[defaults]\nweight = abc\n")
    unquoted = 'TOML 语法错误：第 2 行第 10 列：值无效（文字要加英文引号，如 "报价"；列表写成 ["词1", "词2"]）'
    assert bare_word == [("", "", unquoted)]
    assert problems('rule = 1\n[[rules]]\ntag = "a"\nkeywords = ["b"]\n')[0][:2] == ("", "rule")
    assert problems("[defaults]\nthreshhold = 2\n")[0][:2] == ("", "defaults.threshhold")
    assert "表数组" in problems('rules = "x"\n')[0][2]
    assert "超出范围" in problems('[defaults]\nthreshold = 0\n[[rules]]\ntag = "a"\nkeywords = ["b"]\n')[0][2]


def test_load_rules_reports_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="找不到规则文件"):
        load_rules(tmp_path / "nope.toml")
    bad = tmp_path / "gbk.toml"
    bad.write_bytes('[[rules]]\ntag = "投诉"\nkeywords = ["坏了"]\n'.encode("gbk"))
    with pytest.raises(RulesFileError, match="UTF-8"):
        load_rules(bad)


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("(多少|几)钱一?(箱|件|瓶)", {"钱"}),
        ("(什么时候|啥时候|几时)(能)?(到|发货)", {"什么时候", "啥时候", "几时"}),
        (r"([一二三四五六七八九]百|[1-9]\d{2,})\s*(箱|件)", {"箱", "件"}),
        ("(怎么|咋)还没(到|发)", {"还没"}),
        ("VIP会员", {"vip会员"}),
        (r"\d+", set()),
        ("(a|.)b?", set()),
    ],
)
def test_required_literals(pattern: str, literals: set[str]) -> None:
    assert required_literals(pattern) == literals
    assert (pattern_problem(pattern) == "") == bool(literals)
