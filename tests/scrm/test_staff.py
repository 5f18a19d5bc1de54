"""Staff accounts and roles in the console (real app, SQLite and PostgreSQL): the scrypt KDF, sign-in per role,
403 per page family, sessions revoked by deactivation / new password / role change, CSRF, and the marketer's
coupon and referral pages."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from scrm.app import staff_cli as staff_staff_cli
from scrm.app.webapp import create_app
from scrm.campaigns.coupons import services as coupons
from scrm.campaigns.coupons.models import coupon_templates
from scrm.campaigns.referral import services as referral_services
from scrm.console import auth, staff
from scrm.console import campaigns as console_campaigns
from scrm.console import coupon_pages as console_campaigns_coupon_pages
from scrm.core.clock import FrozenClock
from scrm.core.errors import Conflict, InvalidInput
from scrm.core.runtime import Runtime
from scrm.crm.groups.models import groups
from scrm.crm.groups.services import ensure_group
from scrm.crm.staff import accounts as staff_accounts
from scrm.crm.staff import domain as staff_domain
from scrm.crm.staff.models import staff_users
from scrm.crm.staff.services import upsert_salesperson
from tests.conftest import make_customer

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse 9"


def console_app(rt: Runtime) -> web.Application:
    """The real app, with the marketer and staff pages mounted if app.py does not mount them (yet)."""
    app = create_app(rt.settings, runtime=rt)
    mounted = {r.canonical for r in app.router.resources()}
    if "/console/coupons" not in mounted:
        console_campaigns.setup_routes(app)
    if "/console/staff" not in mounted:
        staff.setup_routes(app)
    return app


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(console_app(catalog))) as c:
        yield c


async def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in (cookies replaced); returns the new session's CSRF token, read from the landing page."""
    client.session.cookie_jar.clear()
    resp = await client.post("/console/login", data={"username": username, "password": password}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get(resp.headers["Location"], headers=HTML)
    assert page.status == 200, (resp.headers["Location"], await page.text())
    match = CSRF.search(await page.text())
    assert match
    return match.group(1)


def flash(text: str) -> str:
    m = re.search(r'<div class="flash flash-(?:ok|err)" role="status">(.*?)</div>', text)
    return m.group(1) if m else ""


# ---- the KDF (plain values) ----------------------------------------------------------------------------------
def test_scrypt_hash_format_and_verify() -> None:
    encoded = staff_domain.hash_password("秘密 password")
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(staff_domain._unb64(salt)) == 16 and len(staff_domain._unb64(key)) == 32
    assert staff_domain.verify_password("秘密 password", encoded)
    assert not staff_domain.verify_password("秘密 passwort", encoded)
    assert staff_domain.hash_password("秘密 password") != encoded  # fresh salt each time
    for bad in ("", "plain", encoded.replace("scrypt$", "bcrypt$"), "scrypt$16384$8$1$!!$!!", f"scrypt${2**30}$8$1${salt}${key}"):
        assert not staff_domain.verify_password("秘密 password", bad)  # malformed or absurd cost: refused, never raises


def test_sessions_carry_roles_and_staff_version() -> None:
    from tests.conftest import make_settings

    s = make_settings()
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    principal = auth.Principal("wang", "marketer", ("marketer", "finance"), 7, 3)
    session, cookie = auth.issue_session(s, principal, now)
    back = auth.read_session(s, cookie, now)
    assert back == session and back.all_roles == ("marketer", "finance") and (back.staff_id, back.session_version) == (7, 3)
    assert back.may({"finance"}) and not back.may(auth.OPERATIONS_ROLES)
    legacy = auth.read_session(s, auth.issue_session(s, auth.Principal("admin", "admin"), now)[1], now)
    assert legacy is not None and legacy.all_roles == ("admin",) and legacy.staff_id is None
    assert auth.home_for(("marketer",)) == "/console/coupons" and auth.home_for(("finance",)) == "/console/finance/receivables"


# ---- accounts ---------------------------------------------------------------------------------------------
async def test_create_staff_rules(rt: Runtime) -> None:
    user = await staff_accounts.create_staff(rt, " Wang.Li ", PASSWORD, ["marketer"], display_name="王丽")
    assert (user.username, user.roles, user.active, user.session_version) == ("wang.li", ("marketer",), True, 1)
    async with rt.db.read() as conn:
        stored = (await conn.execute(sa.select(staff_users.c.password_hash))).scalar_one()
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    with pytest.raises(Conflict):
        await staff_accounts.create_staff(rt, "wang.li", PASSWORD, ["finance"])
    with pytest.raises(InvalidInput):
        await staff_accounts.create_staff(rt, "admin", PASSWORD, ["admin"])  # reserved for the admin token
    with pytest.raises(InvalidInput):
        await staff_accounts.create_staff(rt, "zhao", "short", ["finance"])
    with pytest.raises(InvalidInput):
        await staff_accounts.create_staff(rt, "zhao", PASSWORD, ["boss"])
    with pytest.raises(InvalidInput):
        await staff_accounts.create_staff(rt, "zhao", PASSWORD, [])
    assert await staff_accounts.check_login(rt, "WANG.LI", PASSWORD) is not None
    assert await staff_accounts.check_login(rt, "wang.li", "wrong password") is None
    assert await staff_accounts.check_login(rt, "nobody", PASSWORD) is None


async def test_cli_add_list_and_deactivate(rt: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await staff_staff_cli.run_cli(rt, ["add", "li", "--role", "operations", "--role", "finance", "--name", "李"]) == 0
    assert await staff_accounts.check_login(rt, "li", PASSWORD) is not None
    assert await staff_staff_cli.run_cli(rt, ["list"]) == 0
    assert "li\toperations,finance\tactive\t李" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await staff_staff_cli.run_cli(rt, ["add", "li", "--role", "finance"]) == 1  # taken
    assert await staff_staff_cli.run_cli(rt, ["deactivate", "li"]) == 0
    assert await staff_accounts.check_login(rt, "li", PASSWORD) is None


# ---- roles per page family ---------------------------------------------------------------------------------
PAGES = {
    "operations": ["/console/orders", "/console/picking", "/console/stock", "/console/purchasing"],
    "finance": ["/console/finance/receivables"],
    "marketer": ["/console/coupons", "/console/campaigns", "/console/rules"],
    "admin": ["/console/staff"],
}


async def test_each_role_sees_its_pages_and_gets_403_elsewhere(client: TestClient, catalog: Runtime) -> None:
    for role in ("marketer", "operations", "finance"):
        await staff_accounts.create_staff(catalog, f"u-{role}", PASSWORD, [role])
    for role in ("marketer", "operations", "finance", "admin"):
        if role == "admin":
            await sign_in(client, "admin", catalog.settings.admin_token.get())
        else:
            await sign_in(client, f"u-{role}")
        assert (await client.get("/console/dashboard", headers=HTML)).status == 200  # every role
        for family, paths in PAGES.items():
            for path in paths:
                resp = await client.get(path, headers=HTML, allow_redirects=False)
                expected = 200 if role in (family, "admin") else 403
                assert resp.status == expected, (role, path, resp.status)
                if expected == 403:
                    assert "您的角色无权使用此页面" in await resp.text()


async def test_landing_page_per_role_and_wrong_role_post(client: TestClient, catalog: Runtime) -> None:
    await staff_accounts.create_staff(catalog, "mk", PASSWORD, ["marketer"])
    resp = await client.post("/console/login", data={"username": "mk", "password": PASSWORD, "next": ""}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/coupons"
    page = await (await client.get("/console/coupons", headers=HTML)).text()
    assert "mk（营销）" in page
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    resp = await client.post("/console/stock/receive", data={"csrf_token": token, "sku": "WATER-550", "qty": "5"}, allow_redirects=False)
    assert resp.status == 403  # a valid session and token, the wrong role: nothing happens
    wrong = await client.post("/console/login", data={"username": "mk", "password": "nope-nope"}, allow_redirects=False)
    assert wrong.status == 401 and "用户名或密码不正确" in await wrong.text()


async def test_deactivation_password_and_role_changes_revoke_sessions(client: TestClient, catalog: Runtime) -> None:
    user = await staff_accounts.create_staff(catalog, "mk", PASSWORD, ["marketer"])
    await sign_in(client, "mk")
    assert (await client.get("/console/coupons", allow_redirects=False)).status == 200

    await staff_accounts.update_staff(catalog, user.id, roles=["marketer", "finance"])  # role change: sign in again
    assert (await client.get("/console/coupons", allow_redirects=False)).status == 401
    await sign_in(client, "mk")
    assert (await client.get("/console/finance/receivables", allow_redirects=False)).status == 200

    await staff_accounts.update_staff(catalog, user.id, password="a new password 2")
    resp = await client.get("/console/coupons", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert auth.SESSION_COOKIE in resp.cookies and not resp.cookies[auth.SESSION_COOKIE].value  # dead cookie dropped
    await sign_in(client, "mk", "a new password 2")

    await staff_accounts.deactivate_staff(catalog, user.id)
    assert (await client.get("/console/coupons", allow_redirects=False)).status == 401
    resp = await client.post("/console/login", data={"username": "mk", "password": "a new password 2"}, allow_redirects=False)
    assert resp.status == 401


async def test_admin_manages_staff_through_the_pages(client: TestClient, catalog: Runtime) -> None:
    token = await sign_in(client, "admin", catalog.settings.admin_token.get())
    form = {"csrf_token": token, "username": "zhang", "display_name": "<b>张</b>", "password": PASSWORD, "role": ["operations"]}
    data = [(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])]
    resp = await client.post("/console/staff", data=data, headers=HTML)
    text = await resp.text()
    assert "已添加员工 zhang（运营）" in flash(text) and "&lt;b&gt;张&lt;/b&gt;" in text
    uid = (await staff_accounts.list_staff(catalog))[0].id
    # no CSRF token: refused
    assert (await client.post(f"/console/staff/{uid}/deactivate", data={}, allow_redirects=False)).status == 403
    resp = await client.post(f"/console/staff/{uid}/deactivate", data={"csrf_token": token}, headers=HTML)
    assert resp.status == 200 and not (await staff_accounts.get_staff(catalog, uid)).active
    detail = await resp.text()
    assert "已停用 zhang" in flash(detail)


# ---- the marketer's pages ------------------------------------------------------------------------------------
async def test_coupon_form_issue_and_stats(client: TestClient, catalog: Runtime) -> None:
    await staff_accounts.create_staff(catalog, "mk", PASSWORD, ["marketer"])
    token = await sign_in(client, "mk")
    form = {"name": "双十二满减", "kind": "fixed", "threshold": "100", "amount_off": "10", "budget_count": "1", "per_customer_limit": "1"}
    assert (await client.post("/console/coupons", data=form, allow_redirects=False)).status == 403  # CSRF still enforced
    resp = await client.post("/console/coupons", data={**form, "csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and re.fullmatch(r"/console/coupons/\d+", resp.headers["Location"])
    tpl = (await coupons.list_templates(catalog))[0]
    assert (tpl.rule.threshold_fen, tpl.rule.amount_off_fen, tpl.budget.budget_count, tpl.rule.label) == (10000, 1000, 1, "满100减10")

    first, second = await make_customer(catalog, "wmA"), await make_customer(catalog, "wmB")
    back = f"/console/coupons/{tpl.id}"
    page = await (await client.post(back + "/issue", data={"csrf_token": token, "customer_id": str(first)}, headers=HTML)).text()
    assert f"已发给客户 #{first}" in flash(page)
    assert re.search(r"<td>发放</td><td class=\"num\">1</td><td>¥10.00</td>", page)
    assert "1/1 张" in page
    page = await (await client.post(back + "/issue", data={"csrf_token": token, "customer_id": str(second)}, headers=HTML)).text()
    assert "预算已用完" in flash(page)  # budget of 1: the second is refused, nothing spent
    listing = await (await client.get("/console/coupons", headers=HTML)).text()
    assert "满100减10" in listing and "双十二满减" in listing

    bad = {**form, "csrf_token": token, "kind": "percent", "percent_off": "10", "amount_off": ""}
    await client.post("/console/coupons", data=bad)  # percent without a cap
    async with catalog.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(coupon_templates))).scalar_one() == 1


async def test_referral_campaign_pages(client: TestClient, catalog: Runtime, clock: FrozenClock) -> None:
    """The form picks salespeople and groups by name (checkboxes of the synced members and groups); the pages show
    them by name."""
    tpl = await coupons.create_template(catalog, console_campaigns_coupon_pages.terms_from_form({"name": "邀请奖励", "amount_off": "5"}))
    await staff_accounts.create_staff(catalog, "mk", PASSWORD, ["marketer"])
    async with catalog.db.write() as conn:
        await upsert_salesperson(conn, catalog.db.dialect, "zhangsan", clock.now(), name="张三", active=True)
        await upsert_salesperson(conn, catalog.db.dialect, "lisi", clock.now(), name="李四", active=True)
        for chat_id, name in (("wrVipGroup1", "VIP 一群"), ("wrVipGroup2", "VIP 二群")):
            await ensure_group(conn, catalog.db.dialect, chat_id, clock.now())
            await conn.execute(groups.update().where(groups.c.chat_id == chat_id).values(name=name))
    token = await sign_in(client, "mk")
    listing = await (await client.get("/console/campaigns", headers=HTML)).text()
    assert '<input type="checkbox" name="userids" value="zhangsan"> 张三' in listing
    assert '<input type="checkbox" name="chat_ids" value="wrVipGroup2"> VIP 二群' in listing
    assert 'name="userids" maxlength' not in listing  # no raw userid text box any more
    form = {
        "csrf_token": token,
        "name": "<i>老带新</i>",
        "goal": "3",
        "reward_template_id": str(tpl.id),
        "hold_hours": "24",
        "starts_at": "2026-11-23T10:00",
        "ends_at": "2026-12-23",
        "start_now": "1",
    }
    picked = MultiDict([*form.items(), ("userids", "zhangsan"), ("userids", "lisi")])
    resp = await client.post("/console/campaigns", data=picked, allow_redirects=False)
    assert resp.status == 303 and re.fullmatch(r"/console/campaigns/\d+", resp.headers["Location"])
    detail = resp.headers["Location"]
    page = await (await client.get(detail, headers=HTML)).text()
    assert "&lt;i&gt;老带新&lt;/i&gt;" in page and "<i>老带新" not in page
    assert "进行中" in page and "<svg" in page and "发放邀请码" in page and "还没有人邀请好友" in page
    assert "承接成员 李四、张三" in page
    assert "邀请记录（共 0 条）" in page and "还没有好友通过邀请码添加" in page
    page = await (await client.post(detail + "/status?to=paused", data={"csrf_token": token}, headers=HTML)).text()
    assert "已暂停" in flash(page) and "启动 / 恢复" in page
    listing = await (await client.get("/console/campaigns", headers=HTML)).text()
    assert "已暂停" in listing

    page = await (await client.post("/console/campaigns", data=form, headers=HTML)).text()
    assert "请至少选择一位承接成员" in flash(page)
    group = {**form, "name": "拉好友进群", "kind": "group"}
    picked = MultiDict([*group.items(), ("chat_ids", "wrVipGroup1"), ("chat_ids", "wrVipGroup2")])
    resp = await client.post("/console/campaigns", data=picked, allow_redirects=False)
    assert resp.status == 303 and re.fullmatch(r"/console/campaigns/\d+", resp.headers["Location"])
    page = await (await client.get(resp.headers["Location"], headers=HTML)).text()
    assert "入群：VIP 一群、VIP 二群" in page
    page = await (await client.post("/console/campaigns", data=group, headers=HTML)).text()
    assert "群裂变需要选择 1 到 5 个客户群" in flash(page)

    # A draft's edit form picks its salespeople the same way (ticked: the campaign's own).
    draft = await referral_services.create_campaign(
        catalog,
        {
            "name": "草稿",
            "goal": 3,
            "reward_template_id": tpl.id,
            "userids": ["lisi"],
            "starts_at": clock.now(),
            "ends_at": clock.now() + dt.timedelta(days=7),
        },
    )
    page = await (await client.get(f"/console/campaigns/{draft.id}", headers=HTML)).text()
    assert '<input type="checkbox" name="userids" value="lisi" checked> 李四' in page
    assert '<input type="checkbox" name="userids" value="zhangsan"> 张三' in page
    edit = {k: v for k, v in form.items() if k != "start_now"} | {"name": "草稿", "action": "save"}
    resp = await client.post(
        f"/console/campaigns/{draft.id}/edit", data=MultiDict([*edit.items(), ("userids", "zhangsan")]), allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    async with catalog.db.read() as conn:
        assert (await referral_services.get_campaign(conn, draft.id)).userids == ["zhangsan"]
    refused = await client.post(f"/console/campaigns/{draft.id}/edit", data=edit, headers=HTML)
    assert refused.status == 400 and "userids 需为 1 到 100 个成员账号" in flash(await refused.text())
