"""docs/redis-acl.conf on a real redis-server: the workers, beat, the producer, Flower, remote control, a
liquidation and liqbot's state, lease and breaker operations run as the `liqbot` user; `liqbot status`
runs as the read-only `monitor` user; strangers (no password, the default user, a wrong password) are
refused, and neither user can do more than the file allows. Redis's ACL LOG must stay empty: a command
the file forgot shows up there even where a client swallows the error."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from liqbot.devnet import Devnet
from liqbot.devnet.anvil import free_port
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.store.lease import Lease
from tests.helpers import liquidations, make_liquidatable_borrower, runtime_with, wait_until

ACL_FILE = Path(__file__).resolve().parents[2] / "docs" / "redis-acl.conf"
USERS = ("liqbot", "monitor")


@dataclass
class AclRedis:
    port: int
    passwords: dict[str, str]
    admin: redis.Redis  # the test's own user (not in the file), to read the ACL LOG

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str | None = None, password: str | None = None) -> redis.Redis:
        return redis.Redis(port=self.port, username=user, password=password if password is not None else
                           self.passwords.get(user or ""), decode_responses=True, socket_timeout=5)

    def denials(self) -> list[str]:
        return [f"{e['username']}: {e['reason']} {e['object']!r} ({e['context']}, {e['count']}x)" for e in self.admin.acl_log()]


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    """A redis-server of our own started with a copy of the example ACL file, its password placeholders
    filled in (a SHA-256 per user, as an operator would write them)."""
    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    text = ACL_FILE.read_text()
    for user, password in passwords.items():
        placeholder = f"#<sha256-of-the-{user}-password>"
        assert placeholder in text
        text = text.replace(placeholder, "#" + hashlib.sha256(password.encode()).hexdigest())
    admin_password = secrets.token_urlsafe(18)
    (tmp_path / "users.acl").write_text(text + f"user admin on >{admin_password} ~* &* +@all\n")
    st = Stack(tmp_path)
    port = free_port()
    proc = st.start("redis-acl", [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--aclfile", str(tmp_path / "users.acl")])
    admin = redis.Redis(port=port, username="admin", password=admin_password, decode_responses=True, socket_timeout=5)
    try:
        st.wait_for(lambda: _pings(admin), "redis-server with the ACL file", 10, proc)
        yield AclRedis(port, passwords, admin)
    finally:
        st.stop_all()


def _pings(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.ConnectionError:
        return False


def test_the_example_file_starts_nothing_until_its_passwords_are_set(tmp_path: Path):
    """As shipped, the file holds placeholders: redis-server refuses it rather than run with a known password."""
    exe = shutil.which("redis-server") or "redis-server"
    res = subprocess.run([exe, "--port", str(free_port()), "--save", "", "--aclfile", str(ACL_FILE)], capture_output=True,
                         text=True, timeout=10, check=False)
    assert res.returncode != 0
    assert "ACL" in res.stdout + res.stderr


def test_strangers_are_refused_and_users_kept_to_their_rights(acl_redis: AclRedis):
    for user, password in ((None, None), ("default", "anything"), ("liqbot", "wrong"), ("monitor", "wrong")):
        with pytest.raises(redis.AuthenticationError):
            acl_redis.client(user, password).lpush("priority", "not a task")
    assert acl_redis.admin.llen("priority") == 0

    liqbot, monitor = acl_redis.client("liqbot"), acl_redis.client("monitor")
    liqbot.set("liqbot:probe", "1")
    for denied in (liqbot.flushall, lambda: liqbot.config_get("*"), lambda: liqbot.keys("*"),
                   lambda: liqbot.set("someone-else:key", "1"), liqbot.acl_list, lambda: liqbot.publish("news", "x"),
                   lambda: monitor.set("liqbot:probe", "2"), lambda: monitor.lpush("priority", "x"),
                   lambda: monitor.delete("liqbot:probe"), lambda: monitor.get("someone-else:key")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            denied()
    assert monitor.get("liqbot:probe") == "1"
    assert monitor.llen("priority") == 0
    acl_redis.admin.acl_log_reset()


@pytest.mark.e2e
def test_liqbot_runs_as_its_acl_user(chain: Devnet, env: dict, acl_redis: AclRedis, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch):
    from liqbot.celery import app

    url = acl_redis.url("liqbot")
    rt = runtime_with(monkeypatch, REDIS_URL=url)
    app.conf.broker_url = url

    # liqbot's own state, from this process as the liqbot user.
    s = rt.state
    user, other = "0x" + "ab" * 20, "0x" + "cd" * 20
    assert s.claim_many([user], 5, 10, lane_ms=100, unpark=True, plans={user: "{}"}, plan_ms=1000) == ([True], False, [])
    begin = s.begin_group(user, "task-1", [(other, "task-2")], 1000, 100, 1000)
    assert begin.claimed
    s.end_attempts([user, other], 100, {user: 3})
    s.remember_configs({other: 5})
    s.park({user: "dust"})
    assert s.parked_among([user, other]) == {user}
    assert s.parked(5)[0] == 1
    assert s.unpark([user]) == 1
    s.release(user)
    s.heartbeat("probe")
    assert s.priority_alive(30)
    s.forget_worker("probe")
    s.set_flag("probe", True)
    assert s.get_flag("probe") is True
    s.count("probe")
    assert s.counters()["probe"] == 1
    audit = {"drift": "0", "compared": "2", "block": "1", "secs": "0.1", "skipped": "0", "at": str(time.time())}
    s.record_audit(audit)
    assert s.mirror_audit() == audit
    assert s.yield_to_lane(0.05) >= 0
    assert s.queue_depth("priority") == 0
    lease = Lease(s.r, s.key("probe", "leader"), 5)
    assert lease.hold()
    assert lease.hold()  # renewed by its Lua script
    lease.release()
    rt.breaker.attempted()
    rt.breaker.result(True)
    assert rt.breaker.status()["state"] == "closed"
    rt.breaker.reset()

    # The real processes and a liquidation: the producer's lease, detection and routing; the lane's dedupe,
    # group, nonce lock, breaker and heartbeat; beat's lease and the receipt tracker; the dead letters.
    stack = Stack(tmp_path / "stack", env={**env, "REDIS_URL": url})
    stack.workdir.mkdir()
    try:
        stack.worker("priority", PRIORITY_WORKER)
        stack.worker("default", DEFAULT_WORKER)
        stack.beat()
        stack.producer()
        acl_redis.client("liqbot").lpush("priority", "not json")  # set aside as the liqbot user
        wait_until(lambda: s.dead_letters(0)[0] == 1, 15, "the poison message set aside")
        start = int(chain.rpc.call("eth_blockNumber"), 16)
        borrower = make_liquidatable_borrower(chain)
        wait_until(lambda: {e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)} == {borrower}, 60,
                   "the liquidation")
        time.sleep(2.5)  # the receipt tracker (beat, every 2 s) and the heartbeats go round once more

        ping = subprocess.run([sys.executable, "-m", "celery", "-A", "liqbot", "inspect", "ping", "--timeout", "5"],
                              capture_output=True, text=True, env={**os.environ, **stack.env}, cwd=stack.cwd, timeout=120,
                              check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "priority@" in ping.stdout
        assert "default@" in ping.stdout

        flower_port = free_port()  # Flower as the liqbot user: queue lengths, and workers over remote control
        stack.celery("flower", "flower", f"--port={flower_port}", "--address=127.0.0.1", "--basic-auth=ops:s3cret")
        api = f"http://127.0.0.1:{flower_port}/api"
        lengths = wait_until(lambda: _get(f"{api}/queues/length"), 60, "Flower's queue lengths")
        assert {q["name"] for q in lengths["active_queues"]} == {"priority", "default"}
        workers = wait_until(lambda: _get(f"{api}/workers?refresh=1"), 30, "Flower's workers")
        assert any(w.startswith("priority@") for w in workers)

        status = subprocess.run([sys.executable, "-m", "liqbot", "status"], capture_output=True, text=True,
                                env={**os.environ, **stack.env, "REDIS_URL": acl_redis.url("monitor")}, cwd=stack.cwd,
                                timeout=120, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "dead letters: 1 (newest: priority b'not json')" in status.stdout
        assert all(p.alive() for p in stack.procs.values())
    finally:
        stack.stop_all()
    denials = acl_redis.denials()
    assert not denials, "refused by the ACL file:\n" + "\n".join(denials)


def _get(url: str) -> dict | None:
    try:
        res = requests.get(url, auth=("ops", "s3cret"), timeout=10)
    except requests.RequestException:
        return None
    return res.json() if res.status_code == 200 else None
