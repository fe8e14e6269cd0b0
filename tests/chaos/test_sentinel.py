"""`make chaos`: Redis high availability on real processes. A master, one replica and three sentinels;
the whole stack runs on REDIS_URL=sentinel://... A price crash makes 200 borrowers liquidatable and
the master is SIGKILLed as the first liquidations land. The sentinels promote the replica, the old
master comes back (as a supervisor restarts it) and is turned into a replica; the workers, beat and the
producer carry on against the new master, and every liquidatable borrower is liquidated exactly once."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from liqbot.devnet import Devnet, Shape, move_price, seed_borrowers
from liqbot.devnet.anvil import free_port
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.store.db import Attempt, User, session_factory
from liqbot.store.redis import State
from tests.helpers import health_at, liquidations, wait_until
from tests.integration.conftest import reset_caches

pytestmark = pytest.mark.chaos
N = 200
MASTER_NAME = "liqbot"
DOWN_AFTER_MS = 1000
RESTART_DELAY_SECS = 5
# What the README recommends for the data nodes: an append-only file fsynced every second, no RDB snapshots.
PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")


@dataclass
class Group:
    stack: Stack
    workdir: Path
    master_port: int
    replica_port: int
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        entries = ";".join(f"sentinel://127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"{entries}/0?master_name={MASTER_NAME}"

    def data_node(self, name: str, port: int, *more: str) -> None:
        folder = self.workdir / name
        folder.mkdir(exist_ok=True)
        self.stack.start(name, [_exe("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                *PERSISTENCE, *more])

    def sentinel(self, i: int) -> redis.Redis:
        """An admin connection to one sentinel (sentinel commands only: data goes through store.redis.client)."""
        return redis.Redis(port=self.sentinel_ports[i], socket_timeout=1, decode_responses=True)

    def master_port_seen(self) -> int | None:
        """The master's port as a majority of the sentinels name it, or None."""
        ports = []
        for i in range(len(self.sentinel_ports)):
            try:
                ports.append(int(self.sentinel(i).sentinel_get_master_addr_by_name(MASTER_NAME)[1]))
            except (redis.RedisError, TypeError):
                continue
        return next((p for p in set(ports) if ports.count(p) > len(self.sentinel_ports) // 2), None)

    def replication(self, port: int) -> dict:
        try:
            return redis.Redis(port=port, socket_timeout=1, decode_responses=True).info("replication")
        except redis.RedisError:
            return {}

    def settled(self) -> int | None:
        """The master's port once the sentinels agree on it and the other node replicates from it."""
        master = self.master_port_seen()
        if master is None or self.replication(master).get("role") != "master":
            return None
        other = self.replication(self.replica_port if master == self.master_port else self.master_port)
        ok = other.get("role") == "slave" and other.get("master_port") == master and other.get("master_link_status") == "up"
        return master if ok else None

    def failovers(self) -> int:
        """How many failovers the group went through (the sentinels' configuration epoch)."""
        return max(int(self.sentinel(i).sentinel_master(MASTER_NAME)["config-epoch"]) for i in range(len(self.sentinel_ports)))


def _exe(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed (apt-get install redis-server redis-sentinel)")
    return exe


def start_group(stack: Stack, workdir: Path) -> Group:
    """Master, replica (--replicaof) and three sentinels (quorum 2), each on a free port; the sentinels'
    config files are written in `workdir` (a sentinel rewrites its own)."""
    g = Group(stack, workdir, free_port(), free_port(), [free_port() for _ in range(3)])
    g.data_node("redis-master", g.master_port)
    g.data_node("redis-replica", g.replica_port, "--replicaof", "127.0.0.1", str(g.master_port))
    sentinel = shutil.which("redis-sentinel")
    for i, port in enumerate(g.sentinel_ports):
        conf = workdir / f"sentinel-{i}.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {g.master_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout {MASTER_NAME} 3000\n")
        argv = [sentinel, str(conf)] if sentinel else [_exe("redis-server"), str(conf), "--sentinel"]
        stack.start(f"sentinel-{i}", argv)

    def ready() -> bool:
        try:
            states = [g.sentinel(i).sentinel_master(MASTER_NAME) for i in range(3)]
        except redis.RedisError:
            return False
        return g.settled() == g.master_port and all(
            int(s["num-slaves"]) == 1 and int(s["num-other-sentinels"]) == 2 for s in states)

    stack.wait_for(ready, "the sentinels to see the master, the replica and each other", 30)
    return g


def test_sentinel_failover_mid_crash(chain: Devnet, env: dict, stack: Stack, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch):
    group = start_group(stack, tmp_path)
    monkeypatch.setenv("REDIS_URL", group.url)
    stack.env["REDIS_URL"] = group.url
    reset_caches()
    sessions = session_factory(env["DATABASE_URL"])
    # Health 1.26-1.34 before a 30% fall: 0.88-0.94 after, every borrower liquidatable and none underwater.
    shape = Shape(collaterals=("WETH",), debts=("USDC",), hf_range=(12_600, 13_400))
    borrowers = [p.address for p in seed_borrowers(chain.market, N, seed=78, shape=shape).borrowers]
    stack.worker("priority-a", PRIORITY_WORKER)
    stack.worker("priority-b", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer()
    pipeline = ["priority-a", "priority-b", "default", "beat", "producer"]

    def stored() -> int:
        with sessions() as s:
            return len(list(s.scalars(select(User.address))))

    wait_until(lambda: stored() >= N, 90, "backfilled borrowers")
    move = move_price(chain.market, "WETH", pct=-30)
    liquidatable = {u for u, a in health_at(chain.rpc, chain.market.pool, borrowers, move.block).items() if a.liquidatable}
    assert len(liquidatable) == N

    def block() -> int:
        return int(chain.rpc.call("eth_blockNumber"), 16)

    # The master dies as the first liquidations land: with the rest in flight (queued, claimed, sending).
    wait_until(lambda: liquidations(chain.rpc, chain.market.pool, move.block), 30, "the first liquidation", interval=0.02)
    killed_at, kill_block = time.monotonic(), block()
    stack.stop("redis-master", signal.SIGKILL)
    wait_until(lambda: group.master_port_seen() == group.replica_port, 30, "the sentinels to promote the replica",
               interval=0.05)
    promoted_at, promote_block = time.monotonic(), block()
    # A supervisor restarts the old master a few seconds later (its append-only file brings back what it had):
    # the sentinels make it a replica of the new master. Back at once, it would be a candidate for a second
    # failover on any false alarm about the new master (no PONG within down-after-milliseconds on a loaded
    # machine): the group can then fail back to it, losing what the new master took meanwhile.
    rejoin = threading.Timer(RESTART_DELAY_SECS, group.data_node, ("redis-master", group.master_port))
    rejoin.start()

    def all_done() -> bool:
        return len({e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)}) >= N

    try:
        wait_until(all_done, 240, f"{N} liquidations", interval=0.25)
        done_at = time.monotonic()
    finally:
        rejoin.join()
    wait_until(group.settled, 60, "the old master to rejoin as a replica")
    time.sleep(3)  # anything sent twice would land by now
    events = liquidations(chain.rpc, chain.market.pool, move.block)
    users = [e["user"] for e in events]
    assert sorted(users) == sorted(liquidatable), f"{len(users)} liquidations for {len(set(users))} users"
    dead = {name: stack.procs[name].text()[-2000:] for name in pipeline if not stack.procs[name].alive()}
    assert not dead, f"exited during the failover: {dead}"
    final_master = group.settled()
    assert final_master is not None

    def rows() -> list[Attempt]:
        with sessions() as s:
            return list(s.scalars(select(Attempt).where(Attempt.tx_hash.is_not(None))))

    # Every liquidation recorded once (what a failover lost of the in-flight intents, the chain gives back).
    wait_until(lambda: {a.tx_hash for a in rows()} >= {e["tx"] for e in events}, 60, "every liquidation recorded",
               interval=1)
    assert sorted(a.tx_hash for a in rows()) == sorted(e["tx"] for e in events)
    state = State(group.url)
    wait_until(lambda: state.queue_depth("priority") == 0, 60, "an empty priority queue", interval=1)

    mined = [int(r["blockNumber"], 16) for r in chain.rpc.batch([("eth_getTransactionReceipt", [e["tx"]]) for e in events])]
    before = sum(b <= kill_block for b in mined)
    during = sum(kill_block < b <= promote_block for b in mined)
    print(f"\nsentinel failover: master SIGKILLed after {before} of {N} liquidations; no master for "
          f"{promoted_at - killed_at:.2f} s (down-after-milliseconds {DOWN_AFTER_MS}); liquidations mined before the "
          f"kill {before}, without a master {during}, after the promotion {N - before - during}; all {N} done "
          f"{done_at - killed_at:.1f} s after the kill; each liquidated once, {len(pipeline)} processes still up; "
          f"failovers {group.failovers()}, master now the {'replica' if final_master == group.replica_port else 'old master'}")


def test_a_nonce_a_failover_forgot_costs_one_refused_send(chain: Devnet, rt):
    """What a failover can leave behind: the stored next nonce behind the chain (its last increments were not
    replicated) and a caller whose nonce was read before another worker's send. The node refuses the used
    nonce once; the sender then stores the chain's pending count, and the next send with the same stale read
    goes out on the right nonce."""
    from liqbot.chain.sender import Sent, Tx
    from liqbot.domain.fees import Fees
    from liqbot.errors import RpcError

    sender, to = rt.sender, chain.market.account("treasury").address
    fees = Fees(max_fee=100 * 10**9, tip=10**9)
    stale = int(chain.rpc.call("eth_getTransactionCount", sender.address, "pending"), 16)
    (used,) = sender.send_many([Tx(to, "0x", 21_000, fees)])
    assert isinstance(used, Sent)
    rt.state.r.set(sender._nonce_key, stale)  # the failover's loss

    (refused,) = sender.send_many([Tx(to, "0x", 21_000, fees)], pending_nonce=stale)
    (sent,) = sender.send_many([Tx(to, "0x", 21_000, fees)], pending_nonce=stale)

    assert isinstance(refused, RpcError)
    assert "nonce too low" in str(refused)
    assert isinstance(sent, Sent)
    assert sent.nonce == stale + 1
