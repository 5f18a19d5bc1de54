"""Pure catalog rules: a product line priced for an order, and the product-not-found error (stable code)."""

from __future__ import annotations

from dataclasses import dataclass

from scrm.core.errors import NotFound


class ProductNotFound(NotFound):
    code = "product_not_found"


@dataclass(frozen=True)
class PricedLine:
    product_id: int
    sku: str
    name: str
    unit: str
    qty: int
    unit_price_fen: int
    category: str = ""  # for discounts limited to categories
    reorder_point: int | None = None  # for the low-stock check after allocation

    @property
    def line_total_fen(self) -> int:
        return self.qty * self.unit_price_fen
