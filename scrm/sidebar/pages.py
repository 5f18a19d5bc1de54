"""The sidebar's server-rendered pages: Jinja2 templates under ``templates/`` (one layout, ``base.html``), rendered
by an Environment that :func:`scrm.sidebar.web.setup_routes` creates when the app is built and keeps under
:data:`TEMPLATES`. Autoescaping is on and undefined names fail, so a handler hands a typed page value (below) and
never HTML; every page leaves with the sidebar's CSP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jinja2
from aiohttp import web

from config import Settings
from scrm.core.http.keys import SETTINGS

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
SANDBOX_SDK = "jwxwork-sandbox.js"  # the local stand-in for WeCom's JS-SDK, served in sandbox mode only
SDK_HOSTS = "https://res.wx.qq.com https://open.work.weixin.qq.com"  # where sidebar.html loads the real JS-SDK from

TEMPLATES = web.AppKey("sidebar_templates", jinja2.Environment)


@dataclass(frozen=True, slots=True)
class SidebarPage:
    """The page shell that sidebar.js fills in: in sandbox mode it loads the local JS-SDK stand-in."""

    template: ClassVar[str] = "sidebar.html"
    sandbox: bool
    sandbox_sdk: str = SANDBOX_SDK


@dataclass(frozen=True, slots=True)
class NoticePage:
    """A sign-in outcome: a title and one line of explanation (the sidebar is a browser page, not an API client)."""

    template: ClassVar[str] = "notice.html"
    title: str
    message: str


Page = SidebarPage | NoticePage


def environment() -> jinja2.Environment:
    """The sidebar's own small Environment (created at app start, not at import)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def security_headers(settings: Settings) -> dict[str, str]:
    # No frame-ancestors/X-Frame-Options: WeCom's clients host the page and how they embed it is theirs to choose.
    scripts = "'self'" if settings.is_sandbox else f"'self' {SDK_HOSTS}"
    return {
        "Content-Security-Policy": f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' https: data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(request: web.Request, page: Page, *, status: int = 200) -> web.Response:
    """``page``'s template as an HTML response with the sidebar's security headers."""
    text = request.app[TEMPLATES].get_template(page.template).render(page=page)
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=security_headers(request.app[SETTINGS])
    )
