"""Fulfilment: catalog, inventory, orders, shipments, invoices, payments and chat order parsing."""
