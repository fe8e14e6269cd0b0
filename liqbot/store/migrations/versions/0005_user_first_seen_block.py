"""users.first_seen_block: the block a user was first stored at, for the capture audit.

Rows from before it start at their last update (the best known); the capture audit had kept the lowest
update block in Redis, which a Redis restart forgot.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("first_seen_block", sa.BigInteger(), nullable=True))
    op.execute("UPDATE users SET first_seen_block = updated_block")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("first_seen_block")
