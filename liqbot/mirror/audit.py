"""The mirror against the chain: every followed user's account as the mirror computes it and as the Pool
answers `getUserAccountData`, both at the mirror's block. Any difference is drift: a bug in the math or an
event the mirror does not follow, which would make detection wrong without anyone noticing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from liqbot.chain.reader import account_data
from liqbot.chain.rpc import Rpc
from liqbot.domain.account import NotModelled
from liqbot.domain.health import AccountData
from liqbot.mirror.state import Mirror

COMPARED = ("collateral_base", "debt_base", "liquidation_threshold", "health_factor")


@dataclass(frozen=True)
class Drift:
    user: str
    mirror: AccountData
    chain: AccountData

    def describe(self) -> str:
        return " ".join(f"{f}: mirror {getattr(self.mirror, f)} chain {getattr(self.chain, f)}"
                        for f in COMPARED if getattr(self.mirror, f) != getattr(self.chain, f))


@dataclass(frozen=True)
class Audit:
    block: int
    compared: int
    drift: list[Drift]
    skipped: int  # users the mirror does not model, or whose chain read failed
    secs: float

    def summary(self) -> dict[str, str]:
        return {"block": str(self.block), "compared": str(self.compared), "drift": str(len(self.drift)),
                "skipped": str(self.skipped), "secs": f"{self.secs:.3f}", "at": f"{time.time():.3f}"}


def compare(mirror: Mapping[str, AccountData], chain: Mapping[str, AccountData]) -> list[Drift]:
    """Users both sides know whose compared fields differ (exact integers: no tolerance)."""
    return [Drift(u, m, chain[u]) for u, m in mirror.items()
            if u in chain and any(getattr(m, f) != getattr(chain[u], f) for f in COMPARED)]


def snapshot(mirror: Mirror) -> Mirror:
    """A copy that later events do not touch (its users and market are immutable values), so another thread
    can compute every account at this block while the live one moves on."""
    return replace(mirror, users=dict(mirror.users), emode_bonus=dict(mirror.emode_bonus), _at={})


def audit(mirror: Mirror, rpc: Rpc, *, skip: Iterable[str] = (), batch_size: int = 500) -> Audit:
    """Compare every user of `mirror` (a snapshot) with the Pool pinned to the mirror's block."""
    t0 = time.monotonic()
    skipped = set(skip) & mirror.users.keys()
    computed: dict[str, AccountData] = {}
    for user in mirror.users:
        if user in skipped:
            continue
        try:
            computed[user] = mirror.account(user)
        except NotModelled:
            skipped.add(user)
    chain = account_data(rpc, mirror.pool, list(computed), batch_size, block=hex(mirror.block))
    skipped |= computed.keys() - chain.keys()
    drift = compare(computed, chain)
    return Audit(mirror.block, len(computed) - len(computed.keys() - chain.keys()), drift,
                 len(skipped), time.monotonic() - t0)
