"""Waiting for the stack to settle, then the invariants of issue 8 checked against the database and against what
the emulated WeCom received.

* every accepted message stored once: one inbound row per distinct accepted callback / kf message, none left
  unprocessed;
* every order exactly once: one order per customer who confirmed, confirmed, ``source_ref`` unique;
* stock counters equal the ledger (``fulfillment.inventory.services.reconcile``), allocated ≤ on hand, and allocated equals
  what the orders' lines hold;
* every notice sent exactly once or recorded as failed / skipped with a reason: no outbound message left pending;
  each kf message the product recorded as sent reached WeCom once (msgid = its idempotency key); no app message
  or welcome message reached WeCom twice; nothing reached WeCom that the product does not know it sent;
* no outbox row stuck (pending) or failed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import sqlalchemy as sa

from bots.gateway.domain import normalize_wecom
from bots.gateway.xmlparse import parse_xml
from scrm.core.db import Database
from scrm.core.ids import digest_key
from tests.fault.driver import LoadReport

SETTLED_OUTBOUND = ("sent", "skipped", "failed", "awaiting_salesperson")
TRANSIENT = {-1, 45009, 45033}


async def _scalar(db: Database, sql: str, **params: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text(sql), params)).scalar_one() or 0)


async def pending_work(db: Database) -> dict[str, int]:
    return {
        "inbound_pending": await _scalar(db, "SELECT count(*) FROM inbound_events WHERE status = 'pending'"),
        "outbox_pending": await _scalar(db, "SELECT count(*) FROM outbox WHERE done_at IS NULL AND failed_at IS NULL"),
        "outbound_pending": await _scalar(db, "SELECT count(*) FROM outbound_messages WHERE status = 'pending'"),
        "kf_unsynced": await _scalar(db, "SELECT count(*) FROM kf_cursors WHERE request_seq > synced_seq"),
    }


async def wait_settled(db: Database, within: float, *, quiet_for: float = 2.0) -> dict[str, int]:
    """Wait until nothing is pending and it stays so for ``quiet_for`` seconds; returns the last counts."""
    deadline = time.monotonic() + within
    quiet_since: float | None = None
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            counts = await pending_work(db)
        except Exception:  # the database may still be coming back
            counts = {"database_unreachable": 1}
        if counts and not any(counts.values()):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_for:
                return counts
        else:
            quiet_since = None
        await asyncio.sleep(0.5)
    return counts


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)


async def traffic(session: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    async with session.get(f"{base_url}/sandbox/api/traffic") as resp:
        return dict(await resp.json())


async def check_invariants(db: Database, report: LoadReport, sent: dict[str, Any]) -> Findings:
    f = Findings()
    async with db.read() as conn:

        async def rows(sql: str, **params: Any) -> list[Any]:
            return list((await conn.execute(sa.text(sql), params)).all())

        # ---- every accepted message stored once ------------------------------------------------------
        inbound = await rows("SELECT channel, dedupe_key, kind, status, external_userid FROM inbound_events")
        keys = Counter((r.channel, r.dedupe_key) for r in inbound)
        f.check(all(n == 1 for n in keys.values()), f"inbound stored twice: {[k for k, n in keys.items() if n > 1][:5]}")
        stored = set(keys)
        accepted = [cb for cb in report.callbacks if cb.accepted]
        f.facts["callbacks_accepted"] = len(accepted)
        f.facts["callbacks_refused"] = [cb.statuses for cb in report.callbacks if not cb.accepted][:5]
        for cb in accepted:
            item = normalize_wecom(parse_xml(cb.xml), cb.xml, dt_now())
            f.check((item.channel, item.dedupe_key) in stored, f"accepted callback not stored: {item.dedupe_key}")
        contact_rows = [r for r in inbound if r.kind == "change_external_contact.add_external_contact"]
        f.check(
            len(contact_rows) == sum(1 for cb in accepted if cb.kind == "contact"),
            f"{len(contact_rows)} add_external_contact rows for {sum(1 for cb in accepted if cb.kind == 'contact')} accepted events",
        )
        notices = sum(1 for r in inbound if r.kind == "kf_msg_or_event")
        accepted_notices = sum(1 for cb in accepted if cb.kind == "kf")
        f.check(notices == accepted_notices, f"{notices} kf_msg_or_event rows for {accepted_notices} accepted notices")
        written = [m for run in report.customers for m in (run.order_msgid, run.confirm_msgid) if m]
        texts = sum(1 for r in inbound if r.kind == "kf.customer.text")
        f.check(texts == len(written), f"{texts} kf customer messages stored for {len(written)} written")
        kf_ids = {r.dedupe_key.removeprefix("kfmsg:") for r in inbound if r.channel == "kf"}
        for run in report.customers:
            for msgid in (run.order_msgid, run.confirm_msgid):
                if msgid:
                    f.check(msgid in kf_ids, f"kf message {msgid} of {run.external_userid} never stored")
        stuck = [(r.channel, r.kind) for r in inbound if r.status == "pending"]
        f.check(not stuck, f"inbound events left unprocessed: {stuck[:5]}")

        # ---- every order exactly once ---------------------------------------------------------------
        orders = await rows(
            "SELECT o.id, o.status, o.source_ref, i.value AS external_userid FROM orders o "
            "JOIN customer_identities i ON i.customer_id = o.customer_id AND i.kind = 'external_userid'"
        )
        refs = Counter(o.source_ref for o in orders if o.source_ref)
        f.check(all(n == 1 for n in refs.values()), f"source_ref used twice: {[r for r, n in refs.items() if n > 1][:5]}")
        by_customer = Counter(o.external_userid for o in orders)
        confirmed = [run for run in report.customers if run.confirmed]
        f.facts["orders_confirmed_by_customers"] = len(confirmed)
        f.facts["customers_without_prompt"] = [run.external_userid for run in report.customers if not run.prompted]
        for run in report.customers:
            n = by_customer.get(run.external_userid, 0)
            f.check(n <= 1, f"{run.external_userid} has {n} orders")
        for run in confirmed:
            states = [o.status for o in orders if o.external_userid == run.external_userid]
            f.check(states == ["confirmed"], f"{run.external_userid} confirmed once, orders: {states}")

        # ---- stock counters equal the ledger ----------------------------------------------------------
        from fulfillment.inventory.services import reconcile

        drifts = await reconcile(conn)
        f.check(not drifts, f"stock counters differ from the ledger: {drifts[:5]}")
        over = await rows("SELECT product_id, on_hand, allocated FROM stock_levels WHERE allocated > on_hand OR allocated < 0")
        f.check(not over, f"allocated > on hand: {over[:5]}")
        held = {
            int(r.product_id): int(r.qty)
            for r in await rows(
                "SELECT l.product_id, sum(l.allocated_qty) AS qty FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "WHERE o.status IN ('confirmed', 'partially_shipped') GROUP BY l.product_id"
            )
        }
        levels = {
            int(r.product_id): int(r.allocated)
            for r in await rows("SELECT product_id, sum(allocated) AS allocated FROM stock_levels GROUP BY product_id")
        }
        for pid in set(held) | set(levels):
            f.check(
                held.get(pid, 0) == levels.get(pid, 0), f"product {pid}: orders hold {held.get(pid, 0)}, counters say {levels.get(pid, 0)}"
            )

        # ---- every notice sent exactly once or recorded as failed with a reason --------------------------
        outbound = await rows("SELECT id, idempotency_key, channel, status, error_code, error_message, payload FROM outbound_messages")
        f.facts["outbound"] = dict(Counter(f"{r.channel}:{r.status}" for r in outbound))
        attempts = await rows("SELECT api_path, outcome, error_code FROM outbound_attempts")
        f.facts["attempts"] = dict(Counter(f"{a.api_path}:{a.outcome}:{a.error_code}" for a in attempts))
        f.facts["wecom_received"] = {k: len(v) for k, v in sent.items() if isinstance(v, list)}
        for r in outbound:
            f.check(r.status in SETTLED_OUTBOUND, f"outbound {r.id} ({r.channel}) left {r.status}: {r.error_message}")
            if r.status in ("failed", "skipped"):
                f.check(bool(r.error_message or r.error_code), f"outbound {r.id} ({r.channel}) {r.status} without a reason")
            if r.status == "failed":
                # -1 (busy) and 45009/45033 (limits) say "later", not "never" (docs/wecom.md §5).
                f.check(r.error_code not in TRANSIENT, f"outbound {r.id} ({r.channel}) given up on transient errcode {r.error_code}")
        kf_sent = Counter(m["msgid"] for m in sent["kf_sent"])
        kf_ours = {digest_key(r.idempotency_key): r for r in outbound if r.channel == "kf"}
        for r in outbound:
            if r.channel == "kf" and r.status == "sent":
                f.check(
                    kf_sent.get(digest_key(r.idempotency_key), 0) == 1,
                    f"kf message {r.id} recorded sent but WeCom has it {kf_sent.get(digest_key(r.idempotency_key), 0)}×",
                )
        strays = [m for m in kf_sent if m not in kf_ours]
        f.check(not strays, f"kf messages WeCom received that the product has no record of: {strays[:5]}")
        unrecorded = [m for m in sent["kf_sent"] if m["msgid"] in kf_ours and kf_ours[m["msgid"]].status != "sent"]
        f.check(not unrecorded, f"kf messages delivered but recorded {[kf_ours[m['msgid']].status for m in unrecorded][:5]}")
        app = Counter((tuple(m["touser"]), m["content"]) for m in sent["app_messages"])
        f.check(all(n == 1 for n in app.values()), f"app messages delivered twice: {[k for k, n in app.items() if n > 1][:3]}")
        for r in outbound:
            if r.channel == "wecom_app":
                payload = r.payload if isinstance(r.payload, dict) else {}
                key = (tuple(str(payload.get("touser", "")).split("|")), str((payload.get("text") or {}).get("content", "")))
                n = app.get(key, 0)
                if r.status == "sent":
                    f.check(n == 1, f"app message {r.id} recorded sent, WeCom has it {n}×")
                else:
                    f.check(n <= 1, f"app message {r.id} ({r.status}) reached WeCom {n}×")
        welcome = Counter(m["welcome_code"] for m in sent["welcome_messages"])
        f.check(all(n == 1 for n in welcome.values()), "a welcome code used twice")
        welcome_sent = sum(1 for r in outbound if r.channel == "welcome" and r.status == "sent")
        f.check(welcome_sent <= len(welcome), f"{welcome_sent} welcome messages recorded sent, WeCom got {len(welcome)}")

        # ---- no outbox row stuck --------------------------------------------------------------------
        outbox_left = await rows("SELECT id, topic, attempts, last_error, failed_at FROM outbox WHERE done_at IS NULL")
        f.check(not outbox_left, f"outbox rows not done: {[(r.topic, r.failed_at is not None, r.last_error) for r in outbox_left][:5]}")
    return f


def dt_now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)
