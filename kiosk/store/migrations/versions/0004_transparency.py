"""The transparency log: the Merkle tree over the audit entries, its signed tree
heads and witnesses' cosignatures (issue 18), all append-only like the chain.

Revision ID: 0004_transparency
Revises: 0001
Create Date: 2026-12-07 10:00:00

The tree of entries written before this revision is built by the server the
first time it appends (kiosk/audit/log.py): a migration does not import the
application's hashing code. ``audit_entries.at`` gets an index: receipts and
the privilege report read a call's entries by time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_transparency"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("audit_tree", "audit_tree_heads", "audit_cosignatures")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_tree",
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_tree")),
    )
    op.create_table(
        "audit_tree_heads",
        sa.Column("size", SEQ, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_tree_heads")),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", SEQ, nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", "key_id", name=op.f("pk_audit_cosignatures")),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"], unique=False)
    _append_only_up()


def _append_only_up() -> None:
    # The same guard as the chain's (0001): the application only ever appends.
    if op.get_context().dialect.name == "sqlite":
        for table in TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        return
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION kiosk_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION kiosk_append_only()"
        )


def downgrade() -> None:
    op.drop_index("ix_audit_entries_at", table_name="audit_entries")
    for table in reversed(TABLES):
        op.drop_table(table)  # its triggers go with it
