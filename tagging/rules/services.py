"""Tagging use cases: score a customer's message against the rules, apply and remove rule tags, decay scores.

Guarantees:

* A message is scored once (``tagged_messages`` keyed by its ref, e.g. ``inbound:123`` / ``archive:<msgid>``),
  however often its event is handled; the score row is locked while it is updated, so two messages of one
  customer handled at once both count.
* Only tags whose source is ``rule`` are ever changed here. A tag a salesperson (or WeCom, a channel, a campaign)
  put on stays as it is, whatever the score; its score is still kept.
* Each rule tag carries its evidence: ``{"rule", "message_ref", "words", "score", "at", "reasons"}`` — the latest
  message that matched, the words that counted, the score at that message's time, the message's time, and how each
  occurrence of the rule's words in it was read ("“坏了”命中", "“投诉”被“不要”否定，不计" …).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.core import outbox
from scrm.core.db import UTCDateTime, insert_ignore
from scrm.core.runtime import Runtime
from scrm.crm.archive.models import archive_messages
from scrm.crm.archive.services import is_external
from scrm.crm.customers.services import ensure_customer, find_customer, lock_customer, resolve_customer
from scrm.crm.tags.models import TagSource, customer_tags, tag_groups, tags
from scrm.crm.tags.services import CUSTOMER_TAG_CHANGED, apply_tag, ensure_tag, remove_tag
from tagging.rules import scoring
from tagging.rules.domain import Rule
from tagging.rules.engine import tagger_cache
from tagging.rules.matcher import RuleMatch
from tagging.rules.models import tag_scores, tagged_messages

log = logging.getLogger(__name__)

PRUNE_FRACTION = 0.01  # score rows below 1 % of the threshold, with no tag on, are deleted by the decay pass

# The stored inbound record, read-only. tagging may not import bots (bots/gateway/models.py owns the table); these are the
# columns of the stored-message contract it reads: who wrote what, when, through which channel.
inbound_view = sa.table(
    "inbound_events",
    sa.column("id", sa.BigInteger()),
    sa.column("channel", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("from_user", sa.String()),
    sa.column("external_userid", sa.String()),
    sa.column("content", sa.Text()),
    sa.column("occurred_at", UTCDateTime()),
)
# (channel, kind) of texts a customer wrote → the identity kind of the column naming them. WeCom "message.text"
# comes from members (salespeople), not customers, and is not tagged.
CUSTOMER_TEXT_KINDS = {("kf", "kf.customer.text"): "external_userid", ("mp", "message.text"): "openid"}


@dataclass(frozen=True)
class CustomerText:
    customer_id: int
    text: str
    ref: str  # inbound:<id> | archive:<msgid>
    at: dt.datetime


@dataclass(frozen=True)
class TagOutcome:
    ref: str
    customer_id: int
    matches: tuple[RuleMatch, ...]
    applied: tuple[str, ...] = ()  # tags put on by this message
    removed: tuple[str, ...] = ()
    duplicate: bool = False  # the message had been scored before: nothing changed


def inbound_ref(inbound_id: int) -> str:
    return f"inbound:{inbound_id}"


def archive_ref(msgid: str) -> str:
    """The ref of an archive record (as its timeline entry's: long msgids are shortened with a digest)."""
    ref = f"archive:{msgid}"
    return ref if len(ref) <= 96 else f"archive:{msgid[:40]}:{hashlib.sha256(msgid.encode()).hexdigest()[:40]}"


# ---- reading stored messages ---------------------------------------------------------------------------------
async def inbound_customer_text(rt: Runtime, inbound_id: int) -> CustomerText | None:
    """The customer text stored as inbound event ``inbound_id`` (kf customer text, Official Account text), with the
    customer it is from (created from the identity if nobody processed the event yet); None for anything else."""
    iv = inbound_view.c
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(inbound_view).where(iv.id == inbound_id))).first()
    if row is None or not row.content.strip():
        return None
    kind = CUSTOMER_TEXT_KINDS.get((row.channel, row.kind))
    value = row.external_userid if kind == "external_userid" else row.from_user
    if kind is None or not value:
        return None
    async with rt.db.read() as conn:
        customer_id = await find_customer(conn, kind, value)
    if customer_id is None:
        async with rt.db.write() as conn:
            customer_id = await ensure_customer(conn, rt.db.dialect, kind=kind, value=value, now=rt.clock.now())
    return CustomerText(customer_id, row.content, inbound_ref(int(row.id)), row.occurred_at)


async def archive_customer_text(rt: Runtime, msgid: str) -> CustomerText | None:
    """The text a customer sent in archive record ``msgid`` (1:1 or in a group); None for staff messages, recalls,
    non-text records and records with no customer."""
    am = archive_messages.c
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                sa.select(am.msgid, am.action, am.msgtype, am.from_id, am.content, am.customer_id, am.msgtime).where(am.msgid == msgid)
            )
        ).first()
    if row is None or row.action != "send" or row.msgtype != "text" or row.customer_id is None or not is_external(row.from_id):
        return None
    if not row.content.strip():
        return None
    return CustomerText(int(row.customer_id), row.content, archive_ref(row.msgid), row.msgtime)


# ---- scoring one message -------------------------------------------------------------------------------------
async def rule_tag_id(conn: AsyncConnection, rule: Rule) -> int | None:
    """The id of the local tag a rule puts on (group + name), if it exists yet."""
    q = (
        sa.select(tags.c.id)
        .join(tag_groups, tag_groups.c.id == tags.c.group_id)
        .where(tag_groups.c.remote_id.is_(None), tag_groups.c.name == rule.group, tags.c.name == rule.tag, tags.c.deleted_at.is_(None))
        .order_by(tags.c.id)
    )
    value = (await conn.execute(q)).scalar()
    return int(value) if value is not None else None


def _evidence(rule: Rule, ref: str, words: list[str], score: float, at: dt.datetime, reasons: list[str] | None = None) -> dict[str, Any]:
    evidence: dict[str, Any] = {"rule": rule.id, "message_ref": ref, "words": words, "score": round(score, 3), "at": at.isoformat()}
    if reasons is not None:
        evidence["reasons"] = reasons  # how each occurrence of the rule's words was read (命中 / 被否定 / 排除 / 在词内)
    return evidence


async def _tag_source(conn: AsyncConnection, customer_id: int, tag_id: int | None) -> str | None:
    if tag_id is None:
        return None
    q = sa.select(customer_tags.c.source).where(customer_tags.c.customer_id == customer_id, customer_tags.c.tag_id == tag_id)
    return (await conn.execute(q)).scalar()


async def _set_rule_tag(
    conn: AsyncConnection,
    dialect: str,
    *,
    customer_id: int,
    rule: Rule,
    tag_id: int | None,
    add: bool,
    evidence: dict[str, Any],
    now: dt.datetime,
) -> bool:
    """Apply (or remove) the rule's tag and queue its mirror; returns whether the customer's tags changed."""
    if add:
        tag_id = tag_id or await ensure_tag(conn, dialect, rule.tag, now, group=rule.group)
        changed = await apply_tag(conn, dialect, customer_id=customer_id, tag_id=tag_id, source=TagSource.RULE, evidence=evidence, now=now)
    else:
        assert tag_id is not None
        changed = await remove_tag(conn, dialect, customer_id=customer_id, tag_id=tag_id, now=now, by=f"rule:{rule.id}")
    if changed:
        payload = {"customer_id": customer_id, "tag_id": tag_id, "add": add, "by": f"rule:{rule.id}"}
        await outbox.add(conn, CUSTOMER_TAG_CHANGED, payload, now)
    return changed


async def _score_match(
    conn: AsyncConnection, dialect: str, customer_id: int, match: RuleMatch, ref: str, at: dt.datetime, now: dt.datetime
) -> scoring.Action | None:
    rule, ts = match.rule, tag_scores.c
    await conn.execute(
        insert_ignore(tag_scores, dialect).values(
            customer_id=customer_id, rule=rule.id, score=0.0, scored_at=at, last_message_ref="", last_words=[], matches=0
        )
    )
    row = (await conn.execute(sa.select(tag_scores).where(ts.customer_id == customer_id, ts.rule == rule.id).with_for_update())).one()
    newest = at >= row.scored_at  # this message is not older than the last one scored: it becomes the evidence
    state = scoring.add(scoring.Score(row.score, row.scored_at), match.score, at, rule.half_life_days)
    values: dict[str, Any] = {"score": state.value, "scored_at": state.at, "matches": row.matches + 1}
    if newest:
        values.update(last_message_ref=ref, last_words=list(match.words))
    await conn.execute(sa.update(tag_scores).where(ts.customer_id == customer_id, ts.rule == rule.id).values(**values))
    tag_id = await rule_tag_id(conn, rule)
    source = await _tag_source(conn, customer_id, tag_id)
    if source is not None and source != TagSource.RULE:
        return None  # put on by a person (or WeCom, a channel, a campaign): not ours to change
    action = scoring.decide_on_message(
        state,
        now,
        applied=source is not None,
        threshold=rule.threshold,
        remove_threshold=rule.remove_threshold,
        half_life_days=rule.half_life_days,
    )
    evidence = _evidence(rule, ref, list(match.words), state.value, at, match.reasons())
    if action is scoring.Action.KEEP:
        if source is not None and newest:  # still on: the newest matching message becomes its evidence
            await apply_tag(conn, dialect, customer_id=customer_id, tag_id=tag_id or 0, source=TagSource.RULE, evidence=evidence, now=now)
        return None
    changed = await _set_rule_tag(
        conn, dialect, customer_id=customer_id, rule=rule, tag_id=tag_id, add=action is scoring.Action.APPLY, evidence=evidence, now=now
    )
    return action if changed else None


async def tag_message(rt: Runtime, customer_id: int, text: str, ref: str, at: dt.datetime) -> TagOutcome:
    """Score one message a customer wrote against the rules in force and apply or remove their tags.

    Idempotent per ``ref``: a message scored before changes nothing (``duplicate``). Scores decay from the
    message's time ``at``; a tag goes on when the score at the message's own time reaches the threshold (one hit
    of a rule whose threshold is its weight is enough), unless it has decayed below ``remove_threshold`` by now — an
    old message replayed late cannot put a stale intent tag on (:func:`scoring.decide_on_message`). Matching runs
    before the transaction (no lock is held while jieba cuts); the transaction records the message, updates the
    scores and the tags, and queues the mirror."""
    tagger = await tagger_cache(rt).get(rt)
    matches = tuple(tagger.matcher.match(text))
    if not matches:
        return TagOutcome(ref, customer_id, ())
    now, dialect = rt.clock.now(), rt.db.dialect
    applied: list[str] = []
    removed: list[str] = []
    async with rt.db.write() as conn:
        cid = await lock_customer(conn, customer_id)  # the survivor of any merge, held until commit
        fresh = (
            await conn.execute(
                insert_ignore(tagged_messages, dialect)
                .values(ref=ref, customer_id=cid, rules_version=tagger.rules.version, tagged_at=now)
                .returning(tagged_messages.c.ref)
            )
        ).scalar()
        if fresh is None:
            return TagOutcome(ref, cid, matches, duplicate=True)
        for match in matches:
            action = await _score_match(conn, dialect, cid, match, ref, at, now)
            if action is scoring.Action.APPLY:
                applied.append(match.rule.tag)
            elif action is scoring.Action.REMOVE:
                removed.append(match.rule.tag)
    return TagOutcome(ref, cid, matches, tuple(applied), tuple(removed))


# ---- the daily decay ----------------------------------------------------------------------------------------
@dataclass
class DecayReport:
    checked: int = 0
    removed: int = 0  # rule tags taken off: their score decayed below remove_threshold
    pruned: int = 0  # score rows deleted: next to nothing left and no tag on


async def decay_scores(rt: Runtime, *, batch: int = 500) -> DecayReport:
    """Take off every rule tag whose score, decayed to now, is below its rule's ``remove_threshold``, and delete
    score rows that decayed to almost nothing. Safe to run twice or alongside tagging: each batch is one
    transaction holding its score rows locked, and decisions are made on the rows as read under the lock.
    Rules no longer in the file are left alone (their tags stay until removed by hand)."""
    report = DecayReport()
    tagger = await tagger_cache(rt).get(rt)
    now, dialect, ts = rt.clock.now(), rt.db.dialect, tag_scores.c
    for rule in tagger.rules.rules:
        after = 0
        while True:
            async with rt.db.write() as conn:
                rows = (
                    await conn.execute(
                        sa.select(tag_scores)
                        .where(ts.rule == rule.id, ts.customer_id > after)
                        .order_by(ts.customer_id)
                        .limit(batch)
                        .with_for_update()
                    )
                ).all()
                if not rows:
                    break
                after = int(rows[-1].customer_id)
                tag_id = await rule_tag_id(conn, rule)
                sources: dict[int, str] = {}
                if tag_id is not None:
                    q = sa.select(customer_tags.c.customer_id, customer_tags.c.source).where(
                        customer_tags.c.tag_id == tag_id, customer_tags.c.customer_id.in_([r.customer_id for r in rows])
                    )
                    sources = {int(r.customer_id): r.source for r in await conn.execute(q)}
                gone: list[int] = []
                for row in rows:
                    report.checked += 1
                    value = scoring.decay(row.score, row.scored_at, now, rule.half_life_days)
                    source = sources.get(int(row.customer_id))
                    if source == TagSource.RULE and value < rule.remove_threshold:
                        evidence = _evidence(rule, row.last_message_ref, list(row.last_words or []), value, row.scored_at)
                        if await _set_rule_tag(
                            conn, dialect, customer_id=int(row.customer_id), rule=rule, tag_id=tag_id, add=False, evidence=evidence, now=now
                        ):
                            report.removed += 1
                            source = None
                    if source is None and value < rule.threshold * PRUNE_FRACTION:
                        gone.append(int(row.customer_id))
                if gone:
                    await conn.execute(sa.delete(tag_scores).where(ts.rule == rule.id, ts.customer_id.in_(gone)))
                    report.pruned += len(gone)
            if len(rows) < batch:
                break
    return report


# ---- customers merged ---------------------------------------------------------------------------------------
async def merge_scores(rt: Runtime, merged: int, into: int) -> int:
    """Move the scores of a customer merged into another onto the survivor (a rule scored on both adds up, as if
    one person had written every message). Idempotent: a second run finds nothing left to move. Returns rows moved."""
    ts = tag_scores.c
    rules = (await tagger_cache(rt).get(rt)).rules
    async with rt.db.write() as conn:
        into = await resolve_customer(conn, into)
        rows = (await conn.execute(sa.select(tag_scores).where(ts.customer_id == merged).order_by(ts.rule).with_for_update())).all()
        for row in rows:
            mine = (await conn.execute(sa.select(tag_scores).where(ts.customer_id == into, ts.rule == row.rule).with_for_update())).first()
            if mine is None:
                await conn.execute(sa.update(tag_scores).where(ts.customer_id == merged, ts.rule == row.rule).values(customer_id=into))
                continue
            rule = rules.by_id(row.rule)
            half_life = rule.half_life_days if rule is not None else 30.0
            state = scoring.add(scoring.Score(mine.score, mine.scored_at), row.score, row.scored_at, half_life)
            values: dict[str, Any] = {"score": state.value, "scored_at": state.at, "matches": mine.matches + row.matches}
            if row.scored_at > mine.scored_at:
                values.update(last_message_ref=row.last_message_ref, last_words=row.last_words)
            await conn.execute(sa.update(tag_scores).where(ts.customer_id == into, ts.rule == row.rule).values(**values))
            await conn.execute(sa.delete(tag_scores).where(ts.customer_id == merged, ts.rule == row.rule))
        await conn.execute(sa.update(tagged_messages).where(tagged_messages.c.customer_id == merged).values(customer_id=into))
    return len(rows)
