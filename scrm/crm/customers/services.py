"""Customer use cases: one customer per person across external_userid / openid / unionid.

Identity invariants (every function here keeps them):

* An identity (kind, value) belongs to exactly one customer — the unique key on ``customer_identities`` decides
  every race — and always to a *surviving* customer: a merge moves identities in the same transaction that sets
  ``merged_into``.
* A customer has at most one unionid. Two customers with different unionids are two people and never merge
  (:class:`~scrm.core.errors.Conflict`).
* Merging keeps the older customer (earliest ``created_at``, then lowest id). The newer one keeps its row with
  ``merged_into`` set, forever, so ids held elsewhere (orders, messages, links in old alerts) still resolve:
  :func:`resolve_customer` follows ``merged_into`` to the survivor. Chains are shortened at each merge.
* Writers that get their customer id from :func:`ensure_customer` or :func:`lock_customer` hold a lock on the
  survivor's row until they commit (PostgreSQL row locks; SQLite writers are serialised by ``BEGIN IMMEDIATE``).
  A merge locks both rows first, so such a writer's rows are either committed before the merge moves them, or
  the writer waits and then sees ``merged_into`` and writes to the survivor. Rows written against an id taken
  outside these functions may land on a merged customer; readers resolve ids, and a later merge of the same
  pair sweeps them over. Two merges whose transactions each already hold a shared lock on the other's customer
  can deadlock on PostgreSQL; the database aborts one, whose job retries (every step here is idempotent).
* Any identity, not only unionid, names one person: linking an identity that another customer holds merges them.
* Tables of other packages (orders, invoices, group members …) are not touched here: a merge writes the outbox
  topic ``customer.merged`` ``{"from": id, "into": id}`` in its transaction and their owners follow it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import outbox
from scrm.core.db import UTCDateTime, insert_ignore
from scrm.core.errors import Conflict, InvalidInput, NotFound
from scrm.crm.customers.models import customer_identities, customer_notes, customers, follows
from scrm.crm.timeline.models import timeline
from scrm.crm.timeline.services import Kind, add_entry

if TYPE_CHECKING:
    from scrm.core.runtime import Runtime

IDENTITY_KINDS = ("external_userid", "openid", "unionid")
MERGED_TOPIC = "customer.merged"  # outbox: {"from": merged id, "into": surviving id}
MAX_HOPS = 64  # merged_into chains are shortened at every merge; a longer one means a cycle (a bug)
NOTE_MAX_CHARS = 2000
CUSTOM_FIELDS_MAX = 50


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    avatar: str
    gender: int
    corp_name: str
    unionid: str | None
    custom_fields: dict[str, Any]
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


@dataclass(frozen=True)
class Note:
    id: int
    customer_id: int
    author: str
    body: str
    created_at: dt.datetime


# ---- identities ---------------------------------------------------------------------------------------
async def find_customer(conn: AsyncConnection, kind: str, value: str) -> int | None:
    """The (surviving) customer holding this identity, if any."""
    row = (
        await conn.execute(
            sa.select(customer_identities.c.customer_id).where(customer_identities.c.kind == kind, customer_identities.c.value == value)
        )
    ).first()
    return int(row.customer_id) if row else None


async def _touch(conn: AsyncConnection, customer_id: int, now: dt.datetime) -> int:
    """Mark the customer seen and return the survivor. The UPDATE locks the row; on PostgreSQL an UPDATE that
    waited for a merge re-reads the row, so RETURNING shows the merged_into the merge committed."""
    cid = customer_id
    for _ in range(MAX_HOPS):
        at = sa.literal(now, UTCDateTime())
        seen = sa.case((customers.c.last_seen_at < at, at), else_=customers.c.last_seen_at)
        touch = sa.update(customers).where(customers.c.id == cid).values(last_seen_at=seen).returning(customers.c.merged_into)
        row = (await conn.execute(touch)).first()
        if row is None:
            raise NotFound("没有这个客户 (no such customer)", customer_id=customer_id)
        if row.merged_into is None:
            return cid
        cid = int(row.merged_into)
    raise RuntimeError(f"merged_into chain of customer {customer_id} does not end")


async def ensure_customer(conn: AsyncConnection, dialect: str, *, kind: str, value: str, now: dt.datetime, name: str = "") -> int:
    """Return the customer behind an identity, creating customer + identity on first sight.

    Safe under concurrency: the identity's unique key decides; a loser of the race deletes nothing and reads
    the winner's customer (its own orphan customer row is removed in the same transaction). The returned id is
    the survivor of any merge and its row stays locked until the caller commits.
    """
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"unknown identity kind {kind!r}")
    if not value:
        raise ValueError("empty identity")
    existing = await find_customer(conn, kind, value)
    if existing is not None:
        return await _touch(conn, existing, now)
    new_id = (
        await conn.execute(
            customers.insert()
            .values(name=name, first_seen_at=now, last_seen_at=now, created_at=now, updated_at=now, custom_fields={})
            .returning(customers.c.id)
        )
    ).scalar_one()
    inserted = (
        await conn.execute(
            insert_ignore(customer_identities, dialect)
            .values(customer_id=new_id, kind=kind, value=value, created_at=now)
            .returning(customer_identities.c.id)
        )
    ).scalar()
    if inserted is None:
        await conn.execute(sa.delete(customers).where(customers.c.id == new_id))
        winner = await find_customer(conn, kind, value)
        assert winner is not None
        return await _touch(conn, winner, now)
    if kind == "unionid":
        await conn.execute(sa.update(customers).where(customers.c.id == new_id).values(unionid=value))
    return int(new_id)


async def create_customer(conn: AsyncConnection, *, name: str, corp_name: str, custom_fields: dict[str, Any], now: dt.datetime) -> int:
    """A customer known so far only by what a person typed (a lead from a form, a file, the phone): no WeCom or
    WeChat identity yet — one links later (:func:`link_identity`) when they add a salesperson or write in."""
    new_id = (
        await conn.execute(
            customers.insert()
            .values(
                name=name[:128],
                corp_name=corp_name[:128],
                first_seen_at=now,
                last_seen_at=now,
                created_at=now,
                updated_at=now,
                custom_fields=custom_fields,
            )
            .returning(customers.c.id)
        )
    ).scalar_one()
    return int(new_id)


async def identities_of(conn: AsyncConnection, customer_id: int) -> dict[str, list[str]]:
    rows = await conn.execute(
        sa.select(customer_identities.c.kind, customer_identities.c.value)
        .where(customer_identities.c.customer_id == customer_id)
        .order_by(customer_identities.c.id)
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row.kind, []).append(row.value)
    return out


async def _follow_chain(conn: AsyncConnection, customer_id: int, *, lock: bool) -> int:
    cid = customer_id
    for _ in range(MAX_HOPS):
        q = sa.select(customers.c.merged_into).where(customers.c.id == cid)
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update(read=True)  # FOR SHARE: writers share it, a merge (FOR UPDATE) waits for them
        row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound("没有这个客户 (no such customer)", customer_id=customer_id)
        if row.merged_into is None:
            return cid
        cid = int(row.merged_into)
    raise RuntimeError(f"merged_into chain of customer {customer_id} does not end")


async def resolve_customer(conn: AsyncConnection, customer_id: int) -> int:
    """The surviving customer for ``customer_id`` (itself unless merged). Raises NotFound for an unknown id."""
    return await _follow_chain(conn, customer_id, lock=False)


async def lock_customer(conn: AsyncConnection, customer_id: int) -> int:
    """Like :func:`resolve_customer`, and holds a shared lock on the survivor until commit: rows the caller then
    writes for it cannot be stranded on a customer merged meanwhile (see the module's invariants)."""
    return await _follow_chain(conn, customer_id, lock=True)


async def _unionid_of(conn: AsyncConnection, customer_id: int) -> str | None:
    row = (
        await conn.execute(
            sa.select(customer_identities.c.value)
            .where(customer_identities.c.customer_id == customer_id, customer_identities.c.kind == "unionid")
            .order_by(customer_identities.c.id)
        )
    ).first()
    return str(row.value) if row else None


async def link_identity(conn: AsyncConnection, dialect: str, customer_id: int, kind: str, value: str, now: dt.datetime) -> int:
    """Attach identity (kind, value) to the customer; returns the surviving customer id.

    New identity → attached. Already this customer's → nothing changes. Another customer's → the two are the same
    person and are merged (:func:`merge_customers`, the older survives). A second, different unionid for one
    customer is refused with Conflict (a person has one unionid). Idempotent; safe under concurrency."""
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"unknown identity kind {kind!r}")
    if not value:
        raise ValueError("empty identity")
    cid = await lock_customer(conn, customer_id)
    if kind == "unionid":
        current = await _unionid_of(conn, cid)
        if current is not None and current != value:
            raise Conflict("该客户已关联另一个 unionid (the customer already has another unionid)", customer_id=cid)
    inserted = (
        await conn.execute(
            insert_ignore(customer_identities, dialect)
            .values(customer_id=cid, kind=kind, value=value, created_at=now)
            .returning(customer_identities.c.id)
        )
    ).scalar()
    if inserted is not None:
        if kind == "unionid":
            await conn.execute(sa.update(customers).where(customers.c.id == cid, customers.c.unionid.is_(None)).values(unionid=value))
        return cid
    owner = await find_customer(conn, kind, value)
    assert owner is not None  # identities are never deleted
    if await resolve_customer(conn, owner) == cid:
        return cid
    return await merge_customers(conn, dialect, cid, owner, now)


# ---- merge ----------------------------------------------------------------------------------------------
async def _lock_pair(conn: AsyncConnection, a: int, b: int) -> tuple[Any, Any] | None:
    """Lock both customer rows in id order (no deadlock between two merges); None if either was merged while
    we waited (the caller resolves again)."""
    rows = {}
    for cid in sorted((a, b)):
        q = sa.select(customers).where(customers.c.id == cid)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound("没有这个客户 (no such customer)", customer_id=cid)
        rows[cid] = row
    if rows[a].merged_into is not None or rows[b].merged_into is not None:
        return None
    return rows[a], rows[b]


async def merge_customers(conn: AsyncConnection, dialect: str, a: int, b: int, now: dt.datetime) -> int:
    """Merge two customers that are one person into the older one; returns the survivor's id.

    In the caller's transaction: identities, follow relations, notes and timeline entries (an entry whose ref the
    survivor already has is the same fact and is dropped) move to the survivor; its blank profile fields are
    filled from the other; the other gets ``merged_into``; an outbox ``customer.merged`` row tells the other
    capabilities (tags, groups, archive, orders, billing, scores), which move their own rows. Idempotent (already
    one → returns the survivor). Refuses (Conflict) to merge customers with different unionids."""
    for _ in range(MAX_HOPS):
        ra, rb = await resolve_customer(conn, a), await resolve_customer(conn, b)
        if ra == rb:
            return ra
        pair = await _lock_pair(conn, ra, rb)
        if pair is not None:
            break
    else:
        raise RuntimeError(f"customers {a} and {b} kept being merged while we waited")
    older, newer = sorted(pair, key=lambda r: (r.created_at, r.id))
    into, frm = int(older.id), int(newer.id)
    union_into, union_from = await _unionid_of(conn, into), await _unionid_of(conn, frm)
    if union_into and union_from and union_into != union_from:
        raise Conflict("两个客户的 unionid 不同，不能合并 (different unionids: not the same person)", customers=[into, frm])

    # The customer's own rows move here, in the same transaction; every other capability's (tags, group
    # memberships, archived messages, orders, invoices, scores …) follows on the customer.merged event below.
    for table in (customer_identities, follows, customer_notes):
        await conn.execute(sa.update(table).where(table.c.customer_id == frm).values(customer_id=into))
    survivor_refs = sa.select(timeline.c.ref).where(timeline.c.customer_id == into)
    movable = sa.and_(timeline.c.customer_id == frm, timeline.c.ref.not_in(survivor_refs))
    await conn.execute(sa.update(timeline).where(movable).values(customer_id=into))
    await conn.execute(sa.delete(timeline).where(timeline.c.customer_id == frm))

    fill: dict[str, Any] = {
        "first_seen_at": min(older.first_seen_at, newer.first_seen_at),
        "last_seen_at": max(older.last_seen_at, newer.last_seen_at),
        "custom_fields": {**dict(newer.custom_fields or {}), **dict(older.custom_fields or {})},
        "updated_at": now,
    }
    for column in ("name", "avatar", "corp_name", "unionid", "gender"):
        if not getattr(older, column) and getattr(newer, column):
            fill[column] = getattr(newer, column)
    await conn.execute(sa.update(customers).where(customers.c.id == into).values(**fill))
    # Keep chains one hop long: whatever pointed at the merged customer now points at the survivor.
    await conn.execute(sa.update(customers).where(customers.c.merged_into == frm).values(merged_into=into, updated_at=now))
    await conn.execute(sa.update(customers).where(customers.c.id == frm).values(merged_into=into, updated_at=now))
    await add_entry(
        conn,
        dialect,
        customer_id=into,
        at=now,
        kind=Kind.EVENT,
        title=f"合并了重复的客户记录 #{frm}",
        ref=f"merge:{frm}",
        data={"merged": frm},
    )
    await outbox.add(conn, MERGED_TOPIC, {"from": frm, "into": into}, now)
    return into


# ---- profile, custom fields, notes ----------------------------------------------------------------------
def _customer(row: Any) -> Customer:
    return Customer(
        int(row.id),
        row.name,
        row.avatar,
        int(row.gender),
        row.corp_name,
        row.unionid,
        dict(row.custom_fields or {}),
        row.first_seen_at,
        row.last_seen_at,
    )


async def get_customer(conn: AsyncConnection, customer_id: int) -> Customer:
    """The surviving customer's profile (a merged id resolves to its survivor). Raises NotFound."""
    cid = await resolve_customer(conn, customer_id)
    return _customer((await conn.execute(sa.select(customers).where(customers.c.id == cid))).one())


async def update_profile(
    conn: AsyncConnection,
    customer_id: int,
    now: dt.datetime,
    *,
    name: str | None = None,
    avatar: str | None = None,
    gender: int | None = None,
    corp_name: str | None = None,
) -> bool:
    """Overwrite the given profile fields (None = leave as is; WeCom is the source of truth for them).
    Returns True when something changed."""
    cid = await lock_customer(conn, customer_id)
    given = {"name": name, "avatar": avatar, "gender": gender, "corp_name": corp_name}
    values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if "name" in values:
        values["name"] = str(values["name"])[:128]
    if "avatar" in values:
        values["avatar"] = str(values["avatar"])[:512]
    if "corp_name" in values:
        values["corp_name"] = str(values["corp_name"])[:128]
    if "gender" in values:
        values["gender"] = int(values["gender"]) if int(values["gender"]) in (0, 1, 2) else 0
    if not values:
        return False
    current = (await conn.execute(sa.select(customers).where(customers.c.id == cid))).one()
    if all(getattr(current, k) == v for k, v in values.items()):
        return False
    await conn.execute(sa.update(customers).where(customers.c.id == cid).values(**values, updated_at=now))
    return True


async def set_custom_fields(conn: AsyncConnection, customer_id: int, fields: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Merge ``fields`` into the customer's custom fields (a None value removes the key); returns them all.
    Keys are 1–32 characters, values text of at most 200 characters, at most 50 fields."""
    cid = await lock_customer(conn, customer_id)
    current = dict((await conn.execute(sa.select(customers.c.custom_fields).where(customers.c.id == cid))).scalar_one() or {})
    for key, value in fields.items():
        if not isinstance(key, str) or not 0 < len(key.strip()) <= 32:
            raise InvalidInput("自定义字段名需为 1 到 32 个字 (field names are 1–32 characters)", field=str(key)[:40])
        if value is None:
            current.pop(key.strip(), None)
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool) or len(str(value)) > 200:
            raise InvalidInput("自定义字段值需为不超过 200 字的文本 (values are text up to 200 characters)", field=key)
        current[key.strip()] = str(value)
    if len(current) > CUSTOM_FIELDS_MAX:
        raise InvalidInput(f"自定义字段最多 {CUSTOM_FIELDS_MAX} 个 (at most {CUSTOM_FIELDS_MAX} fields)")
    await conn.execute(sa.update(customers).where(customers.c.id == cid).values(custom_fields=current, updated_at=now))
    return current


async def add_note(rt: Runtime, customer_id: int, author: str, body: str) -> Note:
    """Record a salesperson's note on a customer (the survivor, if merged) with its timeline entry, in one
    transaction. Body: 1–2000 characters after trimming; author: the member's userid. Raises InvalidInput /
    NotFound."""
    body = (body or "").strip()
    author = (author or "").strip()
    if not body:
        raise InvalidInput("备注不能为空 (the note is empty)", field="body")
    if len(body) > NOTE_MAX_CHARS:
        raise InvalidInput(f"备注最多 {NOTE_MAX_CHARS} 字 (notes are at most {NOTE_MAX_CHARS} characters)", field="body")
    if not 0 < len(author) <= 64:
        raise InvalidInput("缺少备注人 (the author is missing)", field="author")
    now = rt.clock.now()
    async with rt.db.write() as conn:
        cid = await lock_customer(conn, customer_id)
        note_id = int(
            (
                await conn.execute(
                    customer_notes.insert().values(customer_id=cid, author=author, body=body, created_at=now).returning(customer_notes.c.id)
                )
            ).scalar_one()
        )
        await add_entry(
            conn,
            rt.db.dialect,
            customer_id=cid,
            at=now,
            kind=Kind.NOTE,
            title=f"{author} 添加了备注",
            body=body,
            ref=f"note:{note_id}",
            data={"note_id": note_id, "author": author},
        )
    return Note(note_id, cid, author, body, now)


async def notes_of(conn: AsyncConnection, customer_id: int, *, limit: int = 50) -> list[Note]:
    """Newest first."""
    rows = await conn.execute(
        sa.select(customer_notes)
        .where(customer_notes.c.customer_id == customer_id)
        .order_by(customer_notes.c.created_at.desc(), customer_notes.c.id.desc())
        .limit(limit)
    )
    return [Note(int(r.id), int(r.customer_id), r.author, r.body, r.created_at) for r in rows]
