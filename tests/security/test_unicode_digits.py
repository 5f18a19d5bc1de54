"""Digits that are not decimal digits: ``"²".isdecimal()`` is True but ``int("²")`` raises, so every
``raw.isdecimal() and int(raw)`` check let superscripts and circled numbers (², ①) through to a ValueError — a 500 on
the API, the console and the callbacks, an exception in the segment parser and in the chat dialogue. Found by the
OpenAPI fuzzer (GET /api/v1/segments/{id})."""

from __future__ import annotations

import pytest

from tagging.segments.syntax import SegmentSyntaxError, parse
from tests.conftest import SandboxHarness
from tests.security.conftest import HTML, App, console_login

pytestmark = pytest.mark.security

ODD = ["²", "①", "12³", "⑦⑧"]


async def test_odd_digits_in_ids_and_numbers_are_4xx(app: App) -> None:
    await console_login(app.client, app.settings)
    c = app.client
    for odd in ODD:
        for url, headers in (
            (f"/api/v1/segments/{odd}", app.bearer()),
            (f"/api/v1/coupon-templates/{odd}", app.bearer()),
            (f"/api/v1/broadcasts/{odd}", app.bearer()),
            (f"/api/v1/channel-codes/{odd}", app.bearer()),
            (f"/api/v1/inbound-events?limit={odd}", app.bearer()),
            (f"/api/v1/segments/1/customers?after={odd}", app.bearer()),
            (f"/console/orders?page={odd}", HTML),
            (f"/console/staff/{odd}", HTML),
            (f"/console/campaigns/{odd}", HTML),
            (f"/console/finance/imports/{odd}", HTML),
            (f"/callback/wecom?msg_signature=x&timestamp={odd}&nonce=1&echostr=x", {}),
        ):
            resp = await c.get(url, headers=headers, allow_redirects=False)
            assert resp.status < 500, (url, resp.status, await resp.text())


def test_odd_digits_in_a_segment_expression_are_a_syntax_error() -> None:
    for odd in ODD:
        for text in (f"orders >= {odd}", f"r = {odd}", f"last_active < {odd}d", f"spent > {odd}"):
            with pytest.raises(SegmentSyntaxError):
                parse(text)


async def test_odd_digits_in_chat_get_a_reply(sandbox: SandboxHarness) -> None:
    await sandbox.customer_says("wmOddDigits", "要3瓶酱油")  # ambiguous: the bot asks which one, by number
    for odd in ODD:
        await sandbox.customer_says("wmOddDigits", odd)
    replies = sandbox.replies("wmOddDigits")
    assert len(replies) >= 1 + len(ODD), replies
