"""Unit of work: each use case runs in one transaction, and leaves an audit entry per change.

A refused or invalid request rolls the transaction back and is then written to the audit trail in
a transaction of its own, so that every refusal is logged even though nothing else was kept.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from openitb.errors import InvalidInput, OpenITBError, RefusedOperation
from openitb.store.models import AuditEntry


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


SYSTEM = Actor("system", "system")


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

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None:
                try:
                    self.session.commit()
                except StaleDataError as e:
                    self.session.rollback()
                    conflict = Conflict(
                        "this record was changed by someone else since you opened it; "
                        "nothing was saved: reload it and enter your change again")
                    self._log_refusal(conflict)
                    raise conflict from e
            else:
                self.session.rollback()
                if isinstance(exc, OpenITBError):
                    self._log_refusal(exc)
        finally:
            self.session.close()

    def audit(self, action: str, entity: str, entity_id: object, before: dict[str, Any] | None,
              after: dict[str, Any] | None) -> None:
        self.session.add(AuditEntry(
            at=self.now, actor=self.actor.username, role=self.actor.role, action=action,
            entity=entity, entity_id=str(entity_id), before=jsonable(before),
            after=jsonable(after), outcome="ok"))

    def _log_refusal(self, exc: OpenITBError) -> None:
        if isinstance(exc, RefusedOperation):
            detail: dict[str, Any] = {"code": exc.code, "reason": exc.reason}
        elif isinstance(exc, InvalidInput):
            detail = {"code": "invalid", "field": exc.field, "given": jsonable(exc.given),
                      "allowed": exc.allowed}
        else:
            detail = {"code": "error", "reason": str(exc)}
        with self.factory() as s, s.begin():
            s.add(AuditEntry(
                at=self.now, actor=self.actor.username, role=self.actor.role,
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


def utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
