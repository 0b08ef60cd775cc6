"""SQLAlchemy 2 mappings of the clinic: patients, accounts, pumps, programs, screening trials,
refills, alarms, visits, MRI records, the clinic settings and the append-only audit trail.

Times are stored as naive UTC and read back timezone-aware (``UTCDateTime``), so SQLite and
PostgreSQL give the same values.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive (UTC) so every backend agrees."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    birth_date: Mapped[date] = mapped_column(Date)
    origin: Mapped[str] = mapped_column(String(20))  # spinal | cerebral
    population: Mapped[str] = mapped_column(String(20))  # spinal | cerebral | pediatric
    diagnosis: Mapped[str] = mapped_column(String(200), default="")
    weight_kg: Mapped[float] = mapped_column(Float)
    injury_level: Mapped[str] = mapped_column(String(10), default="")  # e.g. T4, C6
    risk_high_injury: Mapped[bool] = mapped_column(Boolean, default=False)  # T6 or above
    risk_communication: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_prior_withdrawal: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[str] = mapped_column(String(20), default="candidate", index=True)
    checklist: Mapped[dict[str, Any]] = mapped_column(default=dict)
    emergency_contact: Mapped[str] = mapped_column(String(200), default="")
    # The patient's own phone, E.164 (+ and up to 15 digits): services.parse_phone.
    phone: Mapped[str] = mapped_column(String(16), default="", server_default="")
    created_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    pumps: Mapped[list[Pump]] = relationship(back_populates="patient", order_by="Pump.id")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # physician | nurse | patient | admin
    password_hash: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # Sessions carry the epoch they were issued in; signing out bumps it, ending them all.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # SHA-256 of the secret part of the personal calendar feed URL (calendar clients send no
    # cookie); the token itself is shown once, when it is issued or rotated.
    feed_token: Mapped[str | None] = mapped_column(String(64), default=None)
    # Optimistic lock: two changes to one account at once (a feed token, a password) cannot
    # both be written.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (Index("uq_users_feed_token", "feed_token", unique=True),)
    __mapper_args__ = {"version_id_col": version}


class Pump(Base):
    """An implanted pump and its virtual controller's snapshot (``state``)."""

    __tablename__ = "pumps"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    profile: Mapped[str] = mapped_column(String(40))
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    catheter: Mapped[str] = mapped_column(String(40))
    catheter_length_cm: Mapped[float] = mapped_column(Float)
    tip_level: Mapped[str] = mapped_column(String(10))
    implanted_at: Mapped[datetime]
    explanted_at: Mapped[datetime | None] = mapped_column(default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Derived at every pump operation, so the dashboard is one indexed query.
    concentration: Mapped[float] = mapped_column(Float, default=0.0)
    dose_per_day: Mapped[float] = mapped_column(Float, default=0.0)
    reservoir_ml: Mapped[float] = mapped_column(Float, default=0.0)
    low_alarm_at: Mapped[datetime | None] = mapped_column(default=None)
    empty_at: Mapped[datetime | None] = mapped_column(default=None)
    refill_by: Mapped[datetime | None] = mapped_column(default=None, index=True)
    eri_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    synced_at: Mapped[datetime | None] = mapped_column(default=None)
    # Optimistic lock: two operations on the same pump at once cannot both write its state.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    # The dashboard's classes, each an index range among the active pumps (migration 0006):
    # almost every pump is active, so an index on ``active`` alone narrows nothing.
    __table_args__ = (Index("ix_pumps_active_refill_by", "active", "refill_by"),
                      Index("ix_pumps_active_eri_at", "active", "eri_at"),
                      Index("ix_pumps_active_dose_per_day", "active", "dose_per_day"))
    __mapper_args__ = {"version_id_col": version}

    patient: Mapped[Patient] = relationship(back_populates="pumps")


class Program(Base):
    __tablename__ = "programs"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    pump_id: Mapped[int] = mapped_column(ForeignKey("pumps.id"))
    at: Mapped[datetime]
    prescription: Mapped[dict[str, Any]]
    concentration: Mapped[float] = mapped_column(Float)
    dose_per_day: Mapped[float] = mapped_column(Float)
    classification: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    override_reason: Mapped[str | None] = mapped_column(Text, default=None)
    by_user: Mapped[str] = mapped_column(String(80))


class Screening(Base):
    __tablename__ = "screenings"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    started_at: Mapped[datetime]
    # [{dose_mcg, at, effect_hours, mas_before: {group: score}, mas_after: {group: score}}]
    doses: Mapped[list[Any]]
    responder: Mapped[bool] = mapped_column(Boolean)
    effective_dose_mcg: Mapped[float | None] = mapped_column(Float, default=None)
    first_dose_per_day: Mapped[float | None] = mapped_column(Float, default=None)
    reason: Mapped[str] = mapped_column(Text)
    by_user: Mapped[str] = mapped_column(String(80))


class Refill(Base):
    __tablename__ = "refills"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    pump_id: Mapped[int] = mapped_column(ForeignKey("pumps.id"))
    at: Mapped[datetime]
    expected_ml: Mapped[float] = mapped_column(Float)
    withdrawn_ml: Mapped[float] = mapped_column(Float)
    discrepancy_ml: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    volume_ml: Mapped[float] = mapped_column(Float)
    old_concentration: Mapped[float] = mapped_column(Float)
    concentration: Mapped[float] = mapped_column(Float)
    bridge: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    refill_by: Mapped[datetime | None] = mapped_column(default=None)
    low_alarm_at: Mapped[datetime | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    by_user: Mapped[str] = mapped_column(String(80))


class Alarm(Base):
    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    pump_id: Mapped[int] = mapped_column(ForeignKey("pumps.id"))
    kind: Mapped[str] = mapped_column(String(30))
    critical: Mapped[bool] = mapped_column(Boolean)
    raised_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(80), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    # Optimistic lock: two acknowledgements of one alarm at once cannot both be written.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (Index("ix_alarms_open", "acknowledged_at", "cleared_at"),
                      # the dashboard's open alarms, critical first, oldest first (0006)
                      Index("ix_alarms_open_critical", "acknowledged_at", "critical",
                            "raised_at"))
    __mapper_args__ = {"version_id_col": version}


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(30))
    summary: Mapped[str] = mapped_column(Text)
    by_user: Mapped[str] = mapped_column(String(80))

    __table_args__ = (Index("ix_visits_patient_at", "patient_id", "at"),)


class MriRecord(Base):
    __tablename__ = "mri_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    pump_id: Mapped[int] = mapped_column(ForeignKey("pumps.id"))
    scan_start: Mapped[datetime]
    scan_end: Mapped[datetime]
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    check_result: Mapped[str | None] = mapped_column(Text, default=None)
    by_user: Mapped[str] = mapped_column(String(80))


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


_AUDIT_ORDER = itertools.count()


class AuditEntry(Base):
    """Append-only: the migrations install triggers that refuse UPDATE, DELETE, a replacing
    INSERT (SQLite) and TRUNCATE (PostgreSQL). Each row carries the hash of the one before it
    (``store/audit.py`` assigns ids and hashes at flush, in the order the entries were made)."""

    __tablename__ = "audit_trail"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(40), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    outcome: Mapped[str] = mapped_column(String(20), default="ok")  # ok | refused
    prev_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    row_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        # Not a column: the order the entries were made in, which is their order in the chain.
        self.__dict__["_audit_order"] = next(_AUDIT_ORDER)


class AuditHead(Base):
    """The end of the audit chain (one row): locked by every transaction that appends, so that
    appends are serialised and the chain never forks; also shows a truncated tail."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class RefusalCount(Base):
    """Refusals of anonymous requests, counted per hour, path (ids folded) and address: one row
    per kind, not one per request, so that a flood cannot grow the audit trail."""

    __tablename__ = "refusal_counts"
    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime]
    path: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]

    __table_args__ = (Index("uq_refusal_counts_key", "hour", "path", "address", "code",
                            unique=True),)


class PasswordLink(Base):
    """A one-time link to set a password (a new account) or reset it, issued by an administrator
    (or by a patient's clinician for a patient account). Only the token's SHA-256 is kept."""

    __tablename__ = "password_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(10))  # setup | reset
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    issued_by: Mapped[str] = mapped_column(String(80))


class ApiToken(Base):
    """A personal access token for API clients (``Authorization: Bearer``): it acts as its
    owner, with the owner's role at the time of each request. Only the token's SHA-256 is kept;
    it stops at ``expires_at`` or when revoked (rows are kept for the audit trail)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(12))  # shown in lists, to recognise a token
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


__all__ = ["Base", "Patient", "User", "Pump", "Program", "Screening", "Refill", "Alarm", "Visit",
           "MriRecord", "Setting", "AuditEntry", "AuditHead", "RefusalCount", "PasswordLink",
           "ApiToken", "UTCDateTime"]
