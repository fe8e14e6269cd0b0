"""The position store: SQLAlchemy, SQLite (WAL) by default, PostgreSQL supported."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from liqbot.store.migrations import ensure_head


class Uint256(TypeDecorator):
    """Token amounts exceed 64 bits: NUMERIC(78,0) on PostgreSQL, decimal text on SQLite; ints in Python."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Any) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> int | None:
        return None if value is None else int(value)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    health_factor: Mapped[int] = mapped_column(BigInteger)  # wad, capped (domain.health.storable_hf)
    collateral_base: Mapped[int] = mapped_column(BigInteger, default=0)
    debt_base: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_block: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    # the block we first stored the user at: the capture audit's "tracked before the liquidation?" (the rest of
    # the row is rewritten right after a liquidation)
    first_seen_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (Index("ix_users_hf_debt", "health_factor", "debt_base"),)


class Position(Base):
    __tablename__ = "positions"
    user: Mapped[str] = mapped_column(String(42), ForeignKey("users.address", ondelete="CASCADE"), primary_key=True)
    asset: Mapped[str] = mapped_column(String(42), primary_key=True)
    collateral: Mapped[int] = mapped_column(Uint256, default=0)
    debt: Mapped[int] = mapped_column(Uint256, default=0)
    collateral_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_positions_asset", "asset"),)


class Attempt(Base):
    """One liquidation attempt, from detection to outcome."""

    __tablename__ = "attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(42), index=True)
    path: Mapped[str] = mapped_column(String(16))  # fast | scan | update | fallback
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detected_block: Mapped[int] = mapped_column(BigInteger, default=0)
    detected_at: Mapped[float] = mapped_column(Float)
    enqueued_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True, unique=True)
    collateral_asset: Mapped[str | None] = mapped_column(String(42), nullable=True)
    debt_asset: Mapped[str | None] = mapped_column(String(42), nullable=True)
    debt_to_cover: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    outcome: Mapped[str] = mapped_column(String(24))  # sent|mined|reverted|lost|replaced|dropped|skipped|failed|dry_run
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # detection -> send
    gas_used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mined_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_fee: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    tip: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    collateral_price: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    debt_price: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    expected_profit_base: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    realised_profit_base: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    debt_repaid: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    collateral_seized: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    rival_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)  # the liquidator we raced, when known
    route: Mapped[str | None] = mapped_column(String(10), nullable=True)  # inventory | flash (our contract)


class Capture(Base):
    """Every LiquidationCall on the market, ours or lost and why (liqbot.domain.capture): the capture rate."""

    __tablename__ = "captures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    block: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[int] = mapped_column(BigInteger, index=True)
    user: Mapped[str] = mapped_column(String(42), index=True)
    liquidator: Mapped[str] = mapped_column(String(42))
    collateral_asset: Mapped[str] = mapped_column(String(42))
    debt_asset: Mapped[str] = mapped_column(String(42))
    debt_covered: Mapped[int] = mapped_column(Uint256)
    collateral_seized: Mapped[int] = mapped_column(Uint256)
    bonus_base: Mapped[int] = mapped_column(BigInteger)  # collateral seized minus debt covered, at the block's prices
    ours: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # why lost; None when ours
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # ours that made it, or explains the loss
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_captures_log"),)


class BreakerEvent(Base):
    """Every state change of the circuit breaker, with its cause."""

    __tablename__ = "breaker_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    old_state: Mapped[str] = mapped_column(String(16))
    new_state: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(200))


class Cursor(Base):
    """Durable progress markers, e.g. the producer's last processed block."""

    __tablename__ = "cursors"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def plain_engine(url: str) -> Engine:
    """An engine with our connection settings; the schema left as it is."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_engine(url: str) -> Engine:
    """An engine on a database at the newest schema: upgraded first if needed, safe when processes start together."""
    engine = plain_engine(url)
    ensure_head(engine)
    return engine


@cache
def session_factory(url: str) -> sessionmaker:
    return sessionmaker(make_engine(url), expire_on_commit=False)
