"""Redis state shared by every process: dedupe locks, the priority lane's heartbeat, runtime flags,
counters, parked users. Keys live under one prefix so several deployments (or test runs) can share a
server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from liqbot.store.redis_url import is_sentinel, parse_sentinel

_ALIVE_WORKERS = "workers:priority"
_LANE_ACTIVE = "lane:active"
_USER_CONFIG = "userconfig"
_PARKED = "parked"
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per step, polled in this order
PRIORITY_SEP = "\x06\x16"


# Through a Sentinel failover (no master from the kill until a replica is promoted: down-after-milliseconds
# plus a second or two), each command keeps retrying, rediscovering the master from the sentinels, for about
# 7 s (measured) before it raises.
FAILOVER_RETRY = Retry(EqualJitterBackoff(cap=0.5, base=0.05), retries=20)


@cache
def client(url: str) -> redis.Redis:
    """The one place Redis clients are made: one per URL and process, thread-safe (a connection pool).
    A sentinel:// URL (store.redis_url) gives a client of the group's current master: it asks the
    sentinels where the master is at each new connection, and a connection to a master that died or was
    demoted (READONLY) is dropped and the command retried on the promoted one."""
    if is_sentinel(url):
        group = parse_sentinel(url)
        auth = {"username": group.username, "password": group.password}
        sentinels = Sentinel(group.sentinels, sentinel_kwargs=group.sentinel_kwargs())
        return sentinels.master_for(group.master_name, db=group.db, **auth, socket_timeout=5, socket_connect_timeout=2,
                                    health_check_interval=30, retry=FAILOVER_RETRY, decode_responses=True)
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30,
                                retry_on_timeout=True, decode_responses=True)


@dataclass(frozen=True)
class Begin:
    grouped: bool  # another task's group has (or had) this user: end without a record
    claimed: bool  # this task may attempt its own user
    already_sent: bool  # a transaction for the user is out, awaiting its receipt
    last_config: int | None
    siblings: list[tuple[str, str, int | None, str | None]]  # (user, task id, last config, plan) claimed with it


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
    def claim_many(self, users: list[str], window_secs: float, heartbeat_ttl: float, lane_ms: int = 0,
                   unpark: bool = False, plans: dict[str, str] | None = None, plan_ms: int = 0,
                   peek: Sequence[tuple[str, str | None]] = ()) -> tuple[list[bool], bool, list[str | None]]:
        """Take each user's dedupe lock (SET NX PX) and see whether a priority worker is alive, in one
        round trip; with `lane_ms`, also tell bookkeeping that the lane is about to work; with
        `unpark`, also clear the users' parking (an event touched them); with `plans` (user -> plan
        message), keep each user's plan for `plan_ms`, for the task that takes it into its group; with
        `peek` ((key, hash field or None), ...), read those values too (what the send after the claim needs).
        Returns (claimed per user, priority_alive, the peeked values)."""
        pipe = self.r.pipeline(transaction=False)
        for user in users:
            pipe.set(self.key("dedupe", user), "1", nx=True, px=int(window_secs * 1000))
        pipe.zcount(self.key(_ALIVE_WORKERS), time.time() - heartbeat_ttl, "+inf")
        if lane_ms:
            pipe.set(self.key(_LANE_ACTIVE), "1", px=lane_ms)
        if unpark and users:
            pipe.hdel(self.key(_PARKED), *users)
        for user, plan in (plans or {}).items():
            pipe.set(self.key("plan", user), plan, px=plan_ms)
        for key, field in peek:
            pipe.get(key) if field is None else pipe.hget(key, field)
        replies = pipe.execute()
        return [bool(c) for c in replies[: len(users)]], replies[len(users)] > 0, replies[len(replies) - len(peek):]

    def begin_group(self, user: str, token: str, siblings: list[tuple[str, str]], ttl_ms: int, lane_ms: int,
                    handled_ms: int) -> Begin:
        """The start of a liquidation, in one round trip (two with siblings): claim the user's
        "executing" slot, see whether a transaction was already sent for it, fetch the reserves it used
        last time, and keep bookkeeping off the node while the lane works.

        `siblings` are (user, task id) of users detected in the same moment, each with a task of its
        own further back in the queue: the ones this task can claim are liquidated with it, and their
        own tasks, marked handled, then end at once."""
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self.key("handled", token))
        pipe.set(self.key("executing", user), token, nx=True, px=ttl_ms)
        pipe.get(self.key("executing", user))
        pipe.get(self.key("dedupe", user))
        pipe.hget(self.key(_USER_CONFIG), user)
        for sib, _ in siblings:
            pipe.set(self.key("executing", sib), f"group:{token}", nx=True, px=ttl_ms)
            pipe.get(self.key("dedupe", sib))
            pipe.hget(self.key(_USER_CONFIG), sib)
            pipe.get(self.key("plan", sib))
        if lane_ms:
            pipe.set(self.key(_LANE_ACTIVE), "1", px=lane_ms)
        replies = pipe.execute()
        handled, claimed, holder, dedupe, config = replies[:5]
        taken, release = [], []
        for i, (sib, task_id) in enumerate(siblings):
            got, sib_dedupe, sib_config, sib_plan = replies[5 + 4 * i : 9 + 4 * i]
            if got and sib_dedupe != "sent":
                taken.append((sib, task_id, int(sib_config) if sib_config else None, sib_plan))
            elif got:
                release.append(sib)
        # Taken into another task's group (or being liquidated by one right now): nothing to do here.
        grouped = bool(handled) or (not claimed and str(holder or "").startswith("group:"))
        if grouped:
            release += [sib for sib, *_ in taken] + ([user] if claimed else [])
            taken = []
        if taken or release:
            pipe = self.r.pipeline(transaction=False)
            for _, task_id, *_ in taken:
                pipe.set(self.key("handled", task_id), token, px=handled_ms)
            for u in release:
                pipe.delete(self.key("executing", u))
            pipe.execute()
        return Begin(grouped=grouped, claimed=bool(claimed) and not grouped, already_sent=dedupe == "sent",
                     last_config=int(config) if config else None, siblings=taken)

    def end_attempts(self, users: list[str], lane_ms: int, configs: dict[str, int] | None = None) -> None:
        """Release the users' "executing" slots and, after the fact, remember the reserve bitmaps the
        attempt read (kept off the path to the send)."""
        pipe = self.r.pipeline(transaction=False)
        for user in users:
            pipe.delete(self.key("executing", user))
        if configs:
            pipe.hset(self.key(_USER_CONFIG), mapping={u: str(c) for u, c in configs.items()})
        if lane_ms:  # the next liquidation of a burst may be right behind this one
            pipe.set(self.key(_LANE_ACTIVE), "1", px=lane_ms)
        pipe.execute()

    def remember_configs(self, configs: dict[str, int]) -> None:
        """Users' reserve bitmaps, so the next liquidation snapshot reads their reserves in one trip."""
        if configs:
            self.r.hset(self.key(_USER_CONFIG), mapping={u: str(c) for u, c in configs.items()})

    # --- parked users ---------------------------------------------------------------------------
    def park(self, parked: dict[str, str], retry_after: float | None = None) -> None:
        """Users a liquidation cannot help until something about them changes (bad debt, dust): scans
        and bookkeeping stop routing them to the lane until an event or a price move unparks them.
        `parked`: user -> the reason of the skip. `retry_after`: scans may route them again after this many
        seconds (a reason that may pass by itself)."""
        if parked:
            at = time.time()
            until = {"until": at + retry_after} if retry_after is not None else {}
            self.r.hset(self.key(_PARKED), mapping={u: json.dumps({"reason": why, "at": at, **until})
                                                    for u, why in parked.items()})

    def parked_among(self, users: Sequence[str]) -> set[str]:
        if not users:
            return set()
        now = time.time()
        return {u for u, v in zip(users, self.r.hmget(self.key(_PARKED), list(users)), strict=True)
                if v is not None and json.loads(v).get("until", now + 1) > now}

    def unpark(self, users: Iterable[str]) -> int:
        """Something touched these users: the next detection may route them again."""
        users = list(users)
        return self.r.hdel(self.key(_PARKED), *users) if users else 0

    def parked(self, limit: int = 10) -> tuple[int, list[tuple[str, str, float]]]:
        """How many users are parked, and up to `limit` of them as (user, reason, since)."""
        if limit <= 0:
            return self.r.hlen(self.key(_PARKED)), []
        pipe = self.r.pipeline(transaction=False)
        pipe.hlen(self.key(_PARKED))
        pipe.hscan(self.key(_PARKED), 0, count=limit)
        count, (_, some) = pipe.execute()
        out = []
        for user, raw in list(some.items())[:limit]:
            info = json.loads(raw)
            out.append((user, info["reason"], info["at"]))
        return count, sorted(out, key=lambda p: p[2])

    # --- queues ---------------------------------------------------------------------------------------
    def queue_depth(self, queue: str) -> int:
        """Messages waiting on a Celery queue, its priority sub-lists included (group siblings wait on
        the lowest one, see tasks.routing)."""
        pipe = self.r.pipeline(transaction=False)
        for pri in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEP}{pri}" if pri else queue)
        return sum(pipe.execute())

    def dead_letters(self, newest: int = 1) -> tuple[int, list[dict]]:
        """Messages the broker set aside as undecodable (liqbot.broker), and the `newest` of them as dicts:
        queue, list, at, size, problem and the payload (raw, or raw_base64)."""
        key = self.key("deadletter")
        if newest <= 0:
            return self.r.llen(key), []
        pipe = self.r.pipeline(transaction=False)
        pipe.llen(key)
        pipe.lrange(key, 0, newest - 1)
        count, entries = pipe.execute()
        return count, [json.loads(e) for e in entries]

    # --- the lane's right of way -------------------------------------------------------------------
    def yield_to_lane(self, max_wait: float, step: float = 0.005, unless_fast_path_off: bool = False) -> float:
        """Bookkeeping waits while the priority lane is working (at most `max_wait` seconds, so a
        steady trickle of liquidations slows it down but never starves it). Returns the seconds waited.
        With `unless_fast_path_off` it does not wait when the producer reports its fast path off:
        bookkeeping and scans are then how liquidations are found."""
        if max_wait <= 0:
            return 0.0
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self.key(_LANE_ACTIVE))
        pipe.hget(self.key("producer", "status"), "fast_path")
        active, fast_path = pipe.execute()
        if not active or (unless_fast_path_off and fast_path == "0"):
            return 0.0
        t0 = time.monotonic()
        deadline = t0 + max_wait
        while time.monotonic() < deadline:
            time.sleep(step)
            if not self.r.exists(self.key(_LANE_ACTIVE)):
                break
        return time.monotonic() - t0

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

    # --- the mirror's last comparison with the chain (the producer writes it; status and metrics read it) ---
    def record_audit(self, summary: dict[str, str]) -> None:
        self.r.hset(self.key("mirror", "audit"), mapping=summary)

    def mirror_audit(self) -> dict[str, str]:
        return self.r.hgetall(self.key("mirror", "audit"))
