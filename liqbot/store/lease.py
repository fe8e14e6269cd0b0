"""A leader lease in Redis: one active producer (or beat) at a time, standbys take over when it lapses."""

from __future__ import annotations

import logging
import os
import socket

import redis

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class Lease:
    def __init__(self, r: redis.Redis, key: str, ttl_secs: float):
        self.r, self.key, self.ttl_ms = r, key, int(ttl_secs * 1000)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._renew = r.register_script(_RENEW)
        self.held = False

    def hold(self) -> bool:
        """Take the lease if free, renew it if ours; False when another instance holds it.
        While Redis cannot be reached the holder keeps going (nobody else can take it either)."""
        try:
            if self.held and self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
                return True
            self.held = bool(self.r.set(self.key, self.owner, nx=True, px=self.ttl_ms))
            if not self.held:
                holder = self.r.get(self.key)
                self.held = holder == self.owner
        except redis.RedisError as exc:
            log.warning("lease %s: Redis unreachable (%s); %s", self.key, exc, "keeping it" if self.held else "waiting")
        return self.held

    def holder(self) -> str | None:
        return self.r.get(self.key)

    def release(self) -> None:
        try:
            if self.r.get(self.key) == self.owner:
                self.r.delete(self.key)
        except redis.RedisError:
            pass
        self.held = False
