"""The capture audit's core (pure): each LiquidationCall on the market is ours, or lost for one reason.

The capture rate is the headline number; a loss is only worth counting if it says where the pipeline
fell short: never knew the user, never saw it liquidatable, saw it too late, chose not to send, or sent
and came second. Checks run in that order, so every event gets exactly one answer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from liqbot.domain.units import value_base

NOT_TRACKED = "not tracked"
NOT_DETECTED = "not detected"
DETECTED_LATE = "detected after the rival's block"
SKIPPED = "skipped: "  # + the skip's kind
MINED_LATER = "sent but mined later"
NOT_MINED = "sent but never mined"  # dropped from the mempool, or its nonce replaced
REVERTED = "reverted"
FAILED = "failed"
REASONS = (NOT_TRACKED, NOT_DETECTED, DETECTED_LATE, SKIPPED, MINED_LATER, NOT_MINED, REVERTED, FAILED)

# Outcomes of our attempts, by how far the attempt got: the furthest one explains a loss.
SENT_OUTCOMES = frozenset({"sent", "mined", "lost", "reverted", "dropped", "replaced"})
STAGE = {"skipped": 1, "dry_run": 1, "failed": 2, **dict.fromkeys(SENT_OUTCOMES, 3)}


@dataclass(frozen=True)
class LiquidationEvent:
    """One LiquidationCall log; (block, tx_index) orders it against our transactions."""

    block: int
    tx_index: int
    log_index: int
    tx_hash: str
    user: str
    liquidator: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int
    collateral_seized: int


@dataclass(frozen=True)
class AttemptView:
    """What the audit needs of one of our attempts for the user; mined_index is our transaction's index in
    its block when the chain told us (our own LiquidationCall), else None."""

    id: int
    detected_block: int
    outcome: str
    reason: str | None = None
    tx_hash: str | None = None
    mined_block: int | None = None
    mined_index: int | None = None


@dataclass(frozen=True)
class Verdict:
    ours: bool
    reason: str | None  # None exactly when ours
    attempt_id: int | None  # our attempt that made it, or that explains the loss


def reason_kind(reason: str | None) -> str:
    """A reason without its particulars: 'gas price above cap (31.0 gwei)' -> 'gas price above cap',
    'breaker open (3 failures)' -> 'breaker open', so losses and skips group by cause."""
    return (reason or "").split(":")[0].split(" (")[0].strip() or "unknown"


def classify(event: LiquidationEvent, ours: Collection[str], tracked: bool, attempts: Sequence[AttemptView]) -> Verdict:
    """Ours when one of our addresses liquidated; otherwise the first check that explains the loss."""
    mine = {a.lower() for a in ours if a}
    if event.liquidator.lower() in mine:
        own = next((a.id for a in attempts if a.tx_hash and a.tx_hash.lower() == event.tx_hash.lower()), None)
        return Verdict(True, None, own)
    if not tracked:
        return Verdict(False, NOT_TRACKED, None)
    relevant = [a for a in attempts if a.outcome in STAGE and not _captured_before(a, event)]
    if not relevant:
        return Verdict(False, NOT_DETECTED, None)
    before = [a for a in relevant if a.detected_block <= event.block]
    if not before:
        first = min(relevant, key=lambda a: (a.detected_block, a.id))
        return Verdict(False, DETECTED_LATE, first.id)
    best = max(before, key=lambda a: (STAGE[a.outcome], a.detected_block, a.id))
    return Verdict(False, _why(best), best.id)


def _captured_before(a: AttemptView, event: LiquidationEvent) -> bool:
    """Our liquidation mined ahead of this event belongs to an earlier capture, not to this race."""
    if a.outcome != "mined" or a.mined_block is None:
        return False
    if a.mined_block != event.block:
        return a.mined_block < event.block
    return a.mined_index is not None and a.mined_index < event.tx_index


def _why(a: AttemptView) -> str:
    if a.outcome in ("skipped", "dry_run"):
        return SKIPPED + ("dry run" if a.outcome == "dry_run" else reason_kind(a.reason))
    if a.outcome == "failed":
        return FAILED
    if a.outcome == "reverted":
        return REVERTED
    if a.outcome in ("dropped", "replaced"):
        return NOT_MINED
    return MINED_LATER  # sent, mined after the rival, or recorded lost: the rival was ordered first


def bonus_base(event: LiquidationEvent, collateral_price: int, collateral_decimals: int, debt_price: int,
               debt_decimals: int) -> int:
    """What the liquidator earned before gas, in base-currency units at the block's oracle prices:
    collateral seized minus debt covered."""
    return (value_base(event.collateral_seized, collateral_price, collateral_decimals)
            - value_base(event.debt_to_cover, debt_price, debt_decimals))


@dataclass(frozen=True)
class Rate:
    """Captured over all, by count and by bonus value (None when nothing happened in the window)."""

    ours: int
    total: int
    ours_bonus: int
    total_bonus: int

    @property
    def by_count(self) -> float | None:
        return self.ours / self.total if self.total else None

    @property
    def by_bonus(self) -> float | None:
        return self.ours_bonus / self.total_bonus if self.total_bonus > 0 else None

    def as_dict(self) -> dict[str, int | float | None]:
        return {"ours": self.ours, "total": self.total, "ours_bonus": self.ours_bonus, "total_bonus": self.total_bonus,
                "by_count": self.by_count, "by_bonus": self.by_bonus}
