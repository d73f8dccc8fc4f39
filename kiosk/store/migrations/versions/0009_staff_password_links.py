"""Staff set their own passwords (issue 16): one-time set-password links, staff e-mail.

Revision ID: 0009_staff_password_links
Revises: 0007_cluster
Create Date: 2026-12-03 14:00:00

``staff_password_links`` holds each link's token only as its SHA-256, the
account it is bound to, when it runs out, and when it was used or replaced
by a newer link; a link that is either is dead. ``staff.email`` is where a
new account's link is mailed (empty: the admin is shown it once).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_staff_password_links"
down_revision: str | Sequence[str] | None = "0008_invite_nonce"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_password_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_password_links_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_staff_password_links")),
    )
    op.create_index(
        op.f("ix_staff_password_links_staff_id"), "staff_password_links", ["staff_id"]
    )
    with op.batch_alter_table("staff") as batch:
        batch.add_column(
            sa.Column("email", sa.String(length=254), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("email")
    op.drop_index(op.f("ix_staff_password_links_staff_id"), table_name="staff_password_links")
    op.drop_table("staff_password_links")
