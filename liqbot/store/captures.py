"""The capture audit's table: every LiquidationCall, ours or lost and why; rates and top loss reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from liqbot.domain.capture import Rate
from liqbot.store.db import Capture


def record_captures(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the classified events; one already stored (same tx hash and log index) is left as it is,
    so a page audited twice (a crash before the cursor moved) records each event once. Returns how many
    were new."""
    if not rows:
        return 0
    insert = {"sqlite": sqlite_insert, "postgresql": pg_insert}.get(session.get_bind().dialect.name)
    if insert is None:  # another database: the slow, portable way
        new = [r for r in rows if session.scalar(select(Capture.id).where(
            (Capture.tx_hash == r["tx_hash"]) & (Capture.log_index == r["log_index"]))) is None]
        session.add_all(Capture(**r) for r in new)
        session.flush()
        return len(new)
    stmt = (insert(Capture.__table__).on_conflict_do_nothing(index_elements=["tx_hash", "log_index"])
            .returning(Capture.__table__.c.id))  # a row comes back only when inserted (rowcount is -1 on psycopg)
    return sum(len(session.execute(stmt, r).all()) for r in rows)


def capture_rate(session: Session, since: int) -> Rate:
    """Ours / all LiquidationCalls whose block is at or after `since` (unix seconds), by count and bonus."""
    ours_bonus = func.coalesce(func.sum(case((Capture.ours, Capture.bonus_base), else_=0)), 0)
    ours = func.coalesce(func.sum(case((Capture.ours, 1), else_=0)), 0)
    row = session.execute(select(ours, func.count(), ours_bonus, func.coalesce(func.sum(Capture.bonus_base), 0))
                          .where(Capture.block_timestamp >= since)).one()
    return Rate(*(int(v) for v in row))


def loss_reasons(session: Session, since: int, limit: int = 5) -> list[tuple[str, int]]:
    """The most frequent reasons for losses since `since`, most frequent first."""
    n = func.count().label("n")
    query = (select(Capture.reason, n).where((Capture.block_timestamp >= since) & ~Capture.ours)
             .group_by(Capture.reason).order_by(n.desc(), Capture.reason).limit(limit))
    return [(reason or "", int(count)) for reason, count in session.execute(query)]


WINDOWS = {"1h": 3_600, "24h": 86_400}


def capture_summary(session: Session, now: float) -> dict[str, Any]:
    """What `liqbot status` and the metrics show, as plain data: the rate over each window (ours / total by
    count and by bonus), and the day's loss reasons."""
    rates = {name: capture_rate(session, int(now) - secs).as_dict() for name, secs in WINDOWS.items()}
    return {"rates": rates, "losses": loss_reasons(session, int(now) - WINDOWS["24h"], limit=10)}
