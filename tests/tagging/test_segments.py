"""The segment language: parse errors point at the column, hostile input stays data, counts equal a reference
evaluated here in plain Python, ids stream in flat memory, and saved segments."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scrm.core.errors import Conflict, NotFound
from scrm.core.runtime import Runtime
from scrm.crm.channels.models import channel_codes
from scrm.crm.customers.models import customers, follows
from scrm.crm.groups.models import group_members, groups
from scrm.crm.staff.models import salespeople
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import apply_tag, ensure_tag
from tagging.activity.models import customer_activity
from tagging.rfm.domain import SEGMENT_NAMES
from tagging.rfm.models import customer_order_stats, customer_rfm
from tagging.segments import services as seg
from tagging.segments.syntax import And, Cond, Not, Or, SegmentSyntaxError, parse
from tests.conftest import make_customer

DAY = dt.timedelta(days=1)


# ---- parsing ----------------------------------------------------------------------------------------------
def test_the_example_parses() -> None:
    node = parse('tag:意向-高 and rfm:重要价值客户 and not group:"VIP群" and last_active < 30d and channel:展会')
    assert node == And(
        (
            Cond("tag", ":", "意向-高", 1),
            Cond("rfm", ":", "重要价值客户", 14),
            Not(Cond("group", ":", "VIP群", 33)),
            Cond("last_active", "<", dt.timedelta(days=30), 50),
            Cond("channel", ":", "展会", 72),
        )
    )


def shape(node: Any) -> Any:
    """The tree without columns: (field, op, value), ("not", x), ("and", …), ("or", …)."""
    if isinstance(node, Cond):
        return (node.field, node.op, node.value)
    if isinstance(node, Not):
        return ("not", shape(node.item))
    return ("and" if isinstance(node, And) else "or", *(shape(n) for n in node.items))


def test_precedence_parentheses_and_aliases() -> None:
    a, b, c = ("tag", ":", "a"), ("tag", ":", "b"), ("tag", ":", "c")
    assert shape(parse("tag:a or tag:b and tag:c")) == ("or", a, ("and", b, c))
    assert shape(parse("(tag:a or tag:b) and tag:c")) == ("and", ("or", a, b), c)
    assert shape(parse("NOT not tag:a")) == ("not", ("not", a))
    # Chinese field names, keywords and punctuation
    text = "标签：意向-高 且 非 （群：“VIP群” 或 渠道:展会）"
    node = parse(text)
    assert shape(node) == ("and", ("tag", ":", "意向-高"), ("not", ("or", ("group", ":", "VIP群"), ("channel", ":", "展会"))))
    assert isinstance(node, And) and node.items[0].column == 1
    assert shape(parse("rfm:重要价值 AND activity:沉默 and activity:churn_risk")) == (
        "and", ("rfm", ":", "重要价值客户"), ("activity", ":", "silent"), ("activity", ":", "churn_risk"),
    )  # fmt: skip
    assert shape(parse('tag:"and"')) == ("tag", ":", "and")  # a value spelled like a keyword is quoted
    assert shape(parse("orders>=3")) == ("orders", ">=", 3)
    assert shape(parse("spent > ¥1,000.5元")) == ("spent", ">", 100_050)
    assert shape(parse("first_seen <= 12h")) == ("first_seen", "<=", dt.timedelta(hours=12))
    assert shape(parse("last_active > 2w")) == ("last_active", ">", dt.timedelta(weeks=2))
    assert shape(parse("last_active > 45")) == ("last_active", ">", dt.timedelta(days=45))
    assert shape(parse("r >= 4 or m = 5 or f != 1")) == ("or", ("r", ">=", 4), ("m", "=", 5), ("f", "!=", 1))
    assert shape(parse("salesperson:'zhang san'")) == ("salesperson", ":", "zhang san")
    assert shape(parse(r'tag:"say \"hi\""')) == ("tag", ":", 'say "hi"')


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "不能为空"),
        ("   ", 1, "不能为空"),
        ("tga:x", 1, "未知的字段 “tga”"),
        ("tag:x and tgs:y", 11, "未知的字段"),
        ("tag x", 5, "冒号"),
        ("orders:3", 7, "比较符"),
        ("tag:", 5, "缺少值"),
        ("tag: and tag:y", 6, "缺少值"),  # an unquoted keyword is never a value
        ("tag:x and", 10, "不完整"),
        ("tag:x and or tag:y", 11, "需要一个条件"),
        ("(tag:x", 7, "缺少右括号"),
        ("tag:x)", 6, "多余的右括号"),
        ("tag:x tag:y", 7, "缺少 and 或 or"),
        ('tag:"VIP', 5, "引号没有结束"),
        ("tag:x && tag:y", 7, "请用 and / or 代替 “&&”"),
        ("tag:x ! tag:y", 7, "无法识别的字符 “!”"),
        ("rfm:最好客户", 5, "没有 RFM 分群"),
        ("activity:sleeping", 10, "没有活跃度分群"),
        ("last_active = 30d", 13, "只能用 < <= > >="),
        ("last_active < 30m", 15, "不是时长"),
        ("first_seen < 99999999d", 14, "不是时长"),
        ("spent > 1.234", 9, "不是金额"),
        ("spent > -5", 9, "不是金额"),
        ("orders >= three", 11, "订单数"),
        ("r >= 6", 6, "1–5"),
        ("(" * 30 + "tag:x" + ")" * 30, 18, "嵌套"),
        ("not " * 30 + "tag:x", 65, "嵌套"),
        (" or ".join(["tag:x"] * 41), 40 * 9 + 1, "条件不能超过"),
        ("tag:" + "x" * 65, 5, "不能超过 64"),
        ("tag:" + "x" * 2000, 1001, "不能超过 1000"),
        ('tag:"a\x00b"', 7, "控制字符"),
    ],
)
def test_errors_point_at_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(SegmentSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.column == column, err.message
    assert fragment in err.message and f"第 {column} 列" in err.message
    assert err.to_json() == {"error": {"code": "segment_syntax", "message": err.message, "details": {"column": column}}}


HOSTILE = [
    "x' OR 1=1 --",
    "x'); DROP TABLE customers; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "1; SELECT pg_sleep(5)",
    "意向' UNION SELECT id FROM customers --",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_bound_parameters(value: str) -> None:
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    for field_name in ("tag", "group", "channel", "salesperson"):
        node = parse(f"{field_name}:{quoted}")
        assert node == Cond(field_name, ":", value.strip(), 1)
        for dialect in (postgresql.dialect(), sqlite.dialect()):
            compiled = seg.segment_select(node, now).compile(dialect=dialect)
            if len(value) > 3:  # ("%" and "_" occur in any SQL text)
                assert value not in str(compiled)  # never spliced into the SQL text …
            assert value.strip() in compiled.params.values()  # … only ever a parameter


# ---- the database against a reference ---------------------------------------------------------------------
@dataclass
class Person:
    id: int
    first_seen: dt.datetime
    tags: set[str] = field(default_factory=set)  # "group/name"
    rfm: tuple[str, int, int, int] | None = None
    activity: str | None = None
    last_message: dt.datetime | None = None
    last_order: dt.datetime | None = None
    groups: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    sellers: set[str] = field(default_factory=set)
    orders: int = 0
    spent: int = 0


CHANNELS = {"expo2026": "展会", "web01": "官网"}
SELLERS = {"zhangsan": "张三", "lisi": "李四"}
TAGS = [("购买意向", "意向-高"), ("购买意向", "意向-低"), ("客户等级", "VIP"), ("怪名", "x' OR 1=1 --")]


def evaluate(node: Any, p: Person, now: dt.datetime) -> bool:
    """The meaning of an expression for one person, written from the docs without SQL."""
    if isinstance(node, Not):
        return not evaluate(node.item, p, now)
    if isinstance(node, And):
        return all(evaluate(n, p, now) for n in node.items)
    if isinstance(node, Or):
        return any(evaluate(n, p, now) for n in node.items)
    v, op = node.value, node.op
    compare = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    compare |= {"=": lambda a, b: a == b, "!=": lambda a, b: a != b}
    match node.field:
        case "tag":
            return any(t.split("/", 1)[1] == v or t == v for t in p.tags)
        case "rfm":
            return p.rfm is not None and p.rfm[0] == v
        case "activity":
            return p.activity == v
        case "group":
            return v in p.groups
        case "channel":
            return v in p.states or any(CHANNELS.get(s) == v for s in p.states)
        case "salesperson":
            return v in p.sellers or any(SELLERS.get(s) == v for s in p.sellers)
        case "last_active":
            last = max(t for t in (p.first_seen, p.last_message, p.last_order) if t is not None)
            return bool(compare[op](now - last, v))
        case "first_seen":
            return bool(compare[op](now - p.first_seen, v))
        case "orders":
            return bool(compare[op](p.orders, v))
        case "spent":
            return bool(compare[op](p.spent, v))
        case "r" | "f" | "m":
            return p.rfm is not None and bool(compare[op](p.rfm["rfm".index(node.field) + 1], v))
    raise AssertionError(node)


async def population(rt: Runtime, n: int = 60, seed: int = 5) -> list[Person]:
    rng = random.Random(seed)
    now = rt.clock.now()
    people = []
    async with rt.db.write() as conn:
        for userid, name in SELLERS.items():
            await conn.execute(salespeople.insert().values(userid=userid, name=name, created_at=now))
        for state, name in CHANNELS.items():
            await conn.execute(
                channel_codes.insert().values(name=name, state=state, userids=[], tag_ids=[], created_at=now, updated_at=now)
            )
        for chat, name, dismissed in (("wrVip", "VIP群", None), ("wrNew", "新客群", None), ("wrOld", "VIP群", now)):
            await conn.execute(groups.insert().values(chat_id=chat, name=name, dismissed_at=dismissed, updated_at=now))
        tag_ids = {f"{g}/{t}": await ensure_tag(conn, rt.db.dialect, t, now, group=g) for g, t in TAGS}
    for k in range(n):
        cid = await make_customer(rt, f"wmSeg{k:03d}")
        p = Person(cid, now - rng.choice([1, 5, 8, 20, 40, 100, 400]) * DAY - rng.choice([0, 3600]) * dt.timedelta(seconds=1))
        async with rt.db.write() as conn:
            await conn.execute(sa.update(customers).where(customers.c.id == cid).values(first_seen_at=p.first_seen))
            for key in rng.sample(sorted(tag_ids), rng.randint(0, 2)):
                p.tags.add(key)
                await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_ids[key], source=TagSource.MANUAL, evidence={}, now=now)
            if rng.random() < 0.7:
                name, r, f, m = rng.choice(SEGMENT_NAMES), rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
                p.rfm = (name, r, f, m)
                p.orders, p.spent = rng.randint(1, 6), rng.choice([5000, 100_000, 100_001, 250_000])
                p.last_order = now - rng.choice([0, 3, 29, 31, 80]) * DAY
                await conn.execute(
                    customer_rfm.insert().values(
                        customer_id=cid, recency_days=1, frequency=p.orders, monetary_fen=p.spent, r=r, f=f, m=m, segment=name,
                        computed_on=now.date(),
                    )
                )  # fmt: skip
                await conn.execute(
                    customer_order_stats.insert().values(
                        customer_id=cid, orders=p.orders, monetary_fen=p.spent, first_order_at=p.last_order, last_order_at=p.last_order,
                        updated_at=now,
                    )
                )  # fmt: skip
            if rng.random() < 0.8:
                p.activity = rng.choice(["new", "active", "silent", "churn_risk", "lost"])
                p.last_message = rng.choice([None, now - rng.choice([0, 10, 30, 50]) * DAY])
                await conn.execute(
                    customer_activity.insert().values(
                        customer_id=cid, segment=p.activity, last_message_at=p.last_message, last_order_at=p.last_order, computed_at=now
                    )
                )
            elif p.last_order is not None:
                p.last_order = None  # without an activity row last_active knows only first_seen
            for chat in rng.sample(["wrVip", "wrNew", "wrOld"], rng.randint(0, 2)):
                active = rng.random() < 0.8
                if active and chat != "wrOld":
                    p.groups |= {"VIP群" if chat == "wrVip" else "新客群", chat}
                await conn.execute(
                    group_members.insert().values(chat_id=chat, member_id=f"wmSeg{k:03d}", member_type=2, customer_id=cid, active=active)
                )
            for userid in rng.sample(sorted(SELLERS), rng.randint(0, 2)):
                state = rng.choice(["", "expo2026", "web01", "adhoc"])
                ended = rng.random() < 0.25
                if not ended:
                    p.sellers.add(userid)
                if state:
                    p.states.add(state)
                await conn.execute(
                    follows.insert().values(
                        customer_id=cid, userid=userid, external_userid=f"wmSeg{k:03d}", status="ended" if ended else "active",
                        state=state, started_at=now, updated_at=now,
                    )
                )  # fmt: skip
        people.append(p)
    return people


EXPRESSIONS = [
    'tag:意向-高 and rfm:重要价值客户 and not group:"VIP群" and last_active < 30d and channel:展会',
    "tag:意向-高",
    'tag:"购买意向/意向-低" or tag:VIP',
    'tag:"x\' OR 1=1 --"',
    'tag:"y\' OR 1=1 --"',
    "not tag:VIP",
    "rfm:重要价值客户 or rfm:一般挽留",
    "activity:silent or activity:流失风险",
    "not activity:new",
    "group:VIP群",
    "group:wrNew and not group:VIP群",
    "channel:展会 or channel:web01",
    "channel:adhoc",
    "salesperson:zhangsan",
    "salesperson:李四 and not salesperson:张三",
    "last_active < 30d",
    "last_active <= 30d",
    "last_active > 30d",
    "last_active >= 10d",
    "first_seen < 7d",
    "first_seen >= 40d",
    "orders >= 3",
    "orders = 0",
    "orders < 2",
    "spent > 1000",
    "spent >= 1000.01",
    "spent != 50",
    "r >= 4 and (f <= 2 or m = 5)",
    "(tag:意向-高 or tag:VIP) and (orders >= 2 or activity:active) and not channel:官网",
]


async def test_counts_and_streams_match_the_reference(rt: Runtime) -> None:
    people = await population(rt)
    now = rt.clock.now()
    seen_nonempty = 0
    for text in EXPRESSIONS:
        node = parse(text)
        want = sorted(p.id for p in people if evaluate(node, p, now))
        seen_nonempty += bool(want)
        assert await seg.count_segment(rt, text) == len(want), text
        assert [i async for i in seg.iter_segment(rt, text, batch=4)] == want, text
        sample = await seg.sample_segment(rt, text, limit=3)
        assert [s["id"] for s in sample] == want[:3]
    assert seen_nonempty >= len(EXPRESSIONS) - 3  # the data exercises nearly every expression
    assert await seg.count_segment(rt, 'tag:"y\' OR 1=1 --"') == 0  # injection-looking text matched as data


async def test_merged_customers_never_match(rt: Runtime) -> None:
    from scrm.crm.customers.services import merge_customers

    a = await make_customer(rt, "wmMergeA")
    b = await make_customer(rt, "wmMergeB")
    assert await seg.count_segment(rt, "first_seen < 1d") == 2
    async with rt.db.write() as conn:
        await merge_customers(conn, rt.db.dialect, a, b, rt.clock.now())
    assert await seg.count_segment(rt, "first_seen < 1d") == 1


async def test_streaming_reads_in_flat_batches(rt: Runtime) -> None:
    now = rt.clock.now()
    total = 2_500
    async with rt.db.write() as conn:
        row = {"first_seen_at": now, "last_seen_at": now, "created_at": now, "updated_at": now, "custom_fields": {}}
        await conn.execute(customers.insert(), [{**row, "name": f"c{k}"} for k in range(total)])
    selects: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sa.event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        biggest, got = 0, []
        async for ids in seg.iter_segment_batches(rt, "first_seen < 1d", batch=1000):
            biggest = max(biggest, len(ids))
            got.extend(ids)
    finally:
        sa.event.remove(rt.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(got) == total and got == sorted(set(got))
    assert biggest == 1000 and len(selects) == 3  # 1000 + 1000 + 500: the short page ends it
    assert all("LIMIT" in s.upper() for s in selects)


async def test_saved_segments(rt: Runtime) -> None:
    made = await seg.save_segment(rt, name=" 高意向 ", expression="tag:意向-高 and orders >= 1", description="说明", created_by="admin")
    assert made.name == "高意向" and made.expression == "tag:意向-高 and orders >= 1"
    with pytest.raises(Conflict):
        await seg.save_segment(rt, name="高意向", expression="tag:x")
    with pytest.raises(SegmentSyntaxError):
        await seg.save_segment(rt, name="坏的", expression="tag:x and")
    changed = await seg.save_segment(rt, segment_id=made.id, name="高意向客户", expression="tag:意向-高")
    assert changed.id == made.id and changed.expression == "tag:意向-高" and changed.description == ""
    async with rt.db.read() as conn:
        assert [s.name for s in await seg.list_segments(conn)] == ["高意向客户"]
        assert (await seg.get_segment(conn, made.id)).to_json()["name"] == "高意向客户"
    await seg.delete_segment(rt, made.id)
    with pytest.raises(NotFound):
        await seg.delete_segment(rt, made.id)
    with pytest.raises(NotFound):
        await seg.save_segment(rt, segment_id=made.id, name="x", expression="tag:x")


HOSTILE_EXPRESSIONS = [
    "tag:x; DROP TABLE customers",
    "tag:x' OR '1'='1",
    "1=1",
    "tag:x -- comment",
    "tag:x /* */ or 1",
    "orders >= 1 or 1=1",
    "r >= 1) or (1",
    "tag:x or true",
    "spent > 0; select 1",
]


@pytest.mark.parametrize("text", HOSTILE_EXPRESSIONS)
def test_hostile_expressions_do_not_parse(text: str) -> None:
    with pytest.raises(SegmentSyntaxError):
        parse(text)


async def test_hostile_values_run_as_data_on_the_database(rt: Runtime) -> None:
    """Every hostile value, in every text field, really executed: nothing matches, nothing breaks, the table is
    intact (on SQLite and PostgreSQL) — and LIKE wildcards are not wildcards."""
    ids = [await make_customer(rt, f"wmHostile{k}") for k in range(3)]
    now = rt.clock.now()
    async with rt.db.write() as conn:  # a tag everybody has: a value used as a LIKE pattern ("%", "_") would match it
        tag_id = await ensure_tag(conn, rt.db.dialect, "X", now, group="G")
        for cid in ids:
            await apply_tag(conn, rt.db.dialect, customer_id=cid, tag_id=tag_id, source=TagSource.MANUAL, evidence={}, now=now)
    assert await seg.count_segment(rt, "tag:X") == 3
    for value in HOSTILE:
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for field_name in ("tag", "group", "channel", "salesperson"):
            assert await seg.count_segment(rt, f"{field_name}:{quoted}") == 0, (field_name, value)
            assert await seg.count_segment(rt, f"not {field_name}:{quoted}") == 3, (field_name, value)
    assert await seg.count_segment(rt, "first_seen < 1d") == 3
