"""Sales (销售): leads and the public pool, opportunities, quotes, follow-ups, handover and repurchase alerts.

The chain 线索 → 商机 → 报价 → 订单 → 回款 ends in fulfilment (a quote accepted is an order placed through the same
service as every other order; a handover moves open orders), so this package sits above ``fulfillment`` — unlike
``scrm.crm`` (customers, staff, tags), which fulfilment itself builds on.
"""
