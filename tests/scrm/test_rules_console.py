"""The rules editor (/console/rules) over HTTP on SQLite and PostgreSQL: sign-in and CSRF, the rules in force,
validation errors by rule and field with the text kept as typed, saving (atomic, .bak, in force at once, refused
when stale), the dry run on recent history, and escaping everywhere."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from bots.gateway.models import inbound_events
from scrm.app.webapp import create_app
from scrm.console import rules as console_rules
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import customers
from tagging.rules.domain import version_of
from tagging.rules.engine import RULES_FILE, TAGGER_CACHE, TaggerCache, tagger_cache
from tagging.rules.services import tag_message
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BASE = re.compile(r'name="base_version" value="([^"]*)"')
TEXTAREA = re.compile(r"<textarea[^>]*>(.*?)</textarea>", re.S)
EVIL = "</textarea><script>alert(1)</script>"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def exists(path: Path) -> bool:
    return path.exists()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "tag_rules.toml"
    shutil.copy(RULES_FILE, path)
    return path


@pytest.fixture
async def client(rt: Runtime, rules_file: Path) -> AsyncIterator[TestClient]:
    rt.put(TAGGER_CACHE, TaggerCache(rules_file))
    app = create_app(rt.settings, runtime=rt)
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


def textarea(page: str) -> str:
    match = TEXTAREA.search(page)
    assert match
    return html.unescape(match.group(1))


def flash(page: str) -> tuple[str, str] | None:
    m = re.search(r'<div class="flash flash-(ok|err)" role="status">(.*?)</div>', page)
    return (m.group(1), m.group(2)) if m else None


async def test_the_pages_need_a_session_and_posts_need_csrf(client: TestClient, rt: Runtime) -> None:
    for method, path, _ in console_rules.ROUTES:
        resp = await client.request(method, path, allow_redirects=False, headers=HTML)
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login"), (method, path)
        resp = await client.request(method, path, allow_redirects=False)
        assert resp.status == 401
    token, _ = await login(client, rt)
    for path in ("/console/rules", "/console/rules/dry-run"):
        resp = await client.post(path, data={"text": "", "csrf_token": token[:-2] + "xx"}, headers=HTML)
        assert resp.status == 403


async def test_the_page_shows_the_rules_in_force_and_the_file(client: TestClient, rt: Runtime, rules_file: Path) -> None:
    _, page = await login(client, rt)
    assert "<strong>意向-高</strong>" in page and "报价、多少钱、批发" in page and "14 天" in page
    assert textarea(page) == read(rules_file)
    assert BASE.search(page).group(1) == version_of(read(rules_file))  # type: ignore[union-attr]
    assert 'formaction="/console/rules/dry-run"' in page


async def test_saving_a_valid_file_puts_it_in_force_and_keeps_a_backup(client: TestClient, rt: Runtime, rules_file: Path) -> None:
    token, page = await login(client, rt)
    old = read(rules_file)
    new = old + f'\n# {EVIL}\n[[rules]]\ntag = "要发票"\ngroup = "财务"\ndescription = "{EVIL}"\nkeywords = ["发票", "开票"]\n'
    resp = await client.post(
        "/console/rules",
        data={"csrf_token": token, "text": new.replace("\n", "\r\n"), "base_version": BASE.search(page).group(1)},
        headers=HTML,  # type: ignore[union-attr]
    )
    assert resp.status == 200
    landed = await resp.text()
    assert flash(landed) is not None and flash(landed)[0] == "ok" and "8 条规则" in flash(landed)[1]  # type: ignore[index]
    assert read(rules_file) == new  # newlines as a file has them
    assert read(rules_file.parent / "tag_rules.toml.bak") == old
    assert "<script>" not in landed and html.escape(EVIL, quote=True) in landed
    assert textarea(landed) == new
    assert tagger_cache(rt).status().version == version_of(new)
    cid = await make_customer(rt, "wmInvoice")
    assert (await tag_message(rt, cid, "麻烦开发票", "inbound:1", rt.clock.now())).applied == ("要发票",)


async def test_an_invalid_file_is_not_saved_and_problems_name_rule_and_field(client: TestClient, rt: Runtime, rules_file: Path) -> None:
    token, page = await login(client, rt)
    before = read(rules_file)
    bad = f'[[rules]]\ntag = "<b>投诉</b>"\nkeywords = ["坏了"]\nthreshold = "高"\npatterns = ["(坏"]\n# {EVIL}\n'
    resp = await client.post(
        "/console/rules",
        data={"csrf_token": token, "text": bad, "base_version": BASE.search(page).group(1)},
        headers=HTML,  # type: ignore[union-attr]
    )
    assert resp.status == 400
    body = await resp.text()
    assert "规则未保存：发现 2 个问题" in body
    assert "<td>&lt;b&gt;投诉&lt;/b&gt;</td><td>threshold</td>" in body and "<td>patterns</td>" in body
    assert textarea(body) == bad and "<script>" not in body
    assert read(rules_file) == before and not exists(rules_file.parent / "tag_rules.toml.bak")
    syntax = await client.post("/console/rules", data={"csrf_token": token, "text": "[[rules]\n"}, headers=HTML)
    assert syntax.status == 400 and "TOML 语法错误" in await syntax.text()


async def test_a_stale_editor_cannot_overwrite_a_newer_file(client: TestClient, rt: Runtime, rules_file: Path) -> None:
    token, page = await login(client, rt)
    base = BASE.search(page).group(1)  # type: ignore[union-attr]
    write(rules_file, read(rules_file) + "\n# edited by someone else\n")
    mine = '[[rules]]\ntag = "复购"\nkeywords = ["再来"]\n'
    resp = await client.post("/console/rules", data={"csrf_token": token, "text": mine, "base_version": base}, headers=HTML)
    assert resp.status == 409
    body = await resp.text()
    assert "已被修改" in body and textarea(body) == mine
    assert read(rules_file).endswith("# edited by someone else\n")


async def test_dry_run_shows_what_would_change_and_writes_nothing(client: TestClient, rt: Runtime, rules_file: Path) -> None:
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
    before = read(rules_file)
    edited = before + '\n[[rules]]\ntag = "要发票"\ngroup = "财务"\nkeywords = ["发票"]\n'
    resp = await client.post(
        "/console/rules/dry-run",
        data={"csrf_token": token, "text": edited, "base_version": BASE.search(page).group(1), "days": "30"},  # type: ignore[union-attr]
        headers=HTML,
    )
    assert resp.status == 200
    body = await resp.text()
    assert "试运行结果" in body and "回放近 30 天" in body and "的 1 条客户消息" in body  # the 40-day-old one is out
    section = body.split("<h3>要发票")[1].split("</section>")[0]
    assert "将新增 <strong>1</strong> 位" in section
    assert f"#{cid} &lt;img src=x&gt;" in section and "麻烦开一下发票" in section and "<td>发票</td>" in section
    assert textarea(body) == edited
    assert read(rules_file) == before and tagger_cache(rt).status().rules == 7
    wide = await client.post("/console/rules/dry-run", data={"csrf_token": token, "text": edited, "days": "90"}, headers=HTML)
    assert "的 2 条客户消息" in await wide.text()
    broken = await client.post("/console/rules/dry-run", data={"csrf_token": token, "text": 'rules = "x"'}, headers=HTML)
    assert broken.status == 400 and "表数组" in await broken.text()
