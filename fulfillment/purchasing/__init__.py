"""Replenishment (进销存的“进”): suppliers, purchase orders, receiving."""
