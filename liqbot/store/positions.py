"""Reads and writes of users, positions and cursors."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from liqbot.domain.health import AccountData, storable_hf
from liqbot.domain.liquidation import ReservePosition
from liqbot.store.db import Cursor, Position, User


def save_position(session: Session, acc: AccountData, positions: Sequence[ReservePosition], block: int) -> None:
    """Replace a user's stored position with what the chain says now."""
    _upsert_user(session, acc, block)
    session.execute(delete(Position).where(Position.user == acc.user))
    session.add_all(
        Position(user=acc.user, asset=p.asset, collateral=p.collateral, debt=p.debt, collateral_enabled=p.collateral_enabled)
        for p in positions
    )


def save_health(session: Session, accounts: Iterable[AccountData], block: int) -> None:
    """Refresh health factors from a scan in one bulk upsert; per-reserve rows are left to update_position."""
    now = time.time()
    rows = [{"address": a.user, "health_factor": storable_hf(a.health_factor), "collateral_base": a.collateral_base,
             "debt_base": a.debt_base, "updated_block": block, "updated_at": now, "first_seen_block": block}
            for a in accounts]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite_insert, "postgresql": pg_insert}.get(dialect)
    if insert is None:  # another database: the slow, portable way
        for a in accounts:
            _upsert_user(session, a, block)
        return
    stmt = insert(User)
    stmt = stmt.on_conflict_do_update(index_elements=[User.address], set_={
        **{c: stmt.excluded[c] for c in ("health_factor", "collateral_base", "debt_base", "updated_block", "updated_at")},
        "first_seen_block": func.coalesce(User.first_seen_block, stmt.excluded.first_seen_block)})
    for start in range(0, len(rows), 5_000):
        session.execute(stmt, rows[start : start + 5_000])


def _upsert_user(session: Session, acc: AccountData, block: int) -> None:
    user = session.get(User, acc.user) or User(address=acc.user)
    user.health_factor = storable_hf(acc.health_factor)
    user.collateral_base, user.debt_base = acc.collateral_base, acc.debt_base
    user.updated_block, user.updated_at = block, time.time()
    if user.first_seen_block is None:
        user.first_seen_block = block
    session.merge(user)


def health_factors(session: Session) -> dict[str, int]:
    """user -> stored health factor (wad, capped): what the producer orders its checks by."""
    return dict(session.execute(select(User.address, User.health_factor)).tuples().all())


def tracked_since(session: Session, users: Iterable[str]) -> dict[str, int]:
    """The block we first stored each user at (the capture audit: did we know it before its liquidation?)."""
    rows = session.execute(select(User.address, User.first_seen_block, User.updated_block).where(User.address.in_(users)))
    return {user: min(b for b in (first, updated) if b is not None) for user, first, updated in rows}


def known_users(session: Session) -> list[str]:
    return list(session.scalars(select(User.address).order_by(User.address)))


def at_risk_users(session: Session, threshold_wad: int) -> list[str]:
    return list(session.scalars(
        select(User.address).where(User.health_factor < threshold_wad, User.debt_base > 0).order_by(User.health_factor)
    ))


def exposure(session: Session) -> dict[str, set[str]]:
    """asset -> users holding it as collateral or debt."""
    out: dict[str, set[str]] = {}
    for user, asset in session.execute(select(Position.user, Position.asset)):
        out.setdefault(asset, set()).add(user)
    return out


def get_cursor(session: Session, name: str) -> int | None:
    row = session.get(Cursor, name)
    return row.block if row else None


def set_cursor(session: Session, name: str, block: int) -> None:
    session.merge(Cursor(name=name, block=block))
