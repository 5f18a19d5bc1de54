"""The kernel: database, migrations glue, outbox and relay, jobs, clock, money, errors, ids.

Imports only ``config`` and libraries, never a feature package.
"""
