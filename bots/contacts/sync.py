"""Initial and repair sync (``python run.py sync``): members, corp tags, every member's customers with their details
and tags, and customer groups with members — pulled from the WeCom API so a new install is not empty.

Steps run in order: members → tags → customers → groups. Each keeps a checkpoint in ``sync_checkpoints`` (its cursor
and done/total) written in the same transaction as the data of each page, and the row ``sync`` says whether a run
is under way: an interrupted run (rate limit, outage, Ctrl-C) resumes at the step and cursor it reached; after a
finished run the next one starts from scratch (a repair pass). Every write is an upsert through the same services
the event processors use, so running twice creates nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.contacts.models import sync_checkpoints
from bots.contacts.tags import corp_tag_ids, pull_corp_tags
from bots.outbound.client import WECOM_API, ApiError, ApiUnavailable, Errcode, RateLimited
from scrm.core.db import upsert
from scrm.core.runtime import Runtime
from scrm.crm.customers.models import FollowStatus, follows
from scrm.crm.groups.domain import parse_group_chat
from scrm.crm.groups.services import apply_snapshot
from scrm.crm.staff.models import salespeople
from scrm.crm.staff.services import apply_contact_details, end_follow, upsert_salesperson
from scrm.crm.tags.models import tags
from scrm.crm.tags.services import reconcile_wecom_tags

log = logging.getLogger(__name__)

STEPS = ("members", "tags", "customers", "groups")
RUN = "sync"  # the checkpoint row of the run as a whole
ENDED_BY_SYNC = "sync"  # a follow WeCom no longer lists; who ended it is unknown (its event was missed)
PAGE_LIMIT = 100  # batch/get_by_user allows 1..100 per page
Progress = Callable[[str, int, "int | None", str], None]  # (step, done, total, note)


class SyncInterrupted(Exception):
    """A step stopped on an API error; its checkpoint is kept and the next run resumes there."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"{step}: {cause}")
        self.step = step
        self.cause = cause


@dataclass
class Checkpoint:
    name: str
    state: dict[str, Any]
    status: str
    done: int = 0
    total: int | None = None


@dataclass
class SyncOptions:
    users_per_call: int = 100  # members per batch/get_by_user call (WeCom allows up to 100)
    use_batch: bool = True  # False: externalcontact/list + get per member (older permission sets)
    waits: int = 3  # how often to wait out a rate limit / outage before giving up (resumable)
    wait_seconds: float | None = None  # None: what WeCom asks (about 60 s)


class Sync:
    def __init__(self, rt: Runtime, options: SyncOptions, progress: Progress | None) -> None:
        self.rt = rt
        self.options = options
        self.progress = progress or (lambda *a: None)
        self.api = rt.get(WECOM_API)

    async def call(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """An API call that waits out rate limits and outages ``options.waits`` times, then raises."""
        for attempt in range(self.options.waits + 1):
            try:
                return await self.api.call(path, body, **kw)
            except (RateLimited, ApiUnavailable) as exc:
                if attempt == self.options.waits:
                    raise
                delay = self.options.wait_seconds if self.options.wait_seconds is not None else getattr(exc, "retry_after", 5.0)
                log.warning("sync waits for WeCom", extra={"path": path, "error": str(exc), "in_s": delay})
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def save(
        self, conn: AsyncConnection, cp: Checkpoint, *, status: str | None = None, error: str | None = None, fresh: bool = False
    ) -> None:
        """Write the checkpoint (in the caller's transaction, with the page it describes); ``fresh`` restarts its clock."""
        now = self.rt.clock.now()
        cp.status = status or cp.status
        values = {
            "name": cp.name,
            "state": cp.state,
            "status": cp.status,
            "done": cp.done,
            "total": cp.total,
            "started_at": now,
            "updated_at": now,
            "finished_at": now if cp.status == "done" else None,
            "error": error,
        }
        await conn.execute(
            upsert(
                sync_checkpoints, self.rt.db.dialect, ["name"], values, [k for k in values if k != "name" and (fresh or k != "started_at")]
            )
        )
        self.progress(cp.name, cp.done, cp.total, str(cp.state.get("note", "")))

    async def commit(self, cp: Checkpoint) -> None:
        async with self.rt.db.write() as conn:
            await self.save(conn, cp)

    # ---- members ---------------------------------------------------------------------------------------------
    async def members(self, cp: Checkpoint) -> None:
        """The directory (user/list from the root department) → salespeople with name, department, leader. An app
        that may not read the directory still gets the 客户联系 members (get_follow_user_list) as bare rows."""
        try:
            people = (await self.call("user/list", params={"department_id": "1", "fetch_child": "1"}, method="GET")).get("userlist") or []
        except ApiError as exc:
            if isinstance(exc, RateLimited) or exc.errcode == Errcode.BUSY:
                raise
            log.warning("user/list refused; storing the 客户联系 members only", extra={"errcode": exc.errcode})
            people = [{"userid": u} for u in await self.followers(from_directory=False)]
        cp.total, cp.done = len(people), 0
        async with self.rt.db.write() as conn:
            for p in people:
                fields: dict[str, Any] = {}
                if "name" in p:
                    fields.update(name=str(p["name"]), department=",".join(str(d) for d in p.get("department") or []))
                if "direct_leader" in p:
                    leaders = [str(u) for u in p.get("direct_leader") or [] if u and u != p["userid"]]
                    fields["leader_userid"] = leaders[0] if leaders else None
                if "status" in p:
                    fields["active"] = p["status"] == 1
                await upsert_salesperson(conn, self.rt.db.dialect, str(p["userid"]), self.rt.clock.now(), synced=bool(fields), **fields)
                cp.done += 1
            await self.save(conn, cp)

    async def followers(self, *, from_directory: bool = True) -> list[str]:
        """Members with the 客户联系 permission; if WeCom will not say, the active salespeople we know."""
        try:
            return [str(u) for u in (await self.call("externalcontact/get_follow_user_list", method="GET")).get("follow_user") or []]
        except ApiError as exc:
            if isinstance(exc, RateLimited) or exc.errcode == Errcode.BUSY or not from_directory:
                raise
        async with self.rt.db.read() as conn:
            q = sa.select(salespeople.c.userid).where(salespeople.c.active.is_(True)).order_by(salespeople.c.userid)
            return [r.userid for r in await conn.execute(q)]

    # ---- tags ------------------------------------------------------------------------------------------------
    async def tags(self, cp: Checkpoint) -> None:
        report = await pull_corp_tags(self.rt)
        async with self.rt.db.read() as conn:
            live = (
                await conn.execute(sa.select(sa.func.count()).where(tags.c.remote_id.is_not(None), tags.c.deleted_at.is_(None)))
            ).scalar()
        cp.done = cp.total = int(live or 0)
        cp.state = {"note": f"+{report.created} ~{report.updated} -{report.deleted}"}
        await self.commit(cp)

    # ---- customers -------------------------------------------------------------------------------------------
    async def customers(self, cp: Checkpoint) -> None:
        """Every 客户联系 member's customers (batch/get_by_user, paged by cursor), then a prune pass: follows WeCom
        no longer lists for a member are ended (their delete events were missed)."""
        st = cp.state
        if "userids" not in st:
            users = await self.followers()
            cp.state = st = {"userids": users, "batch": 0, "cursor": "", "contacts": 0, "prune": 0, "fallback": {}}
            cp.total, cp.done = len(users), 0
            await self.commit(cp)
        users, n = st["userids"], max(1, min(self.options.users_per_call, 100))
        while st["batch"] * n < len(users):
            chunk = users[st["batch"] * n : (st["batch"] + 1) * n]
            if self.options.use_batch and not st["fallback"]:
                try:
                    await self.customer_page(cp, chunk)
                    continue
                except ApiError as exc:
                    if st["cursor"] or exc.errcode != Errcode.NOT_AUTHORISED:
                        raise
                    log.warning("batch/get_by_user refused; listing customers one by one", extra={"errcode": exc.errcode})
            await self.customers_one_by_one(cp, chunk)
        while st["prune"] < len(users):
            await self.prune(cp, users[st["prune"]])

    async def customer_page(self, cp: Checkpoint, chunk: list[str]) -> None:
        st = cp.state
        body = {"userid_list": chunk, "cursor": st["cursor"], "limit": PAGE_LIMIT}
        page = await self.call("externalcontact/batch/get_by_user", body)
        items = [(i["external_contact"], i["follow_info"]) for i in page.get("external_contact_list") or []]
        await self.pull_unknown_tags([t for _, f in items for t in corp_tag_ids(f)])
        async with self.rt.db.write() as conn:
            for contact, follow in items:
                await self.apply_contact(conn, contact, [follow])
            st["contacts"] += len(items)
            st["cursor"] = str(page.get("next_cursor") or "")
            if not st["cursor"]:
                st["batch"] += 1
                cp.done += len(chunk)
            st["note"] = f"{st['contacts']} 位客户关系 contacts"
            await self.save(conn, cp)

    async def customers_one_by_one(self, cp: Checkpoint, chunk: list[str]) -> None:
        """Fallback: externalcontact/list per member, then externalcontact/get per customer (position kept)."""
        st = cp.state
        fb = st["fallback"] = st["fallback"] or {"user": 0, "offset": 0}
        while fb["user"] < len(chunk):
            userid = chunk[fb["user"]]
            ids = await self.listed(userid)
            for ext in ids[fb["offset"] :]:
                try:
                    data = await self.call("externalcontact/get", params={"external_userid": ext}, method="GET")
                except ApiError as exc:
                    if exc.errcode != Errcode.NOT_EXTERNAL_CONTACT:
                        raise
                    data = None  # deleted between list and get
                if data:
                    await self.pull_unknown_tags([t for f in data.get("follow_user") or [] for t in corp_tag_ids(f)])
                async with self.rt.db.write() as conn:
                    if data:
                        await self.apply_contact(conn, data["external_contact"], list(data.get("follow_user") or []))
                    fb["offset"] += 1
                    st["contacts"] += 1
                    await self.save(conn, cp)
            fb.update(user=fb["user"] + 1, offset=0)
            cp.done += 1
            await self.commit(cp)
        st.update(fallback={}, batch=st["batch"] + 1, cursor="")
        await self.commit(cp)

    async def listed(self, userid: str) -> list[str]:
        try:
            data = await self.call("externalcontact/list", params={"userid": userid}, method="GET")
        except ApiError as exc:
            if exc.errcode == Errcode.NOT_EXTERNAL_CONTACT:
                return []  # WeCom answers 84061 for a member without customers
            raise
        return [str(e) for e in data.get("external_userid") or []]

    async def apply_contact(self, conn: AsyncConnection, contact: dict[str, Any], follow_users: list[dict[str, Any]]) -> None:
        now, dialect = self.rt.clock.now(), self.rt.db.dialect
        applied = await apply_contact_details(conn, dialect, contact, follow_users, now)
        for f in follow_users:
            if f.get("userid"):
                await reconcile_wecom_tags(
                    conn, dialect, customer_id=applied.customer_id, userid=str(f["userid"]), remote_tag_ids=corp_tag_ids(f), now=now
                )

    async def pull_unknown_tags(self, remote_ids: list[str]) -> None:
        """Tags made in WeCom since the tags step: mirror them before the page that uses them."""
        if not remote_ids:
            return
        async with self.rt.db.read() as conn:
            known = {r.remote_id for r in await conn.execute(sa.select(tags.c.remote_id).where(tags.c.remote_id.in_(set(remote_ids))))}
        if unknown := set(remote_ids) - known:
            await pull_corp_tags(self.rt, tag_ids=unknown)

    async def prune(self, cp: Checkpoint, userid: str) -> None:
        listed_at = self.rt.clock.now()
        listed = set(await self.listed(userid))
        async with self.rt.db.write() as conn:
            # Only follows unchanged since before the listing: one an add event wrote meanwhile is not stale.
            stale = await conn.execute(
                sa.select(follows.c.customer_id, follows.c.external_userid).where(
                    follows.c.userid == userid, follows.c.status != FollowStatus.ENDED, follows.c.updated_at < listed_at
                )
            )
            for row in stale.all():
                if row.external_userid in listed:
                    continue
                cid, ext, dialect = int(row.customer_id), str(row.external_userid), self.rt.db.dialect
                await end_follow(
                    conn, dialect, customer_id=cid, userid=userid, external_userid=ext, ended_by=ENDED_BY_SYNC, at=listed_at, now=listed_at
                )
                await reconcile_wecom_tags(conn, dialect, customer_id=cid, userid=userid, remote_tag_ids=[], now=listed_at)
            cp.state["prune"] += 1
            await self.save(conn, cp)

    # ---- groups ----------------------------------------------------------------------------------------------
    async def groups(self, cp: Checkpoint) -> None:
        """groupchat/list (all pages) → the chat ids, then groupchat/get for each → group, members, names."""
        st = cp.state
        if "chat_ids" not in st or st.get("listing"):
            st.setdefault("chat_ids", [])
            st.update(listing=True, index=0)
            while True:
                body = {"status_filter": 0, "limit": 1000, "cursor": st.get("cursor", "")}
                page = await self.call("externalcontact/groupchat/list", body)
                st["chat_ids"] = list(dict.fromkeys([*st["chat_ids"], *(str(g["chat_id"]) for g in page.get("group_chat_list") or [])]))
                st["cursor"] = str(page.get("next_cursor") or "")
                st["listing"] = bool(st["cursor"])
                cp.total = len(st["chat_ids"])
                await self.commit(cp)
                if not st["listing"]:
                    break
        while st["index"] < len(st["chat_ids"]):
            chat_id = st["chat_ids"][st["index"]]
            try:
                data = (await self.call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1}))["group_chat"]
            except ApiError as exc:
                if exc.errcode != Errcode.INVALID_CHAT_ID:
                    raise
                data = None  # dismissed since it was listed
            async with self.rt.db.write() as conn:
                if data:
                    await apply_snapshot(conn, self.rt.db.dialect, parse_group_chat(data), self.rt.clock.now(), reconcile=True)
                st["index"] += 1
                cp.done = st["index"]
                await self.save(conn, cp)

    # ---- the run -----------------------------------------------------------------------------------------------
    async def load(self, name: str) -> Checkpoint | None:
        async with self.rt.db.read() as conn:
            row = (await conn.execute(sa.select(sync_checkpoints).where(sync_checkpoints.c.name == name))).first()
        return Checkpoint(name, dict(row.state), row.status, int(row.done), row.total) if row else None

    async def run(self, steps: tuple[str, ...], *, restart: bool = False) -> dict[str, Checkpoint]:
        whole = steps == STEPS
        run = await self.load(RUN) if whole else None
        saved = {name: await self.load(name) for name in steps}
        resuming = not restart and (
            (run is not None and run.status != "done") if whole else any(cp is not None and cp.status != "done" for cp in saved.values())
        )
        out: dict[str, Checkpoint] = {}
        async with self.rt.db.write() as conn:
            for name in steps:
                cp = saved[name]
                out[name] = cp if resuming and cp is not None else Checkpoint(name, {}, "pending")
                await self.save(conn, out[name], fresh=out[name] is not cp)
            if whole:
                await self.save(conn, Checkpoint(RUN, {"steps": list(steps)}, "running"), fresh=not resuming)
        for name in steps:
            cp = out[name]
            if cp.status == "done":
                continue
            try:
                await self.mark(cp, "running")
                await getattr(self, name)(cp)
            except (ApiError, ApiUnavailable) as exc:
                await self.mark(cp, "failed", f"{type(exc).__name__}: {exc}")
                raise SyncInterrupted(name, exc) from exc
            await self.mark(cp, "done")
        if whole:
            async with self.rt.db.write() as conn:
                await self.save(conn, Checkpoint(RUN, {"steps": list(steps)}, "done"))
        return out

    async def mark(self, cp: Checkpoint, status: str, error: str | None = None) -> None:
        async with self.rt.db.write() as conn:
            await self.save(conn, cp, status=status, error=error)


async def run_sync(
    rt: Runtime,
    *,
    steps: tuple[str, ...] = STEPS,
    progress: Progress | None = None,
    options: SyncOptions | None = None,
    restart: bool = False,
) -> dict[str, Checkpoint]:
    """Run (or resume) the sync of ``steps``; returns their checkpoints. Raises :class:`SyncInterrupted` when WeCom
    stops it (the next call resumes), LookupError when WeCom is not configured."""
    return await Sync(rt, options or SyncOptions(), progress).run(tuple(s for s in STEPS if s in steps), restart=restart)


# ---- command line -------------------------------------------------------------------------------------------------
LABELS = {"members": "成员 members", "tags": "标签 tags", "customers": "客户 customers", "groups": "客户群 groups"}


def print_progress(step: str, done: int, total: int | None, note: str) -> None:
    if step not in LABELS:
        return
    width = 30
    bar = "#" * int(width * done / total) + "." * (width - int(width * done / total)) if total else "·" * width
    count = f"{done}/{total}" if total is not None else str(done)
    sys.stdout.write(f"\r{LABELS[step]:<16} [{bar}] {count:>11} {note}"[:120].ljust(120))
    sys.stdout.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--step", choices=STEPS, help="run only this step (resuming it if it was interrupted)")
    parser.add_argument("--restart", action="store_true", help="ignore an interrupted run and start from scratch")
    parser.add_argument("--no-batch", action="store_true", help="use externalcontact/list + get instead of batch/get_by_user")
