"""The liquidation attempts table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from liqbot.store.db import Attempt


def record_attempt(session: Session, **fields: Any) -> Attempt:
    attempt = Attempt(**fields)
    session.add(attempt)
    session.flush()
    return attempt


def record_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    """A group's attempts in one flush."""
    session.add_all([Attempt(**fields) for fields in rows])
    session.flush()


def update_attempt(session: Session, attempt_id: int, **fields: Any) -> None:
    attempt = session.get(Attempt, attempt_id)
    if attempt is not None:
        for k, v in fields.items():
            setattr(attempt, k, v)


def attempts_for(session: Session, user: str | None = None) -> list[Attempt]:
    q = select(Attempt).order_by(Attempt.id)
    if user:
        q = q.where(Attempt.user == user)
    return list(session.scalars(q))


def sent_attempts(session: Session) -> list[Attempt]:
    return list(session.scalars(select(Attempt).where(Attempt.tx_hash.is_not(None)).order_by(Attempt.id)))


def awaiting_receipt(session: Session, users: list[str], since: float) -> set[str]:
    """Those of `users` with a liquidation of ours sent at or after `since` and not mined yet (or not known to be)."""
    return set(session.scalars(select(Attempt.user).where(
        Attempt.user.in_(users) & (Attempt.outcome == "sent") & (Attempt.sent_at >= since))))


def pending_attempts(session: Session, limit: int = 500) -> list[Attempt]:
    """Sent liquidations whose receipt is not in yet."""
    return list(session.scalars(select(Attempt).where(Attempt.outcome == "sent").order_by(Attempt.id).limit(limit)))
