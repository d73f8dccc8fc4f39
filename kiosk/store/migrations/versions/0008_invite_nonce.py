"""Invite links that can be sent again (issue 16): each invite keeps a random nonce.

Revision ID: 0008_invite_nonce
Revises: 0007_cluster
Create Date: 2026-12-03 14:00:00

The visitor's token is derived from a server key, the booking and the invite's
``nonce`` (kiosk/signalling/visitors/invites.py), so sending the invite again
sends the same link while the token itself is still stored only hashed. A new
link is a new nonce. Invites made before this revision have none: they keep
working, and the booking gets a new link when one must be sent again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_invite_nonce"
down_revision: str | Sequence[str] | None = "0007_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invites") as batch:
        batch.add_column(sa.Column("nonce", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invites") as batch:
        batch.drop_column("nonce")
