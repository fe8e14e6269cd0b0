"""The circuit breaker's state machine (pure): closed -> open on a trip; open -> half-open after the
cool-down, letting one probe through; the probe's success closes it, its failure opens it again."""

from __future__ import annotations

from dataclasses import dataclass, replace

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    max_attempts: int  # more than this many attempts in `window_secs` trips it
    window_secs: float
    max_consecutive_failures: int
    cooldown_secs: float


@dataclass(frozen=True, slots=True)
class BreakerState:
    state: str = CLOSED
    opened_at: float = 0.0
    cause: str = ""
    consecutive_failures: int = 0
    probe_taken: bool = False


def trip(st: BreakerState, now: float, cause: str) -> BreakerState:
    return replace(st, state=OPEN, opened_at=now, cause=cause, probe_taken=False)


def request(st: BreakerState, cfg: BreakerConfig, now: float) -> tuple[bool, BreakerState]:
    """May an attempt go ahead? Moves open -> half-open after the cool-down and hands out one probe."""
    if st.state == OPEN and now - st.opened_at >= cfg.cooldown_secs:
        st = replace(st, state=HALF_OPEN, probe_taken=False)
    if st.state == CLOSED:
        return True, st
    if st.state == HALF_OPEN and not st.probe_taken:
        return True, replace(st, probe_taken=True)
    return False, st


def attempted(st: BreakerState, cfg: BreakerConfig, now: float, attempts_in_window: int) -> BreakerState:
    if st.state == CLOSED and attempts_in_window > cfg.max_attempts:
        return trip(st, now, f"{attempts_in_window} attempts in {cfg.window_secs:g}s (max {cfg.max_attempts})")
    return st


def result(st: BreakerState, cfg: BreakerConfig, now: float, success: bool, what: str = "") -> BreakerState:
    if success:
        if st.state == HALF_OPEN:
            return BreakerState()  # the probe went through: closed, counters reset
        return replace(st, consecutive_failures=0)
    failures = st.consecutive_failures + 1
    st = replace(st, consecutive_failures=failures)
    if st.state == HALF_OPEN:
        return trip(st, now, f"probe failed: {what}".strip(": "))
    if st.state == CLOSED and failures >= cfg.max_consecutive_failures:
        return trip(st, now, f"{failures} consecutive failed liquidations" + (f" (last: {what})" if what else ""))
    return st


def gas_seen(st: BreakerState, now: float, gas_price: int, cap: int) -> BreakerState:
    if gas_price > cap and st.state != OPEN:
        return trip(st, now, f"gas price {gas_price / 1e9:.1f} gwei above the cap {cap / 1e9:.1f} gwei")
    return st
