"""The audit trail's hash chain: every row carries the hash of the row before it.

Appending: a ``before_flush`` hook (installed on every session) takes the new
audit rows of the flush in the order they were made, locks the chain's head row (so concurrent
transactions append one after the other and the chain never forks), gives each row the next id,
the previous row's hash and its own hash, and moves the head. Checking: :func:`verify` walks the
rows by id and names the first row whose content, link or position does not match.

The hash is SHA-256 over the previous hash and the row's canonical content (JSON, sorted keys,
ASCII, times as naive UTC with microseconds). The triggers stop edits through SQL; the chain
shows edits made behind them (a dropped trigger, a file edited by hand).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from openitb.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def canonical(row: AuditEntry) -> str:
    at = row.at.astimezone(UTC).replace(tzinfo=None) if row.at.tzinfo else row.at
    return json.dumps({
        "id": row.id, "at": at.isoformat(timespec="microseconds"), "actor": row.actor,
        "role": row.role, "action": row.action, "entity": row.entity,
        "entity_id": row.entity_id, "before": row.before, "after": row.after,
        "outcome": row.outcome}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def row_hash(prev_hash: str, row: AuditEntry) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(row)}".encode("ascii")).hexdigest()


def _chain_new_entries(session: Session, _context: Any, _instances: Any) -> None:
    new = sorted((o for o in session.new if isinstance(o, AuditEntry) and not o.row_hash),
                 key=lambda o: getattr(o, "_audit_order", 0))
    if not new:
        return
    conn = session.connection()
    # A write first: it takes the head's row lock (PostgreSQL) or the database's write lock
    # (SQLite) before the head is read, so two appenders cannot read the same head.
    conn.execute(update(AuditHead).where(AuditHead.id == 1)
                 .values(last_id=AuditHead.last_id))
    head = conn.execute(select(AuditHead.last_id, AuditHead.last_hash)
                        .where(AuditHead.id == 1)).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain has no head row: run the migrations")
    last_id, last_hash = int(head[0]), str(head[1])
    for entry in new:
        entry.entity_id = "" if entry.entity_id is None else entry.entity_id
        entry.outcome = entry.outcome or "ok"
        last_id += 1
        entry.id = last_id
        entry.prev_hash = last_hash
        entry.row_hash = last_hash = row_hash(last_hash, entry)
    conn.execute(update(AuditHead).where(AuditHead.id == 1)
                 .values(last_id=last_id, last_hash=last_hash))


def install() -> None:
    """Chain the audit rows of every session (idempotent; every SQLAlchemy session, so that no
    path that adds an audit row can skip the chain)."""
    if not event.contains(Session, "before_flush", _chain_new_entries):
        event.listen(Session, "before_flush", _chain_new_entries)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    broken_id: int | None = None
    reason: str = ""


def verify(session: Session) -> Verdict:
    """Walk the chain by id: each row's link, hash and position, and the head at the end."""
    prev, expected_id, rows = GENESIS, 1, 0
    for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id)
                               .execution_options(yield_per=1000)):
        rows += 1
        if row.id != expected_id:
            return Verdict(False, rows, row.id, f"row {row.id} follows row {expected_id - 1}: "
                           f"{row.id - expected_id} row(s) missing before it")
        if row.prev_hash != prev:
            return Verdict(False, rows, row.id, f"row {row.id} does not link to row {row.id - 1} "
                           "(the row before it was changed, removed or replaced)")
        if row.row_hash != row_hash(prev, row):
            return Verdict(False, rows, row.id, f"row {row.id}'s content does not match its hash "
                           "(it was changed after it was written)")
        prev, expected_id = row.row_hash, expected_id + 1
    head = session.get(AuditHead, 1)
    if head is None:
        return Verdict(False, rows, None, "the chain's head row is missing")
    if head.last_id != expected_id - 1 or head.last_hash != prev:
        return Verdict(False, rows, expected_id if head.last_id >= expected_id else None,
                       f"the chain ends at row {expected_id - 1} but its head records row "
                       f"{head.last_id}: rows were removed from the end")
    return Verdict(True, rows)
