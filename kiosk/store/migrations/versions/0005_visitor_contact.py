"""The facility's contact details for visitors (issue 16): the phone, e-mail and
opening hours a visitor is given when their call cannot take place.

Revision ID: 0005_visitor_contact
Revises: 0004_transparency
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_visitor_contact"
down_revision: str | Sequence[str] | None = "0004_transparency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("visitor_phone", 40), ("visitor_email", 254), ("visitor_hours", 200))


def upgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        for name, length in COLUMNS:
            batch.add_column(
                sa.Column(name, sa.String(length), nullable=False, server_default="")
            )


def downgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
