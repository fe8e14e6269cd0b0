"""Baseline: the schema of 2026-11-24 (db7c585): users, positions, attempts with fees, prices and
profit, breaker events, cursors. A database created then by create_all is stamped at this revision.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import liqbot.store.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    uint256 = liqbot.store.db.Uint256
    op.create_table(
        "users",
        sa.Column("address", sa.String(42), primary_key=True),
        sa.Column("health_factor", sa.BigInteger(), nullable=False),
        sa.Column("collateral_base", sa.BigInteger(), nullable=False),
        sa.Column("debt_base", sa.BigInteger(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_users_hf_debt", "users", ["health_factor", "debt_base"])
    op.create_table(
        "positions",
        sa.Column("user", sa.String(42), sa.ForeignKey("users.address", ondelete="CASCADE"), primary_key=True),
        sa.Column("asset", sa.String(42), primary_key=True),
        sa.Column("collateral", uint256(), nullable=False),
        sa.Column("debt", uint256(), nullable=False),
        sa.Column("collateral_enabled", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_positions_asset", "positions", ["asset"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(42), nullable=False),
        sa.Column("path", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("detected_block", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", sa.Float(), nullable=False),
        sa.Column("enqueued_at", sa.Float(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True, unique=True),
        sa.Column("collateral_asset", sa.String(42), nullable=True),
        sa.Column("debt_asset", sa.String(42), nullable=True),
        sa.Column("debt_to_cover", uint256(), nullable=True),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("mined_block", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("max_fee", uint256(), nullable=True),
        sa.Column("tip", uint256(), nullable=True),
        sa.Column("collateral_price", uint256(), nullable=True),
        sa.Column("debt_price", uint256(), nullable=True),
        sa.Column("expected_profit_base", sa.BigInteger(), nullable=True),
        sa.Column("realised_profit_base", sa.BigInteger(), nullable=True),
        sa.Column("debt_repaid", uint256(), nullable=True),
        sa.Column("collateral_seized", uint256(), nullable=True),
    )
    op.create_index("ix_attempts_user", "attempts", ["user"])
    op.create_table(
        "breaker_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("old_state", sa.String(16), nullable=False),
        sa.Column("new_state", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
    )
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("block", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("cursors", "breaker_events", "attempts", "positions", "users"):
        op.drop_table(table)
