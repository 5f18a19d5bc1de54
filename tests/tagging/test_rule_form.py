"""The rules as a form (pure): the sample rules survive form → TOML → rules unchanged, posted fields are read as a
browser sends them (blank and deleted rules left out), and every problem lands on its rule and field."""

from __future__ import annotations

import tomllib
from dataclasses import replace

from tagging.rules.domain import load_rules, parse_rules
from tagging.rules.engine import RULES_FILE
from tagging.rules.form import RuleForm, check_forms, forms_of, leading_comments, new_rule, read_forms, to_toml


def test_the_sample_rules_round_trip_through_the_form() -> None:
    rules = load_rules(RULES_FILE)
    text, problems = to_toml(forms_of(rules), header=leading_comments(RULES_FILE.read_text(encoding="utf-8")))
    assert problems == [] and parse_rules(text).rules == rules.rules
    assert text.startswith("# 聊天标签规则 · chat tagging rules") and "half_life_days = 14\n" in text
    assert "patterns = ['(多少|几)钱一?(箱|件|瓶|提|袋|桶|包)'" in text  # regexes as TOML literal strings


def test_posted_fields_are_read_without_blank_and_deleted_rules() -> None:
    posted = {
        "rules": "3",
        "r0.tag": "要发票",
        "r0.keywords": "发票，开票 专票",
        "r0.synonyms": "发票 = 普票、电子发票\r\n",
        "r0.weight": "1",
        "r1.tag": "比价",
        "r1.keywords": "别家",
        "r1.delete": "1",
        **{f"r2.{k}": v for k, v in vars(new_rule()).items()},  # the empty rule offered, numbers pre-filled
    }
    [rule] = read_forms(posted)
    assert rule.tag == "要发票" and rule.synonyms == "发票 = 普票、电子发票\n"
    text, problems = to_toml([rule])
    assert problems == []
    parsed = tomllib.loads(text)["rules"][0]
    assert parsed["keywords"] == ["发票", "开票", "专票"] and parsed["synonyms"] == {"发票": ["普票", "电子发票"]}
    assert read_forms({"rules": "x"}) == [] and read_forms({"rules": "999999"}) == []


def test_problems_land_on_their_rule_and_field() -> None:
    forms = [
        RuleForm(tag="投诉", keywords="坏了", threshold="高", synonyms="坏了 烂了"),
        RuleForm(keywords="", patterns="(坏"),
        RuleForm(tag="投诉", keywords="漏", weight="x"),  # the same tag as the first: placed by position, not by tag
    ]
    checked = check_forms(forms)
    assert not checked.ok and checked.general == []
    assert set(checked.placed[0]) == {"threshold", "synonyms"} and "不是数字" in checked.placed[0]["threshold"]
    assert "第 1 行应写成“关键词 = 同义词、同义词”" in checked.placed[0]["synonyms"]
    assert set(checked.placed[1]) == {"tag", "patterns"}  # no hidden id problem for a rule without a tag
    assert set(checked.placed[2]) == {"weight"}
    assert [(p.rule, p.field) for p in checked.problems] == [
        ("投诉", "synonyms"), ("投诉", "threshold"), ("第 2 条规则", "tag"), ("第 2 条规则", "patterns"), ("投诉", "weight"),
    ]  # fmt: skip
    # Between rules: a tag used twice is put on the later rule once each rule is fine on its own.
    twice = check_forms([RuleForm(tag="投诉", keywords="坏了"), RuleForm(tag="投诉", keywords="漏")])
    assert set(twice.placed) == {1} and "每个标签只能有一条规则" in twice.placed[1]["tag"]
    assert check_forms([]).general[0].message == "至少需要一条规则 (no rules)"
    # A number typed with stray spaces is a number; one that is not stays a string, so the validator names it.
    text, _ = to_toml([replace(forms[2], weight=" 1.5 ", threshold="inf")])
    assert "weight = 1.5\n" in text and 'threshold = "inf"' in text
    ok = check_forms([RuleForm(tag="要发票", keywords="发票")], header="# 我的规则")
    assert ok.ok and ok.text.startswith("# 我的规则\n") and parse_rules(ok.text).rules[0].threshold == 1.0
