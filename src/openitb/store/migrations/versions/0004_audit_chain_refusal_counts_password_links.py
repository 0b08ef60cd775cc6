"""audit hash chain and head, refusal counters, password links, hashed feed tokens, and an
audit trail that refuses a replacing insert (SQLite) and TRUNCATE (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Existing audit rows are chained in id order (with the append-only triggers lifted for the
backfill only); existing calendar feed tokens are kept, stored as their SHA-256 from now on.
"""
from __future__ import annotations

import hashlib
from typing import cast

import sqlalchemy as sa
from alembic import op

import openitb.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    for table in ("users", "alarms"):  # optimistic locks
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1",
                                          nullable=False))
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), server_default="",
                                      nullable=False))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), server_default="",
                                      nullable=False))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_table(
        "refusal_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", openitb.store.models.UTCDateTime(), nullable=False),
        sa.Column("path", sa.String(length=80), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", openitb.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_at", openitb.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("uq_refusal_counts_key", "refusal_counts",
                    ["hour", "path", "address", "code"], unique=True)
    op.create_table(
        "password_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("created_at", openitb.store.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", openitb.store.models.UTCDateTime(), nullable=False),
        sa.Column("used_at", openitb.store.models.UTCDateTime(), nullable=True),
        sa.Column("issued_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"))
    op.create_index(op.f("ix_password_links_user_id"), "password_links", ["user_id"],
                    unique=False)
    _backfill()
    _refuse_replace_and_truncate()


def _backfill() -> None:
    from openitb.store import audit
    from openitb.store.models import AuditEntry

    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_trail_no_update")
    elif dialect == "postgresql":
        op.execute("ALTER TABLE audit_trail DISABLE TRIGGER audit_trail_append_only")
    table = cast(sa.Table, AuditEntry.__table__)
    prev, last_id = GENESIS, 0
    rows = bind.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    for r in rows:
        entry = AuditEntry(**{k: r[k] for k in ("id", "at", "actor", "role", "action",
                                                 "entity", "entity_id", "before", "after",
                                                 "outcome")})
        digest = audit.row_hash(prev, entry)
        bind.execute(table.update().where(table.c.id == r["id"])
                     .values(prev_hash=prev, row_hash=digest))
        prev, last_id = digest, int(r["id"])
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER audit_trail_no_update BEFORE UPDATE ON audit_trail "
                   "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END")
    elif dialect == "postgresql":
        op.execute("ALTER TABLE audit_trail ENABLE TRIGGER audit_trail_append_only")
    bind.execute(sa.text("INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, :i, :h)"),
                 {"i": last_id, "h": prev})
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("feed_token", sa.String))
    for uid, token in bind.execute(sa.select(users.c.id, users.c.feed_token)
                                   .where(users.c.feed_token.is_not(None))).all():
        bind.execute(users.update().where(users.c.id == uid).values(
            feed_token=hashlib.sha256(str(token).encode()).hexdigest()))


def _refuse_replace_and_truncate() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # INSERT OR REPLACE / REPLACE INTO delete the old row without firing delete triggers
        # (unless recursive_triggers is on): refuse any insert that is not past the end.
        op.execute(
            "CREATE TRIGGER audit_trail_no_replace BEFORE INSERT ON audit_trail "
            "WHEN NEW.id IS NULL OR NEW.id <= (SELECT COALESCE(MAX(id), 0) FROM audit_trail) "
            "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_trail_no_truncate BEFORE TRUNCATE ON audit_trail "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_trail_no_replace")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_trail_no_truncate ON audit_trail")
    for table in ("users", "alarms"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("version")
    op.drop_index(op.f("ix_password_links_user_id"), table_name="password_links")
    op.drop_table("password_links")
    op.drop_index("uq_refusal_counts_key", table_name="refusal_counts")
    op.drop_table("refusal_counts")
    op.drop_table("audit_head")
    # The hash columns go with the append-only triggers lifted (a batch copy on SQLite).
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_trail_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_trail_no_delete")
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.drop_column("row_hash")
        batch_op.drop_column("prev_hash")
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_trail_no_{verb.lower()} BEFORE {verb} ON audit_trail "
                "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END")
