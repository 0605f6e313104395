"""idempotency_keys: the admin's own scope (user_id NULL), unique per key among the admin's keys.

``POST /v1/users`` is the admin's and creates the user, so its key cannot belong to a user row. NULL is
the admin's scope; ``(user_id, key)`` stays unique for users (NULLs are distinct there), and a partial
unique index makes ``key`` unique among the admin's keys.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADMIN_KEYS = sa.text("user_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column("user_id", existing_type=sa.Uuid(), nullable=True)
    op.create_index(
        op.f("uq_idempotency_keys_admin_key"),
        "idempotency_keys",
        ["key"],
        unique=True,
        postgresql_where=ADMIN_KEYS,
        sqlite_where=ADMIN_KEYS,
    )


def downgrade() -> None:
    op.drop_index(op.f("uq_idempotency_keys_admin_key"), table_name="idempotency_keys")
    # Before this revision a key belongs to a user: the admin's keys have no place there and are deleted.
    # They only replay answers to retries for at most a day (idempotency_ttl); a POST /v1/users retried across
    # the downgrade creates a second user, as it did before this revision.
    op.execute("DELETE FROM idempotency_keys WHERE user_id IS NULL")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column("user_id", existing_type=sa.Uuid(), nullable=False)
