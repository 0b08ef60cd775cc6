"""Unit of work: each use case runs in one transaction, and leaves an audit entry per change.

A refused or invalid request rolls the transaction back and is then written to the audit trail in
a transaction of its own, so that every refusal is logged even though nothing else was kept.

A write that loses a race (an optimistic-lock version that moved, a unique value taken in the
meantime, a deadlock or a busy database) is a :class:`Conflict` wherever it surfaces inside the
``with`` block (a flush in the middle of a use case, an autoflush before a query, or the
commit): the transaction is rolled back whole and the refusal is logged like any other.

Refusals of anonymous visitors (a protected page without a session, a bad CSRF token, a
throttled sign-in, a request too large) are counted per hour, path and address
(``RefusalCount``), not written one row each, so a flood cannot grow the audit trail; a wrong
password for an existing account is still an audit row (the sign-in throttle bounds those).
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from openitb.errors import InvalidInput, OpenITBError, RefusedOperation
from openitb.store.models import AuditEntry, RefusalCount

# What a refusal keeps of an outside value (and what an error message echoes back).
BRIEF_CHARS = 200
# Distinct (path, address, code) rows counted per hour before they are folded into one.
MAX_REFUSAL_KEYS_PER_HOUR = 2000
STALE = ("this record was changed by someone else since you opened it; nothing was saved: "
         "reload it and enter your change again")
TAKEN = ("this conflicts with a record saved at the same moment (the same MRN, serial or "
         "username, or a change to the same record); nothing was saved: reload and try again")
BUSY = "the clinic was busy with a change to the same records; nothing was saved: try again"


class Conflict(RefusedOperation):
    """Someone else changed the record since it was read: nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="conflict")


class NotFound(RefusedOperation):
    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"no {what} with id {ident}", code="not_found")


class Forbidden(RefusedOperation):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="forbidden")


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user (or the system)."""

    username: str
    role: str  # physician | nurse | patient | admin | system
    user_id: int | None = None
    patient_id: int | None = None
    epoch: int = 0  # the user's session epoch when this actor signed in
    shown_as: str = ""  # how pages name this user (labels.person); the username when empty


SYSTEM = Actor("system", "system")


def brief(value: Any, limit: int = BRIEF_CHARS) -> Any:
    """An outside value cut to what a log line or an error message should hold."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, bool | int | float) or value is None:
        text = str(value)
        return value if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
    text = json.dumps(jsonable(value), default=str)
    return jsonable(value) if len(text) <= limit else brief(text, limit)


def conflict_for(exc: BaseException) -> Conflict | None:
    """The Conflict a database error means, or None if it is not a lost race."""
    if isinstance(exc, StaleDataError):
        return Conflict(STALE)
    if isinstance(exc, IntegrityError):
        return Conflict(TAKEN)
    if isinstance(exc, OperationalError):
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if state in ("40001", "40P01") or "database is locked" in str(exc.orig):
            return Conflict(BUSY)
    return None


_ID_SEGMENT = re.compile(r"(?<=/)(\d+|[^/]{16,})(?=/|$)")


def fold_path(action: str) -> str:
    """A request's method and path with numeric or long segments folded (ids, tokens:
    ``POST /patients/{n}/refill``), bounded: a flood over many ids is one counter."""
    return _ID_SEGMENT.sub("{n}", action.split("?", 1)[0])[:80]


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def snapshot(row: Any, exclude: tuple[str, ...] = ("state", "password_hash")) -> dict[str, Any]:
    """The columns of a mapped row as JSON values (for the audit trail)."""
    return {c.key: jsonable(getattr(row, c.key)) for c in row.__table__.columns
            if c.key not in exclude}


class UnitOfWork:
    def __init__(self, factory: sessionmaker[Session], actor: Actor,
                 now: datetime | None = None) -> None:
        from openitb.clinic.clock import clinic_now

        self.factory = factory
        self.actor = actor
        self.session: Session = factory()
        self.now = now or clinic_now(self.session)
        self.action = ""
        self.address = ""  # the client's address, when a request is the source
        # Anonymous refusals are counted, not logged one by one (see the module docstring).
        self.counted = actor.role == "anonymous"
        self._audits: list[AuditEntry] = []

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None:
                try:
                    self.session.add_all(self._audits)
                    self.session.commit()
                except (StaleDataError, IntegrityError, OperationalError) as e:
                    conflict = conflict_for(e)
                    self.session.rollback()
                    if conflict is None:
                        raise
                    self._log_refusal(conflict)
                    raise conflict from e
            else:
                self.session.rollback()
                conflict = conflict_for(exc)
                if conflict is not None:
                    self._log_refusal(conflict)
                    raise conflict from exc
                if isinstance(exc, OpenITBError):
                    self._log_refusal(exc)
        finally:
            self.session.close()

    def flush(self, taken: str | None = None) -> None:
        """Flush now; a unique value taken meanwhile is refused with ``taken`` when given."""
        try:
            self.session.flush()
        except IntegrityError as e:
            if taken is None:
                raise
            raise RefusedOperation(taken, code="conflict") from e

    def claim(self, row: Any) -> None:
        """Take the optimistic lock of a versioned row now (its version moves on), for a change
        that writes other rows only: a change to the same row racing with it is a Conflict."""
        from sqlalchemy import inspect, update
        from sqlalchemy.orm.attributes import set_committed_value

        mapper = inspect(row).mapper
        column = mapper.version_id_col
        key = mapper.get_property_by_column(column).key
        current = getattr(row, key)
        table = mapper.local_table
        pk = mapper.primary_key[0]
        done = self.session.execute(
            update(table).where(pk == getattr(row, pk.key), column == current)
            .values({column.name: current + 1}))
        if getattr(done, "rowcount", 0) != 1:
            raise StaleDataError(f"{table.name} {getattr(row, pk.key)} changed meanwhile")
        set_committed_value(row, key, current + 1)

    def audit(self, action: str, entity: str, entity_id: object, before: dict[str, Any] | None,
              after: dict[str, Any] | None) -> None:
        """An entry for a change; written with the change, at commit, or not at all."""
        self._audits.append(AuditEntry(
            at=self.now, actor=self.actor.username[:80], role=self.actor.role, action=action,
            entity=entity, entity_id=str(entity_id)[:40], before=jsonable(before),
            after=jsonable(after), outcome="ok"))

    def _log_refusal(self, exc: OpenITBError) -> None:
        if isinstance(exc, RefusedOperation):
            detail: dict[str, Any] = {"code": exc.code, "reason": brief(exc.reason, 500)}
        elif isinstance(exc, InvalidInput):
            detail = {"code": "invalid", "field": brief(exc.field, 80), "given": brief(exc.given),
                      "allowed": brief(exc.allowed, 500)}
        else:
            detail = {"code": "error", "reason": brief(str(exc), 500)}
        with self.factory() as s, s.begin():
            if self.counted:
                count_refusal(s, self.now, fold_path(self.action or "unknown"),
                              self.address[:64], str(detail["code"])[:20])
                return
            s.add(AuditEntry(
                at=self.now, actor=self.actor.username[:80], role=self.actor.role,
                action=(self.action or "unknown")[:60], entity="request", entity_id="",
                before=None, after=detail, outcome="refused"))

    def get(self, model: type[Any], ident: object, what: str) -> Any:
        try:
            key = int(str(ident))
        except ValueError:
            raise InvalidInput(f"{what}_id", ident, "a whole number") from None
        if not 0 < key < 2**31:
            raise NotFound(what, ident)
        row = self.session.get(model, key)
        if row is None:
            raise NotFound(what, ident)
        return row


def count_refusal(s: Session, now: datetime, path: str, address: str, code: str) -> None:
    """One more refusal of this kind this hour (an upsert: concurrent counts add up)."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = s.scalar(select(func.count()).select_from(RefusalCount)
                    .where(RefusalCount.hour == hour)) or 0
    if keys >= MAX_REFUSAL_KEYS_PER_HOUR:  # a flood of distinct paths or addresses: one row
        path, address = "*", "*"
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(RefusalCount).values(
        hour=hour, path=path, address=address, code=code, count=1, first_at=now, last_at=now)
    s.execute(stmt.on_conflict_do_update(
        index_elements=["hour", "path", "address", "code"],
        set_={"count": RefusalCount.count + 1, "last_at": stmt.excluded.last_at}))


def utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
