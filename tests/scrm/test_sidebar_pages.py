"""The sidebar's templates: autoescaped, undefined names fail, and the JS-SDK block follows the sandbox switch."""

from __future__ import annotations

import jinja2
import pytest

from scrm.sidebar.pages import NoticePage, SidebarPage, environment


def test_notice_page_escapes_what_it_is_given() -> None:
    html = environment().get_template(NoticePage.template).render(page=NoticePage(title="<b>无法登录</b>", message="a & <i>b</i>"))
    assert '<h1 id="notice-title">&lt;b&gt;无法登录&lt;/b&gt;</h1>' in html
    assert '<p id="notice-text">a &amp; &lt;i&gt;b&lt;/i&gt;</p>' in html
    assert "<title>&lt;b&gt;无法登录&lt;/b&gt;</title>" in html


def test_sidebar_page_loads_the_real_sdk_or_the_sandbox_stand_in() -> None:
    template = environment().get_template(SidebarPage.template)
    real, sandbox = template.render(page=SidebarPage(sandbox=False)), template.render(page=SidebarPage(sandbox=True))
    assert "https://res.wx.qq.com/open/js/jweixin-1.2.0.js" in real and "jwxwork-sandbox.js" not in real
    assert '<script src="/sidebar/static/jwxwork-sandbox.js"></script>' in sandbox and "res.wx.qq.com" not in sandbox
    assert real.count('id="customer-name"') == sandbox.count('id="customer-name"') == 1


def test_a_missing_value_fails_instead_of_rendering_empty() -> None:
    with pytest.raises(jinja2.UndefinedError):
        environment().get_template(NoticePage.template).render()
