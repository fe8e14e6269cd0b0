"""captures: every LiquidationCall on the market, ours or lost and why (dca15df).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import liqbot.store.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    uint256 = liqbot.store.db.Uint256
    op.create_table(
        "captures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("user", sa.String(42), nullable=False),
        sa.Column("liquidator", sa.String(42), nullable=False),
        sa.Column("collateral_asset", sa.String(42), nullable=False),
        sa.Column("debt_asset", sa.String(42), nullable=False),
        sa.Column("debt_covered", uint256(), nullable=False),
        sa.Column("collateral_seized", uint256(), nullable=False),
        sa.Column("bonus_base", sa.BigInteger(), nullable=False),
        sa.Column("ours", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_captures_log"),
    )
    op.create_index("ix_captures_block_timestamp", "captures", ["block_timestamp"])
    op.create_index("ix_captures_user", "captures", ["user"])


def downgrade() -> None:
    op.drop_table("captures")
