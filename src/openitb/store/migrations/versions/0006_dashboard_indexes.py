"""indexes for the dashboard's classes (active pumps by refill-by, ERI and dose; open alarms)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pumps_active_refill_by", "pumps", ["active", "refill_by"]),
    ("ix_pumps_active_eri_at", "pumps", ["active", "eri_at"]),
    ("ix_pumps_active_dose_per_day", "pumps", ["active", "dose_per_day"]),
    ("ix_alarms_open_critical", "alarms", ["acknowledged_at", "critical", "raised_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
