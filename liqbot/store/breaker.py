"""The circuit breaker, shared by every process through Redis (the state machine is domain.breaker).

Reads in the closed state take one round trip and no lock; transitions happen under a short Redis
lock so two workers never both take the half-open probe."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import redis

from liqbot.domain import breaker as core
from liqbot.domain.breaker import BreakerConfig, BreakerState

log = logging.getLogger(__name__)


class Breaker:
    def __init__(self, r: redis.Redis, key: str, cfg: BreakerConfig,
                 on_change: Callable[[BreakerState, BreakerState], None] | None = None):
        self.r, self.key, self.cfg = r, key, cfg
        self._attempts = f"{key}:attempts"
        self._on_change = on_change

    def state(self) -> BreakerState:
        raw = self.r.hgetall(self.key)
        if not raw:
            return BreakerState()
        return BreakerState(state=raw.get("state", core.CLOSED), opened_at=float(raw.get("opened_at", 0)),
                            cause=raw.get("cause", ""), consecutive_failures=int(raw.get("consecutive_failures", 0)),
                            probe_taken=raw.get("probe_taken") == "1")

    def _mutate(self, fn: Callable[[BreakerState], BreakerState]) -> BreakerState:
        with self.r.lock(f"{self.key}:lock", timeout=5, blocking_timeout=5):
            old = self.state()
            new = fn(old)
            if new != old:
                self.r.hset(self.key, mapping={k: (("1" if v else "0") if isinstance(v, bool) else str(v))
                                               for k, v in asdict(new).items()})
        if new.state != old.state:
            log.warning("circuit breaker %s -> %s%s", old.state, new.state, f": {new.cause}" if new.cause else "")
            if self._on_change:
                self._on_change(old, new)
        return new

    def allow(self, now: float | None = None) -> tuple[bool, str]:
        """(allowed, why): why is "probe" when this is the half-open state's one attempt."""
        now = time.time() if now is None else now
        if self.r.hget(self.key, "state") in (None, core.CLOSED):
            return True, ""
        verdict: dict[str, bool] = {}

        def step(st: BreakerState) -> BreakerState:
            verdict["ok"], new = core.request(st, self.cfg, now)
            return new

        st = self._mutate(step)
        return verdict["ok"], "probe" if verdict["ok"] else f"breaker open ({st.cause})"

    def attempted(self, now: float | None = None, count: int = 1) -> None:
        now = time.time() if now is None else now
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(self._attempts, {f"{now:.6f}:{os.urandom(4).hex()}": now for _ in range(count)})
        pipe.zremrangebyscore(self._attempts, 0, now - self.cfg.window_secs)
        pipe.zcard(self._attempts)
        pipe.expire(self._attempts, int(self.cfg.window_secs) + 60)
        _, _, count, _ = pipe.execute()
        if count > self.cfg.max_attempts:
            self._mutate(lambda st: core.attempted(st, self.cfg, now, count))

    def result(self, success: bool, what: str = "", now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._mutate(lambda st: core.result(st, self.cfg, now, success, what))

    def gas(self, gas_price: int, cap: int, now: float | None = None) -> None:
        if gas_price > cap:
            now = time.time() if now is None else now
            self._mutate(lambda st: core.gas_seen(st, now, gas_price, cap))

    def reset(self) -> None:
        self._mutate(lambda st: BreakerState(cause="reset by operator"))
        self.r.delete(self._attempts)

    def status(self) -> dict:
        st = self.state()
        now = time.time()
        count = self.r.zcount(self._attempts, now - self.cfg.window_secs, "+inf")
        out = asdict(st) | {"attempts_in_window": count, "config": asdict(self.cfg)}
        if st.state == core.OPEN:
            out["half_open_in_secs"] = max(0.0, round(st.opened_at + self.cfg.cooldown_secs - now, 1))
        return out
