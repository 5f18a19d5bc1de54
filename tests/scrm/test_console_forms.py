"""A refused console form comes back as the user left it, with the reason in Chinese next to the field
(scrm/console/form_echo.py); placeholders are hints, not values that look filled in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from scrm.app.webapp import create_app
from scrm.console.form_echo import FormEcho, kept_values, refill
from scrm.console.pages import TEMPLATE_DIR, staff_text
from scrm.core.http.signing import Signer
from scrm.core.runtime import Runtime
from tests.conftest import make_customer
from tests.scrm.test_finance_console import HTML, login

FORM = (
    '<form method="post" action="/console/x/save" class="row"><input type="hidden" name="csrf_token" value="T">'
    '<label>名称<input name="name" maxlength="20" placeholder="如：张三"></label>'
    '<label>金额<input name="amount" value="1.00"></label>'
    '<label>方式<select name="method"><option value="bank" selected>银行</option><option value="cash">现金</option></select></label>'
    '<label>说明<textarea name="note">旧</textarea></label><label><input type="checkbox" name="vip" value="1" checked>VIP</label>'
    '<button type="submit">保存</button></form>'
    '<form method="post" action="/console/other"><input name="name"></form>'
)


def test_refill_puts_the_values_back_and_marks_the_field() -> None:
    echo = FormEcho(
        "/console/x/save", {"name": '<b>"王"</b>', "amount": "abc", "method": "cash", "note": "新的\n说明"}, "amount", "金额不对"
    )
    page = refill(FORM, echo)
    first, other = page.split('<form method="post" action="/console/other">')
    assert 'name="name" maxlength="20" placeholder="如：张三" value="&lt;b&gt;&quot;王&quot;&lt;/b&gt;"' in first
    assert re.search(r'<input name="amount" value="abc" aria-invalid="true" aria-describedby="amount-error" class="invalid">'
                     r'<span class="field-error" id="amount-error">金额不对</span>', first)  # fmt: skip
    assert '<option value="bank">银行</option><option value="cash" selected>现金</option>' in first
    assert ">新的\n说明</textarea>" in first and 'value="T"' in first  # the token is never touched
    assert 'name="vip" value="1">' in first  # not submitted: unchecked, as the user left it
    assert other == '<input name="name"></form>'  # another form on the page keeps its own values


def test_staff_read_the_chinese_sentence_without_the_api_gloss() -> None:
    assert (
        staff_text("券类型只能是 fixed（满减）或 percent（折扣） (kind must be fixed or percent)")
        == "券类型只能是 fixed（满减）或 percent（折扣）"
    )
    assert staff_text("账期 (天) 不对") == "账期 (天) 不对"  # not a trailing English gloss
    assert staff_text("没有这个客户：wmX") == "没有这个客户：wmX"


def test_kept_values_leave_out_secrets_and_what_does_not_fit() -> None:
    kept = kept_values({"csrf_token": "t", "password": "p", "name": "张三", "rules": "规" * 5000})
    assert kept == {"name": "张三"}
    # the worst case still fits the signed flash cookie (Signer.unsign refuses more than 4096 characters)
    full = kept_values({f"f{k}": "字" * 120 for k in range(40)})
    signer = Signer("secret", "flash")
    token = signer.sign({"k": "err", "m": "错" * 300, "exp": 1, "form": FormEcho("/console/" + "x" * 200, full, "f1").to_payload()})
    assert full and len(token) < 4096 and signer.unsign(token) is not None


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_a_refused_payment_keeps_what_was_typed(client: TestClient, catalog: Runtime) -> None:
    await make_customer(catalog, "wmForm")
    csrf = await login(client, catalog)
    typed = {"customer": "wmForm", "amount": "12元", "reference": "BANK-778", "method": "cash", "note": "周五到账"}
    resp = await client.post("/console/finance/payments", data={"csrf_token": csrf, **typed}, headers=HTML)
    text = await resp.text()
    assert resp.status == 200
    assert "金额“12元”不是有效的金额：请填写以元为单位的数字，最多两位小数，如 1,234.50" in text
    assert re.search(r'name="customer"[^>]*value="wmForm"', text)  # the customer picker's field (markup of its own)
    assert 'name="reference" required maxlength="128" placeholder="银行流水号 / 微信支付单号" value="BANK-778"' in text
    assert '<option value="cash" selected>' in text and 'value="周五到账"' in text
    assert re.search(r'name="amount"[^>]*value="12元"[^>]*aria-invalid="true"[^>]*class="invalid"><span class="field-error"', text)
    # shown once: the next visit is a blank form again
    again = await (await client.get("/console/finance/payments", headers=HTML)).text()
    assert "BANK-778" not in again and "field-error" not in again
    # an unknown customer marks the customer field
    resp = await client.post("/console/finance/payments", data={"csrf_token": csrf, **typed, "customer": "wmNobody", "amount": "12"})
    text = await resp.text()
    assert re.search(
        r'name="customer"[^>]*value="wmNobody"[^>]*aria-invalid="true"[^>]*><span class="field-error" id="customer-error">没有这个客户',
        text,
    )


def test_placeholders_are_hints_and_console_messages_are_chinese() -> None:
    for path in TEMPLATE_DIR.rglob("*.html"):
        for hint in re.findall(r'placeholder="([^"]*)"', path.read_text(encoding="utf-8")):
            assert not re.fullmatch(r"[\d.,\s]+|顺丰", hint), (path, hint)  # a bare value reads as filled in
    console = Path(__file__).resolve().parents[2] / "scrm" / "console"
    for path in console.glob("*.py"):
        glosses = re.findall(r'"[^"\n]*[\u4e00-\u9fff][^"\n]* \([^"()\n]*[a-z]{3}[^"()\n]*\)"', path.read_text(encoding="utf-8"))
        assert not glosses, (path, glosses)  # no "中文 (english)" halves in what staff read


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_a_refused_coupon_says_why_beside_the_threshold(client: TestClient, catalog: Runtime) -> None:
    csrf = await login(client, catalog)
    typed = {"name": "双12 满减", "kind": "fixed", "threshold": "5", "amount_off": "10", "percent_off": ""}
    resp = await client.post("/console/coupons", data={"csrf_token": csrf, **typed}, headers=HTML)
    text = await resp.text()
    assert resp.status == 200 and "threshold below" not in text
    assert 'name="name" required maxlength="64" value="双12 满减"' in text and 'value="10"' in text
    assert re.search(
        r'name="threshold"[^>]*value="5"[^>]*aria-invalid="true"[^>]*>'
        r'<span class="field-error" id="threshold-error">使用门槛不能低于减免金额',
        text,
    )


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_a_domain_error_reaches_staff_in_chinese_only(client: TestClient, catalog: Runtime) -> None:
    csrf = await login(client, catalog)
    resp = await client.post("/console/coupons", data={"csrf_token": csrf, "name": "券", "kind": "bogus", "threshold": "5"}, headers=HTML)
    text = await resp.text()
    assert "券类型只能是 fixed（满减）或 percent（折扣）</div>" in text and "kind must be" not in text


def test_several_ticked_boxes_of_one_name_all_come_back() -> None:
    boxes = (
        '<form method="post" action="/console/campaigns">'
        '<label><input type="checkbox" name="userids" value="sales01"> 王销售</label>'
        '<label><input type="checkbox" name="userids" value="ops01"> 李运营</label>'
        '<label><input type="checkbox" name="userids" value="boss"> 老板</label>'
        '<input name="eligible_segment"></form>'
    )
    kept = kept_values({"userids": ["sales01", "ops01"], "eligible_segment": "tag:"})
    echo = FormEcho("/console/campaigns", kept, "eligible_segment", "错")
    page = refill(boxes, echo)
    assert 'value="sales01" checked>' in page and 'value="ops01" checked>' in page and 'value="boss">' in page
    payload = FormEcho.from_payload(echo.to_payload(), "错")  # through the flash cookie and back
    assert payload is not None and payload.values["userids"] == ["sales01", "ops01"]
