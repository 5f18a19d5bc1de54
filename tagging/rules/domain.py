"""The tag rules' TOML text (stored as versions in the database; ``config/tag_rules.toml`` seeds the first): reading
and validating it. Pure: text in, rules or errors out.

A rule says which tag a customer earns from what they write::

    [defaults]                    # optional; every rule inherits these unless it sets its own
    group = "聊天标签"
    threshold = 1.0

    [[rules]]
    tag = "意向-高"                # the tag put on the customer (1–30 characters); the rule's id unless ``id`` is set
    group = "购买意向"              # its tag group (a local group, created when first needed)
    keywords = ["报价", "多少钱", "批发"]
    excluded = ["不买", "随便问问"]  # any of these vetoes the rule's keywords in its own clause
    patterns = ['(多少|几)钱一?(箱|件)']   # optional intent regexes, matched on the normalised text
    weight = 1.0                  # score per distinct keyword or pattern matched in one message
    threshold = 2.0               # the tag is applied when the (decayed) score reaches this …
    remove_threshold = 1.0        # … and removed when it has decayed below this
    half_life_days = 14           # the score halves every 14 days without new matches

    [rules.synonyms]              # words that count as one of the keywords (evidence shows what was said)
    "多少钱" = ["啥价", "什么价"]

Words are compared after NFKC and lower-casing, respecting jieba's token boundaries (the rules' words are not
forced into its dictionary): a word may not cut into a longer word (到货 in 到/货款); a word of two or more
characters may sit inside one token (批发 in 批发价); a one-character word matches only a whole token (漏 never
matches inside 遗漏). Clauses, exclusions and negation: :mod:`tagging.rules.matcher`.

Every problem is reported with the rule (its tag, or its position) and the field, in Chinese first.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from re import _constants as c
from re import _parser
from typing import Any

MAX_RULES = 5000
MAX_WORD_LEN = 20
MAX_PATTERN_LEN = 200
MAX_FILE_BYTES = 512 * 1024
RULE_FIELDS = frozenset(
    {
        "id",
        "tag",
        "group",
        "description",
        "keywords",
        "synonyms",
        "excluded",
        "patterns",
        "weight",
        "threshold",
        "remove_threshold",
        "half_life_days",
    }
)
DEFAULT_FIELDS = frozenset({"group", "weight", "threshold", "remove_threshold", "half_life_days"})
BUILTIN_DEFAULTS: dict[str, Any] = {"group": "聊天标签", "weight": 1.0, "threshold": 1.0, "remove_threshold": 0.5, "half_life_days": 30.0}


def normalize(text: str) -> str:
    """How both rules and messages are read before matching: NFKC (full-width → half-width) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


@dataclass(frozen=True)
class Rule:
    id: str  # stable key of the rule's scores (tag_scores.rule); defaults to the tag name
    tag: str
    group: str
    keywords: tuple[str, ...]
    synonyms: tuple[tuple[str, str], ...]  # (synonym, keyword it stands for)
    excluded: tuple[str, ...]
    patterns: tuple[str, ...]
    weight: float
    threshold: float
    remove_threshold: float
    half_life_days: float
    description: str = ""

    def words(self) -> tuple[str, ...]:
        """Every word the tokenizer must know for this rule (keywords, synonyms, excluded words)."""
        return (*self.keywords, *(s for s, _ in self.synonyms), *self.excluded)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    version: str  # sha256 of the file's text, first 16 hex digits ("" for no file)

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


EMPTY_RULES = RuleSet((), "")


@dataclass(frozen=True)
class Problem:
    rule: str  # the rule's tag (or "第 N 条规则"); "" for the file as a whole
    field: str  # the field at fault; "" when it is not about one field
    message: str

    def __str__(self) -> str:
        where = " · ".join(x for x in (f"规则“{self.rule}”" if self.rule else "", self.field) if x)
        return f"{where}: {self.message}" if where else self.message


class RulesFileError(ValueError):
    """The rules file cannot be used; ``problems`` lists every problem found, each naming its rule and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file. A missing file is an error here (callers decide what "no file" means)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RulesFileError([Problem("", "", f"找不到规则文件 (no such file): {path}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RulesFileError([Problem("", "", "规则文件不是 UTF-8 编码 (the file is not UTF-8)")]) from None
    return parse_rules(text)


# tomllib's messages (English, "Invalid value (at line 2, column 7)") as staff read them; the longest match wins.
_TOML_ERRORS_ZH: tuple[tuple[str, str], ...] = (
    ("Invalid value", '值无效（文字要加英文引号，如 "报价"；列表写成 ["词1", "词2"]）'),
    ("Expected '=' after a key", "键后面缺少“=”"),
    ("Expected ']]' at the end", "[[rules]] 缺少结尾的“]]”"),
    ("Expected ']' at the end", "表名缺少结尾的“]”"),
    ("Invalid statement", "这一行不是“键 = 值”、表名或注释"),
    ("Invalid initial character for a key", "键名有不允许的字符（含中文的键名要加英文引号）"),
    ("Unclosed array", "列表缺少结尾的“]”"),
    ("Unclosed inline table", "内联表缺少结尾的“}”"),
    ("Unterminated string", "字符串缺少结尾的引号"),
    ("Cannot declare", "同一个表声明了两次"),
    ("Cannot overwrite a value", "同一个键写了两次"),
    ("Duplicate inline table key", "同一个键写了两次"),
    ("Cannot redefine namespace", "同一个表声明了两次"),
    ("Cannot mutate immutable namespace", "不能给已写成内联表或列表的项再加键"),
    ("Illegal character '\\n'", "字符串缺少结尾的引号（引号要在同一行内闭合）"),
    ("Illegal character", "有不允许的字符"),
    ("Found invalid character", "有不允许的字符"),
    ("Unescaped", "字符串里的“\\”要写成“\\\\”，正则请用单引号 '…'"),
    ("Invalid date", "日期或时间无效"),
)
_TOML_WHERE = re.compile(r"\(at line (\d+), column (\d+)\)|\(at end of document\)")


def toml_error_zh(exc: tomllib.TOMLDecodeError) -> str:
    """A TOML syntax error in Chinese with its line and column (``TOML 语法错误：第 2 行第 7 列：值无效……``)."""
    text = str(exc)
    where = _TOML_WHERE.search(text)
    if where is None:
        place = ""
    elif where.group(1):
        place = f"第 {where.group(1)} 行第 {where.group(2)} 列："
    else:
        place = "文件末尾："
    reason = next((zh for en, zh in _TOML_ERRORS_ZH if text.startswith(en)), "格式不正确")
    return f"TOML 语法错误：{place}{reason}"


def parse_rules(text: str) -> RuleSet:
    """Validate the text of a rules file; every rule is checked, and all problems are raised together."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise RulesFileError([Problem("", "", f"规则文件过大，上限 {MAX_FILE_BYTES // 1024} KB (file too large)")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError([Problem("", "", toml_error_zh(exc))]) from None
    problems: list[Problem] = []
    for key in sorted(set(data) - {"defaults", "rules"}):
        problems.append(Problem("", key, "未知的顶层配置项，只允许 [defaults] 与 [[rules]] (unknown top-level key)"))
    defaults = dict(BUILTIN_DEFAULTS)
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        problems.append(Problem("", "defaults", "应为表 [defaults] (must be a table)"))
    else:
        for key in sorted(set(raw_defaults) - DEFAULT_FIELDS):
            problems.append(Problem("", f"defaults.{key}", "未知的默认项 (unknown default)"))
        defaults.update({k: v for k, v in raw_defaults.items() if k in DEFAULT_FIELDS})
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        problems.append(Problem("", "rules", "规则应写成 [[rules]] 表数组 (rules must be an array of tables)"))
        raw_rules = []
    if len(raw_rules) > MAX_RULES:
        problems.append(Problem("", "rules", f"规则过多，上限 {MAX_RULES} 条 (too many rules)"))
    rules: list[Rule] = []
    seen_ids: dict[str, str] = {}
    seen_tags: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(raw_rules, start=1):
        checker = _RuleChecker(raw, index, defaults)
        rule = checker.build()
        problems.extend(checker.problems)
        if rule is None:
            continue
        if rule.id in seen_ids:
            problems.append(Problem(checker.name, "id", f"与规则“{seen_ids[rule.id]}”的 id 重复 (duplicate id {rule.id!r})"))
        elif (rule.group, rule.tag) in seen_tags:
            other = seen_tags[(rule.group, rule.tag)]
            problems.append(Problem(checker.name, "tag", f"标签已由规则“{other}”使用，每个标签只能有一条规则 (tag already used)"))
        else:
            seen_ids[rule.id] = checker.name
            seen_tags[(rule.group, rule.tag)] = checker.name
            rules.append(rule)
    if problems:
        raise RulesFileError(problems)
    return RuleSet(tuple(rules), version_of(text))


class _RuleChecker:
    def __init__(self, raw: dict[str, Any], index: int, defaults: Mapping[str, Any]) -> None:
        self.raw = raw
        self.defaults = defaults
        tag = raw.get("tag")
        self.name = tag.strip() if isinstance(tag, str) and tag.strip() else f"第 {index} 条规则"
        self.problems: list[Problem] = []

    def err(self, field_name: str, message: str) -> None:
        self.problems.append(Problem(self.name, field_name, message))

    def build(self) -> Rule | None:
        for key in sorted(set(self.raw) - RULE_FIELDS):
            self.err(key, "未知的字段 (unknown field)；可用：" + "、".join(sorted(RULE_FIELDS)))
        tag = self.name_field("tag", required=True)
        group = self.name_field("group")
        rule_id = self.raw.get("id", tag)
        if not isinstance(rule_id, str) or not 0 < len(rule_id.strip()) <= 64:
            self.err("id", "应为 1 到 64 个字的文本 (must be text of 1–64 characters)")
            rule_id = tag
        description = self.raw.get("description", "")
        if not isinstance(description, str):
            self.err("description", "应为文本 (must be text)")
            description = ""
        keywords = self.words("keywords")
        excluded = self.words("excluded")
        synonyms = self.synonyms(keywords)
        patterns = self.patterns()
        if not keywords and not patterns and not any(p.field in ("keywords", "patterns") for p in self.problems):
            self.err("keywords", "至少需要一个关键词或意图模式 (needs at least one keyword or pattern)")
        for word in sorted(set(excluded) & (set(keywords) | {s for s, _ in synonyms})):
            self.err("excluded", f"“{word}”同时是关键词，会否决自己 (also a keyword: it would veto itself)")
        weight = self.number("weight", minimum=0.0, maximum=100.0)
        threshold = self.number("threshold", minimum=0.0, maximum=1e6)
        remove = self.number("remove_threshold", minimum=0.0, maximum=1e6, allow_zero=True)
        half_life = self.number("half_life_days", minimum=0.0, maximum=3650.0)
        if threshold is not None and remove is not None and remove > threshold:
            self.err("remove_threshold", f"不能大于 threshold（{remove:g} > {threshold:g}）(must not exceed threshold)")
        if self.problems or tag is None or group is None:
            return None
        assert weight is not None and threshold is not None and remove is not None and half_life is not None
        return Rule(
            id=str(rule_id).strip(),
            tag=tag,
            group=group,
            keywords=keywords,
            synonyms=synonyms,
            excluded=excluded,
            patterns=patterns,
            weight=weight,
            threshold=threshold,
            remove_threshold=remove,
            half_life_days=half_life,
            description=description.strip(),
        )

    def name_field(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw.get(key, None if required else self.defaults.get(key))
        if value is None:
            self.err(key, "缺少此字段 (required)")
            return None
        if not isinstance(value, str) or not 0 < len(value.strip()) <= 30:
            self.err(key, "应为 1 到 30 个字的文本 (must be text of 1–30 characters)")
            return None
        return value.strip()

    def word(self, key: str, value: object) -> str | None:
        if not isinstance(value, str):
            self.err(key, f"{value!r} 不是文本 (not text)")
            return None
        word = normalize(value).strip()
        if not word:
            self.err(key, "不能有空词 (empty word)")
        elif len(word) > MAX_WORD_LEN:
            self.err(key, f"“{word}”过长，上限 {MAX_WORD_LEN} 个字 (word too long)")
        elif any(ch.isspace() for ch in word):
            self.err(key, f"“{word}”含有空格：分词结果不会含空格，请拆成两个词 (words cannot contain spaces)")
        else:
            return word
        return None

    def words(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            self.err(key, '应为文本列表，如 ["报价", "多少钱"] (must be a list of text)')
            return ()
        out: list[str] = []
        for item in value:
            word = self.word(key, item)
            if word is not None and word not in out:
                out.append(word)
        return tuple(out)

    def synonyms(self, keywords: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        value = self.raw.get("synonyms", {})
        if not isinstance(value, dict):
            self.err("synonyms", '应为表，如 synonyms = { "多少钱" = ["啥价"] } (must be a table keyword → list)')
            return ()
        out: dict[str, str] = {}
        for raw_key, items in value.items():
            keyword = normalize(raw_key).strip()
            if keyword not in keywords:
                self.err(f"synonyms.{raw_key}", "不是本规则的关键词，请先加入 keywords (not one of this rule's keywords)")
                continue
            if not isinstance(items, list):
                self.err(f"synonyms.{raw_key}", "应为文本列表 (must be a list of text)")
                continue
            for item in items:
                word = self.word(f"synonyms.{raw_key}", item)
                if word is None:
                    continue
                if word in keywords:
                    self.err(f"synonyms.{raw_key}", f"“{word}”已是关键词 (already a keyword)")
                elif out.get(word, keyword) != keyword:
                    self.err(f"synonyms.{raw_key}", f"“{word}”已是“{out[word]}”的同义词 (already a synonym of another keyword)")
                else:
                    out[word] = keyword
        return tuple(out.items())

    def patterns(self) -> tuple[str, ...]:
        value = self.raw.get("patterns", [])
        if not isinstance(value, list):
            self.err("patterns", "应为正则表达式列表 (must be a list of regular expressions)")
            return ()
        out: list[str] = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.err("patterns", f"{item!r} 不是非空文本 (not a non-empty text)")
                continue
            if len(item) > MAX_PATTERN_LEN:
                self.err("patterns", f"模式过长，上限 {MAX_PATTERN_LEN} 个字符 (pattern too long)")
                continue
            problem = pattern_problem(item)
            if problem:
                self.err("patterns", f"/{item}/ {problem}")
            elif item not in out:
                out.append(item)
        return tuple(out)

    def number(self, key: str, *, minimum: float, maximum: float, allow_zero: bool = False) -> float | None:
        value = self.raw.get(key, self.defaults.get(key))
        where = key if key in self.raw else f"defaults.{key}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.err(where, f"{value!r} 不是数字 (not a number)")
            return None
        low_ok = value >= minimum if allow_zero else value > minimum
        if not low_ok or value > maximum:
            bound = f"≥ {minimum:g}" if allow_zero else f"> {minimum:g}"
            self.err(where, f"{value:g} 超出范围，应 {bound} 且 ≤ {maximum:g} (out of range)")
            return None
        return float(value)


# ---- intent patterns ---------------------------------------------------------------------------------------
def compile_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def pattern_problem(pattern: str) -> str:
    """Why a pattern cannot be used ("" when it can): it must compile, must not match empty text, and must
    contain fixed text (a literal any match includes) so it is looked up by that text rather than run on every
    message."""
    try:
        compiled = compile_pattern(pattern)
    except re.error as exc:
        where = f"（第 {exc.pos + 1} 个字符处）" if exc.pos is not None else ""
        return f"不是有效的正则表达式{where}：{exc.msg} (invalid regex)"
    if compiled.search("") is not None:
        return "会匹配空文本，请写出必须出现的字 (matches empty text)"
    if not required_literals(pattern):
        return "需包含必须出现的固定文字，如 (多少|几)钱 中的“钱” (needs fixed text every match contains)"
    return ""


@dataclass(frozen=True)
class _Gate:
    literals: frozenset[str] = field(default_factory=frozenset)

    def rank(self) -> tuple[int, int]:
        return (min(len(x) for x in self.literals), -len(self.literals))


def required_literals(pattern: str) -> frozenset[str]:
    """A set of texts of which every match of ``pattern`` contains at least one (lower-cased), or an empty set
    when none can be found. ``(多少|几)钱一?(箱|件)`` → {"钱"}; ``(什么时候|几时)到`` → {"到"}."""

    try:
        parsed = _parser.parse(pattern, re.IGNORECASE)
    except re.error:
        return frozenset()

    def best(items: Any) -> _Gate | None:
        candidates: list[_Gate] = []
        run: list[str] = []

        def close_run() -> None:
            if run:
                candidates.append(_Gate(frozenset({normalize("".join(run))})))
                run.clear()

        for op, arg in items:
            if op is c.LITERAL:
                run.append(chr(arg))
                continue
            close_run()
            gate: _Gate | None = None
            if op is c.SUBPATTERN:
                gate = best(arg[-1])
            elif op is c.BRANCH:
                alternatives = [best(alt) for alt in arg[1]]
                if alternatives and all(a is not None for a in alternatives):
                    gate = _Gate(frozenset().union(*(a.literals for a in alternatives if a is not None)))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and arg[0] >= 1:
                gate = best(arg[2])
            elif op is c.IN and 0 < len(arg) <= 16 and all(o is c.LITERAL for o, _ in arg):
                gate = _Gate(frozenset(normalize(chr(v)) for _, v in arg))
            elif op is c.ATOMIC_GROUP:
                gate = best(arg)
            if gate is not None and gate.literals and all(gate.literals):
                candidates.append(gate)
        close_run()
        return max(candidates, key=_Gate.rank) if candidates else None

    found = best(parsed)
    return found.literals if found is not None else frozenset()
