"""Invoices, payments, receivables (应收账款), dunning and credit limits."""
