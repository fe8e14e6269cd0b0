"""Redis state shared by every process: dedupe locks, the priority lane's heartbeat, runtime flags,
counters. Keys live under one prefix so several deployments (or test runs) can share a server."""

from __future__ import annotations

import time
from functools import cache

import redis

_ALIVE_WORKERS = "workers:priority"


@cache
def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30,
                                retry_on_timeout=True, decode_responses=True)


class Keys:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


class State:
    """The operations every process needs, one or two round trips each."""

    def __init__(self, url: str, prefix: str = "liqbot"):
        self.r = client(url)
        self.key = Keys(prefix)

    # --- dedupe + lane liveness, in one round trip -------------------------------------------------
    def claim(self, user: str, window_secs: float, heartbeat_ttl: float) -> tuple[bool, bool]:
        """Take the user's dedupe lock (SET NX PX) and see whether a priority worker is alive.
        Returns (claimed, priority_alive)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.set(self.key("dedupe", user), "1", nx=True, px=int(window_secs * 1000))
        pipe.zcount(self.key(_ALIVE_WORKERS), time.time() - heartbeat_ttl, "+inf")
        claimed, alive = pipe.execute()
        return bool(claimed), alive > 0

    def release(self, user: str) -> None:
        self.r.delete(self.key("dedupe", user))

    # --- priority workers' heartbeat ---------------------------------------------------------------
    def heartbeat(self, worker: str) -> None:
        self.r.zadd(self.key(_ALIVE_WORKERS), {worker: time.time()})

    def forget_worker(self, worker: str) -> None:
        self.r.zrem(self.key(_ALIVE_WORKERS), worker)

    def priority_alive(self, heartbeat_ttl: float) -> bool:
        return self.r.zcount(self.key(_ALIVE_WORKERS), time.time() - heartbeat_ttl, "+inf") > 0

    # --- runtime flags -----------------------------------------------------------------------------
    def get_flag(self, name: str) -> bool | None:
        value = self.r.get(self.key("flags", name))
        return None if value is None else value == "1"

    def set_flag(self, name: str, value: bool) -> None:
        self.r.set(self.key("flags", name), "1" if value else "0")

    # --- counters ----------------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        self.r.hincrby(self.key("stats"), name, n)

    def counters(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.r.hgetall(self.key("stats")).items()}
