"""Low-stock alerts to operations over the sandbox WeCom (issue 15 item 6): a product with no reorder point that runs
out with customers waiting is alerted — once a business day — with the out-of-stock text."""

from __future__ import annotations

from fulfillment.orders import services as orders
from tests.conftest import SandboxHarness, make_customer


async def test_out_of_stock_and_backordered_alerts_operations_without_a_reorder_point(sandbox: SandboxHarness) -> None:
    rt = sandbox.rt
    sandbox.state.add_member("ops01", "运营")  # WeCom refuses app messages to unknown userids
    cid = await make_customer(rt, "wmOilAll")
    await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 12)], source="api", confirm=True)  # 10 on hand: 2 short
    await sandbox.settle()
    await orders.create_order(rt, customer_id=cid, items=[("OIL-5L", 1)], source="api", confirm=True)  # same day: no second alert
    await sandbox.settle()
    alerts = [m for m in sandbox.state.app_messages_to("ops01") if "预警" in m]
    assert alerts == ["【缺货预警】花生油 5L（OIL-5L）可用库存 0桶，缺货待补 2桶，请及时补货。"]
