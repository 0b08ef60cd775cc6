"""the patient's own phone number (E.164; empty when not recorded)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=16), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("phone")
