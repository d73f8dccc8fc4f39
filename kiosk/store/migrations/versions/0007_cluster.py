"""Several server processes (issue 14): who owns the live calls, under which lease epoch.

Revision ID: 0007_cluster
Revises: 0005_outbox
Create Date: 2026-12-03 09:10:00

``cluster_leases`` holds the one lease over the live calls: the node that owns
them, its epoch (raised whenever another node takes the lease) and when it
runs out unless renewed. Every live call carries the epoch of the owner that
may change it (``calls.lease_epoch``) and that owner's name; an owner whose
epoch is not the call's changes nothing. A single process leaves both at
their defaults.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_cluster"
down_revision: str | Sequence[str] | None = "0005_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_leases")),
    )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("owner_node", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("lease_epoch", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("lease_epoch")
        batch.drop_column("owner_node")
    op.drop_table("cluster_leases")
