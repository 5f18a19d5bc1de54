"""Codes shown to staff in Chinese: one mapping (scrm/console/labels.py) used by every console template."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fulfillment.orders import services as orders
from scrm.app.webapp import create_app
from scrm.console import labels
from scrm.console.pages import TEMPLATE_DIR
from scrm.core.runtime import Runtime
from tests.conftest import make_customer
from tests.scrm.test_console import HTML, login

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client(catalog: Runtime) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(catalog.settings, runtime=catalog))) as c:
        yield c


async def test_order_page_shows_source_actor_and_events_in_chinese(client: TestClient, catalog: Runtime) -> None:
    cid = await make_customer(catalog, "wmLabels")
    order = await orders.create_order(catalog, customer_id=cid, items=[("WATER-550", 1)], source="chat", actor="customer", confirm=True)
    await login(client, catalog)
    text = await (await client.get(f"/console/orders/{order.number}", headers=HTML)).text()
    assert "客户聊天下单" in text and "客户本人" in text and "<td>创建</td>" in text and "<td>确认</td>" in text
    assert not re.search(r"<td>(chat|customer|created|confirmed)</td>", text)


@pytest.mark.parametrize(
    ("actor", "shown"),
    [
        ("customer", "客户本人"),
        ("system", "系统"),
        ("console:li", "控制台 li"),
        ("segment:run-1", "客群规则 run-1"),
        ("sales01", "销售 sales01"),
    ],
)
def test_actor_label(actor: str, shown: str) -> None:
    assert labels.actor_label(actor) == shown


def test_every_code_the_services_write_has_a_label() -> None:
    # order sources as placed by chat, the sidebar, the API, the console, a quote accepted, and the history events the services record
    for source in ("chat", "sidebar", "api", "console", "quote"):
        assert labels.label(source, "order_source") != source
    sources = ROOT.joinpath("fulfillment/orders/services.py").read_text() + ROOT.joinpath("fulfillment/orders/shipments.py").read_text()
    written = set(re.findall(r'now, "([a-z_]+)", actor', sources)) | set(re.findall(r'S\.[A-Z_]+, "([a-z_]+)", now', sources))
    assert written and all(labels.label(e, "order_event") != e for e in written), written
    assert labels.label("unknown_code", "order_event") == "unknown_code" and labels.label(None, "order_source") == "—"


def test_templates_use_the_label_filters_not_their_own_dicts() -> None:
    for path in TEMPLATE_DIR.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(event|source|shipment_status)_zh\.get\(", text), path
