"""The rules editor (/console/rules) over HTTP on SQLite and PostgreSQL: sign-in and CSRF, the rules of the version in
force as a form (no file, no server path), saving a new version (in force at once), problems next to their fields with
the input kept, stale saves refused, the live try-out (JSON), versions with diffs and roll back, TOML export / import,
the dry run on recent history, and escaping everywhere."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.models import inbound_events
from scrm.app.webapp import create_app
from scrm.console import rules as console_rules
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tagging.rules import versions
from tagging.rules.engine import RULES_FILE, tagger_cache
from tagging.rules.services import tag_message
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVIL = "</textarea><script>alert(1)</script>"
SEED = RULES_FILE.read_text(encoding="utf-8")


class FormFields(HTMLParser):
    """The named fields of one form (by id) as a browser would post them (unticked boxes left out)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields, self._textarea = form_id, False, {}, None
        self.fields: dict[str, str]
        self._textarea: str | None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or not a.get("name"):
            return
        name = str(a["name"])
        if tag == "input" and (a.get("type") != "checkbox" or "checked" in a):
            self.fields[name] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea, self.fields[name] = name, ""
        elif tag == "select":
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        if tag == "form":
            self.inside = False


def rules_form(page: str) -> dict[str, str]:
    parser = FormFields("rules-form")
    parser.feed(page)
    return parser.fields


def rule_index(fields: dict[str, str], tag: str) -> int:
    return next(int(k[1:].split(".")[0]) for k, v in fields.items() if k.endswith(".tag") and v == tag)


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[TestClient]:
    app = create_app(rt.settings, runtime=rt)
    if "/console/rules" not in {r.canonical for r in app.router.resources()}:
        console_rules.setup_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def login(client: TestClient, rt: Runtime) -> tuple[str, str]:
    """Sign in; returns the CSRF token and the rules page."""
    resp = await client.post(
        "/console/login",
        data={"username": "admin", "password": rt.settings.admin_token.get(), "next": "/console/rules"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/rules"
    page = await client.get("/console/rules", headers=HTML)
    assert page.status == 200
    text = await page.text()
    match = CSRF.search(text)
    assert match
    return match.group(1), text


def flash(page: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', page)
    return (m.group(1), m.group(2)) if m else None


async def stored(rt: Runtime) -> list[versions.RuleVersion]:
    async with rt.db.read() as conn:
        return await versions.list_versions(conn)


async def test_the_pages_need_a_session_and_posts_need_csrf(client: TestClient, rt: Runtime) -> None:
    for method, path, _ in console_rules.ROUTES:
        path = path.replace("{number}", "1")
        resp = await client.request(method, path, allow_redirects=False, headers=HTML)
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login"), (method, path)
        resp = await client.request(method, path, allow_redirects=False)
        assert resp.status == 401
    token, _ = await login(client, rt)
    for method, path, _ in console_rules.ROUTES:
        if method == "POST":
            resp = await client.post(path.replace("{number}", "1"), data={"csrf_token": token[:-2] + "xx"}, headers=HTML)
            assert resp.status == 403, path
    assert [v.version for v in await stored(rt)] == [1]


async def test_the_page_is_a_form_of_the_version_in_force_without_a_file_path(client: TestClient, rt: Runtime) -> None:
    _, page = await login(client, rt)
    fields = rules_form(page)
    i = rule_index(fields, "意向-高")
    assert fields[f"r{i}.keywords"] == "报价、多少钱、批发、价格表、能便宜吗、怎么卖、进货、拿货、什么价"
    assert fields[f"r{i}.synonyms"].splitlines()[0] == "多少钱 = 啥价、几多钱、多少米、咋卖"
    assert (fields[f"r{i}.threshold"], fields[f"r{i}.half_life_days"], fields[f"r{i}.group"]) == ("2.0", "14", "购买意向")
    assert fields["base_version"] == "1" and fields["rules"] == "8"  # 7 rules and the empty one offered
    assert "tag_rules.toml" not in page and "config/" not in page and '<textarea name="text"' not in page
    assert '<td class="num">1</td><td>初始导入</td><td>system</td>' in page
    assert 'script src="/console/static/rules.js"' in page


async def test_saving_the_form_stores_a_new_version_in_force_at_once(client: TestClient, rt: Runtime) -> None:
    token, page = await login(client, rt)
    data = rules_form(page) | {"csrf_token": token}
    new = int(data["rules"]) - 1  # the empty rule
    data |= {f"r{new}.tag": "要发票", f"r{new}.group": "财务", f"r{new}.keywords": "发票，开票", f"r{new}.description": EVIL}
    data[f"r{new}.synonyms"] = "发票 = 专票、普票"
    data[f"r{rule_index(data, '比价')}.delete"] = "1"
    resp = await client.post("/console/rules", data=data, headers=HTML)
    assert resp.status == 200
    landed = await resp.text()
    assert flash(landed) == ("ok", "已保存为版本 2（7 条规则），所有进程收到下一条消息时生效")
    assert "<script>alert" not in landed and html.escape(EVIL, quote=True) in landed
    [v2, _] = await stored(rt)
    assert (v2.version, v2.action, v2.created_by, v2.rules) == (2, "save", "console:admin", 7)
    fields = rules_form(landed)
    assert "比价" not in fields.values() and fields[f"r{rule_index(fields, '要发票')}.keywords"] == "发票、开票"
    cid = await make_customer(rt, "wmInvoice")
    outcome = await tag_message(rt, cid, "能开专票吗", "inbound:1", rt.clock.now())
    assert "要发票" in outcome.applied and tagger_cache(rt).status().number == 2


async def test_a_refused_save_keeps_the_input_and_puts_each_problem_next_to_its_field(client: TestClient, rt: Runtime) -> None:
    token, page = await login(client, rt)
    data = rules_form(page) | {"csrf_token": token}
    i = rule_index(data, "投诉")
    data |= {f"r{i}.threshold": "高", f"r{i}.patterns": "(坏", f"r{i}.keywords": data[f"r{i}.keywords"] + "、<b>漏</b>"}
    data[f"r{rule_index(data, '催单')}.synonyms"] = "快点 尽快"
    data["sample"] = "送来的啤酒坏了"
    resp = await client.post("/console/rules", data=data, headers=HTML)
    assert resp.status == 400
    body = await resp.text()
    assert "规则未保存：发现 3 个问题" in body and "<b>漏</b>" not in body
    fields = rules_form(body)
    assert fields[f"r{i}.threshold"] == "高" and fields[f"r{i}.keywords"].endswith("<b>漏</b>")  # kept as typed
    assert re.search(r'<textarea id="rule-sample"[^>]*>送来的啤酒坏了</textarea>', body)  # the sample too
    threshold = re.search(rf'name="r{i}\.threshold" value="高"[^>]*>(.*?)</label>', body, re.S)
    assert threshold and 'class="field-error" role="alert">' in threshold.group(1) and "不是数字" in threshold.group(1)
    patterns = re.search(rf'name="r{i}\.patterns"[^>]*>[^<]*</textarea>(.*?)</label>', body, re.S)
    assert patterns and "field-error" in patterns.group(1)
    assert "第 1 行应写成“关键词 = 同义词、同义词”" in body
    assert [v.version for v in await stored(rt)] == [1]


async def test_a_stale_editor_cannot_overwrite_a_newer_version(client: TestClient, rt: Runtime) -> None:
    token, page = await login(client, rt)
    data = rules_form(page) | {"csrf_token": token}
    await versions.save_rules(rt, SEED + "\n# someone else\n", by="console:other", base_version=1)
    data[f"r{rule_index(data, '复购')}.keywords"] = "再来一单"
    resp = await client.post("/console/rules", data=data, headers=HTML)
    assert resp.status == 409
    body = await resp.text()
    assert "已被他人保存为版本 2" in body and "再来一单" in body
    assert [v.version for v in await stored(rt)] == [2, 1]


async def test_try_a_message_says_which_rules_fire_and_why(client: TestClient, rt: Runtime) -> None:
    token, page = await login(client, rt)
    data = rules_form(page) | {"csrf_token": token, "sample": "价钱无所谓，不讲价。送来的啤酒坏了，不用退，补给我"}
    data[f"r{rule_index(data, '意向-高')}.keywords"] += "、啤酒"  # unsaved edits count
    resp = await client.post("/console/rules/try", data=data)
    assert resp.status == 200
    results = {r["tag"]: r for r in (await resp.json())["results"]}
    assert results["投诉"]["fires"] is True and results["投诉"]["score"] == 4.0
    assert results["投诉"]["reasons"] == ["“坏了”命中", "“补给我”命中（算作“补发”）"]
    assert results["价格敏感"] == {
        "tag": "价格敏感", "group": "价格", "score": 0.0, "threshold": 2.0, "fires": False, "words": [],
        "reasons": ["“讲价”被“不”否定，不计"],
    }  # fmt: skip
    assert results["意向-高"]["words"] == ["啤酒"] and results["意向-高"]["fires"] is False
    data[f"r{rule_index(data, '投诉')}.weight"] = "重"
    bad = await client.post("/console/rules/try", data=data)
    assert bad.status == 400
    error = (await bad.json())["error"]
    assert error["code"] == "invalid_input" and "规则有 1 个问题" in error["message"]
    assert error["details"]["problems"] == [{"rule": "投诉", "field": "weight", "message": "'重' 不是数字 (not a number)"}]
    long = await client.post("/console/rules/try", data=data | {"sample": "坏" * 501})
    assert long.status == 400 and (await long.json())["error"]["message"].startswith("示例消息最多 500 个字")
    assert [v.version for v in await stored(rt)] == [1]


async def test_one_keyword_edited_in_the_form_diffs_as_that_one_line(client: TestClient, rt: Runtime) -> None:
    """Version 1 is the commented seed with a [defaults] block; the form writes every value explicit. The diff of a
    one-keyword edit shows that edit, not the [defaults] block and the comments as removed."""
    token, page = await login(client, rt)
    data = rules_form(page) | {"csrf_token": token}
    i = rule_index(data, "意向-高")
    data[f"r{i}.keywords"] += "、团购价"
    resp = await client.post("/console/rules", data=data, headers=HTML)
    assert flash(await resp.text())[0] == "ok"  # type: ignore[index]
    diff_page = await (await client.get("/console/rules/versions/2", headers=HTML)).text()
    changed = re.findall(r'<span class="(add|del)">(.*?)</span>', html.unescape(diff_page))
    assert [kind for kind, _ in changed] == ["del", "add"], changed
    assert changed[1][1] == changed[0][1].replace("-keywords", "+keywords").replace('"什么价"]', '"什么价", "团购价"]'), changed
    assert "[defaults]" not in diff_page and "字段说明" not in diff_page.split('<pre class="diff">')[1].split("</pre>")[0]


async def test_versions_show_their_diff_and_roll_back_as_a_new_version(client: TestClient, rt: Runtime) -> None:
    token, _ = await login(client, rt)
    await versions.save_rules(rt, SEED + '\n[[rules]]\ntag = "要发票"\nkeywords = ["发票"]\n', by="console:marketer1", base_version=1)
    page = await (await client.get("/console/rules/versions/2", headers=HTML)).text()
    assert '<span class="add">+tag = &#34;要发票&#34;</span>' in page.replace("&quot;", "&#34;") and "console:marketer1" in page
    assert 'action="/console/rules/versions/2/rollback"' not in page  # the version in force
    one = await (await client.get("/console/rules/versions/1", headers=HTML)).text()
    assert 'action="/console/rules/versions/1/rollback"' in one and "保存为新版本 3" in one
    stale = await client.post("/console/rules/versions/1/rollback", data={"csrf_token": token, "base_version": "1"}, headers=HTML)
    assert flash(await stale.text())[0] == "err"  # type: ignore[index]
    resp = await client.post("/console/rules/versions/1/rollback", data={"csrf_token": token, "base_version": "2"}, headers=HTML)
    landed = await resp.text()
    assert flash(landed) == ("ok", "已回滚到版本 1 的内容，保存为新版本 3")
    [v3, _, _] = await stored(rt)
    assert (v3.action, v3.restored_from, v3.created_by) == ("rollback", 1, "console:admin")
    assert "回滚（恢复版本 1）" in landed and "要发票" not in rules_form(landed).values()
    missing = await client.get("/console/rules/versions/99", headers=HTML)
    assert missing.status == 404 and "没有版本 99" in await missing.text()


async def test_toml_export_and_import(client: TestClient, rt: Runtime) -> None:
    token, _ = await login(client, rt)
    resp = await client.get("/console/rules/export")
    assert resp.status == 200 and await resp.text() == SEED
    assert resp.headers["Content-Disposition"] == 'attachment; filename="tag_rules-v1.toml"'
    bad = f'[[rules]]\ntag = "x"\nkeywords = ["y"]\nthreshold = "高"\n# {EVIL}\n'
    resp = await client.post("/console/rules/import", data={"csrf_token": token, "toml": bad, "base_version": "1"}, headers=HTML)
    assert resp.status == 400
    body = await resp.text()
    assert "未导入：发现 1 个问题" in body and "<td>threshold</td>" in body and "<script>alert" not in body
    assert html.escape(bad, quote=True) in body  # kept as pasted
    good = '[[rules]]\ntag = "要发票"\nkeywords = ["发票"]\n'
    resp = await client.post("/console/rules/import", data={"csrf_token": token, "toml": good, "base_version": "1"}, headers=HTML)
    assert flash(await resp.text()) == ("ok", "已导入为版本 2（1 条规则），所有进程收到下一条消息时生效")
    assert (await stored(rt))[0].action == "import"
    old = await client.get("/console/rules/export?version=1")
    assert await old.text() == SEED


async def test_dry_run_shows_what_would_change_and_writes_nothing(client: TestClient, rt: Runtime) -> None:
    token, page = await login(client, rt)
    cid = await make_customer(rt, "wmDry")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        await conn.execute(sa.update(customers).where(customers.c.id == cid).values(name="<img src=x>"))
        for i, (text, ago) in enumerate([("麻烦开一下发票", 2), ("发票抬头写公司", 40)]):
            await conn.execute(
                inbound_events.insert().values(
                    channel="kf",
                    kind="kf.customer.text",
                    dedupe_key=f"dry:{i}",
                    external_userid="wmDry",
                    from_user="wmDry",
                    content=text,
                    payload={},
                    raw="",
                    occurred_at=now - dt.timedelta(days=ago),
                    received_at=now,
                )
            )
    data = rules_form(page) | {"csrf_token": token, "days": "30"}
    new = int(data["rules"]) - 1
    data |= {f"r{new}.tag": "要发票", f"r{new}.group": "财务", f"r{new}.keywords": "发票"}
    resp = await client.post("/console/rules/dry-run", data=data, headers=HTML)
    assert resp.status == 200
    body = await resp.text()
    assert "试运行结果" in body and "回放近 30 天" in body and "的 1 条客户消息" in body  # the 40-day-old one is out
    section = body.split("<h3>要发票")[1].split("</section>")[0]
    assert "将新增 <strong>1</strong> 位" in section
    assert f"#{cid} &lt;img src=x&gt;" in section and "麻烦开一下发票" in section and "<td>发票</td>" in section
    assert "<td>“发票”命中</td>" in section
    assert rules_form(body)[f"r{new}.tag"] == "要发票"  # the typed rules stay in the form
    assert [v.version for v in await stored(rt)] == [1] and tagger_cache(rt).status().rules == 7
    wide = await client.post("/console/rules/dry-run", data=data | {"days": "90"}, headers=HTML)
    assert "的 2 条客户消息" in await wide.text()
    data[f"r{new}.threshold"] = "x"
    broken = await client.post("/console/rules/dry-run", data=data, headers=HTML)
    assert broken.status == 400 and "无法试运行" in await broken.text()
    assert json.dumps(console_rules.DRY_RUN_DAYS) == "[7, 30, 90]"
