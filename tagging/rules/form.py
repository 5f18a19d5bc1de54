"""The rules as a form: one set of text fields per rule, to and from the TOML the versions store. Pure.

The console's editor shows each rule as fields a marketer can fill without knowing TOML — words separated by 、 or
commas, one synonym line per keyword (``多少钱 = 啥价、几多钱``), one pattern per line, numbers as typed. Saving
renders the fields as TOML (every value explicit, no ``[defaults]``) and validates it with
:func:`tagging.rules.domain.parse_rules`, so the form and a TOML import are checked by the same code; each
problem is then put back next to its rule and field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from tagging.rules.domain import MAX_RULES, Problem, Rule, RuleSet, RulesFileError, parse_rules

WORD_SPLIT = re.compile(r"[、,，;；\s]+")
NUMBER_FIELDS = ("weight", "threshold", "remove_threshold", "half_life_days")
FIELD_NAMES = ("id", "tag", "group", "description", "keywords", "synonyms", "excluded", "patterns", *NUMBER_FIELDS)


@dataclass(frozen=True)
class RuleForm:
    """One rule as typed (every field a string). ``id`` is kept only when it differs from the tag."""

    id: str = ""
    tag: str = ""
    group: str = ""
    description: str = ""
    keywords: str = ""  # 报价、多少钱、批发
    synonyms: str = ""  # one line per keyword: 多少钱 = 啥价、几多钱
    excluded: str = ""
    patterns: str = ""  # one per line
    weight: str = ""
    threshold: str = ""
    remove_threshold: str = ""
    half_life_days: str = ""

    def blank(self) -> bool:
        """Nothing typed but (perhaps) the numbers: the empty rule the editor offers is not a rule."""
        return not any(getattr(self, f.name).strip() for f in fields(self) if f.name not in NUMBER_FIELDS)


def _num(value: float, *, whole: bool = False) -> str:
    """A number as the sample file writes it: weights and thresholds as 1.0, 2.5; days as 14."""
    if value.is_integer():
        return str(int(value)) if whole else f"{value:.1f}"
    return f"{value:g}"


TOML_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?")  # written as typed, so a save changes only what was changed


def form_of(rule: Rule) -> RuleForm:
    """The fields of a rule in force."""
    by_keyword: dict[str, list[str]] = {}
    for synonym, keyword in rule.synonyms:
        by_keyword.setdefault(keyword, []).append(synonym)
    return RuleForm(
        id=rule.id if rule.id != rule.tag else "",
        tag=rule.tag,
        group=rule.group,
        description=rule.description,
        keywords="、".join(rule.keywords),
        synonyms="\n".join(f"{k} = {'、'.join(v)}" for k, v in by_keyword.items()),
        excluded="、".join(rule.excluded),
        patterns="\n".join(rule.patterns),
        weight=_num(rule.weight),
        threshold=_num(rule.threshold),
        remove_threshold=_num(rule.remove_threshold),
        half_life_days=_num(rule.half_life_days, whole=True),
    )


def forms_of(rules: RuleSet) -> list[RuleForm]:
    return [form_of(r) for r in rules.rules]


def read_forms(form: Mapping[str, str]) -> list[RuleForm]:
    """The rules posted as ``r<i>.<field>`` (``rules`` = how many), without blank ones and those ticked ``r<i>.delete``."""
    raw = form.get("rules", "0")
    count = min(int(raw), MAX_RULES + 1) if raw.isdecimal() else 0
    out: list[RuleForm] = []
    for i in range(count):
        if form.get(f"r{i}.delete"):
            continue
        rule = RuleForm(**{name: form.get(f"r{i}.{name}", "").replace("\r\n", "\n") for name in FIELD_NAMES})
        if not rule.blank():
            out.append(rule)
    return out


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _pattern(text: str) -> str:
    """A regex as a TOML literal string ('…', no escapes to double) when it can be one."""
    if "'" in text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return _q(text)
    return f"'{text}'"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def leading_comments(text: str) -> str:
    """The comment block at the top of a rules text (kept when the form saves a new version over it)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def _words(text: str) -> list[str]:
    return [w for w in WORD_SPLIT.split(text.strip()) if w]


def _label(rule: RuleForm, index: int) -> str:
    return rule.tag.strip() or f"第 {index} 条规则"


def to_toml(forms: list[RuleForm], *, header: str = "") -> tuple[str, list[Problem]]:
    """The TOML text of the rules, and the problems only the form can have (a synonym line without ``=``). Numbers
    that are not numbers are written as strings, so :func:`parse_rules` reports them on their field. ``header``
    (comment lines) goes on top, so the explanations of the file a version came from survive a save."""
    problems: list[Problem] = []
    blocks: list[str] = [header.strip() or "# 标签规则（由控制台表单保存）"]
    for index, rule in enumerate(forms, start=1):
        lines = ["", "[[rules]]"]
        if rule.id.strip():
            lines.append(f"id = {_q(rule.id.strip())}")
        lines.append(f"tag = {_q(rule.tag.strip())}")
        if rule.group.strip():
            lines.append(f"group = {_q(rule.group.strip())}")
        if rule.description.strip():
            lines.append(f"description = {_q(rule.description.strip())}")
        lines.append(f"keywords = [{', '.join(_q(w) for w in _words(rule.keywords))}]")
        if excluded := _words(rule.excluded):
            lines.append(f"excluded = [{', '.join(_q(w) for w in excluded)}]")
        if patterns := [p.strip() for p in rule.patterns.splitlines() if p.strip()]:
            lines.append(f"patterns = [{', '.join(_pattern(p) for p in patterns)}]")
        for name in NUMBER_FIELDS:
            value = getattr(rule, name).strip()
            if not value:
                continue
            if TOML_NUMBER.fullmatch(value):
                lines.append(f"{name} = {value}")
                continue
            try:
                number = float(value)
            except ValueError:
                lines.append(f"{name} = {_q(value)}")
            else:
                finite = number == number and abs(number) != float("inf")
                lines.append(f"{name} = {_number(number)}" if finite else f"{name} = {_q(value)}")
        synonyms: list[str] = []
        for n, line in enumerate(rule.synonyms.splitlines(), start=1):
            if not line.strip():
                continue
            keyword, sep, words = line.partition("=")
            if not sep or not keyword.strip() or not _words(words):
                problems.append(Problem(_label(rule, index), "synonyms", f"第 {n} 行应写成“关键词 = 同义词、同义词” (keyword = synonyms)"))
                continue
            synonyms.append(f"{_q(keyword.strip())} = [{', '.join(_q(w) for w in _words(words))}]")
        if synonyms:
            lines += ["", "[rules.synonyms]", *synonyms]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n", problems


def _field(problem: Problem) -> str:
    name = re.match(r"[a-z_]+", problem.field)
    return name.group(0) if name and name.group(0) in FIELD_NAMES else ""


@dataclass(frozen=True)
class FormCheck:
    """The form checked: its TOML, each problem on its rule (by position) and field, and those on no field."""

    text: str
    placed: dict[int, dict[str, str]]  # rule index → field → message(s)
    general: list[Problem]  # about no field of a rule (or the rules as a whole)
    problems: list[Problem]  # all of them, each naming its rule and field, in order

    @property
    def ok(self) -> bool:
        return not self.problems


def check_forms(forms: list[RuleForm], *, header: str = "") -> FormCheck:
    """Render the rules as TOML and validate them with :func:`parse_rules`. Each rule is checked on its own first, so
    a problem lands on the rule it is about by position (two rules may carry the same tag); problems between rules
    (a tag or id used twice) are checked on the whole and put on the later rule."""
    text, _ = to_toml(forms, header=header)
    placed: dict[int, dict[str, str]] = {}
    general: list[Problem] = []
    problems: list[Problem] = []

    def put(index: int, problem: Problem) -> None:
        if _field(problem) == "id" and not forms[index].id.strip():
            return  # the id is the tag here: the tag's own problem says it
        named = Problem(_label(forms[index], index + 1), problem.field, problem.message)
        problems.append(named)
        field = _field(problem)
        if not field:
            general.append(named)
            return
        slot = placed.setdefault(index, {})
        slot[field] = f"{slot[field]}；{problem.message}" if field in slot else problem.message

    for i, rule in enumerate(forms):
        own_text, own = to_toml([rule])
        try:
            parse_rules(own_text)
        except RulesFileError as exc:
            own = own + exc.problems
        for problem in own:
            put(i, problem)
    if not forms:
        problems.append(Problem("", "", "至少需要一条规则 (no rules)"))
        general.append(problems[-1])
    if not problems:
        try:
            parse_rules(text)
        except RulesFileError as exc:
            last = {_label(rule, i + 1): i for i, rule in enumerate(forms)}
            for problem in exc.problems:
                if problem.rule in last:
                    i = last[problem.rule]
                    if _field(problem) == "id" and not forms[i].id.strip():  # the id is the tag: a tag used twice
                        problem = Problem(problem.rule, "tag", "与另一条规则的标签重复，每个标签只能有一条规则 (duplicate tag)")
                    put(i, problem)
                else:
                    problems.append(problem)
                    general.append(problem)
    return FormCheck(text, placed, general, problems)


def new_rule() -> RuleForm:
    """The blank rule the editor offers to fill (defaults as the sample file's)."""
    return replace(RuleForm(), weight="1.0", threshold="1.0", remove_threshold="0.5", half_life_days="30")
