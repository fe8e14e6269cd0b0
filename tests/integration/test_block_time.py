"""A devnet with a block time: `devnet up --block-time 2` deploys, `seed` and `price` wait for their
blocks, a liquidation is mined in a later block; no anvil outlives `devnet up`; interval_mining."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import Devnet, interval_mining
from liqbot.devnet.anvil import free_port, port_is_free
from liqbot.devnet.seed import borrower_address
from liqbot.devnet.txs import TxSender
from liqbot.errors import DevnetError
from liqbot.execution import run_and_record
from tests.helpers import health_at, wait_until
from tests.integration.conftest import reset_caches

pytestmark = pytest.mark.integration
BORROWERS, SEED = 12, 4


def liqbot(*args: str, env: dict) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "liqbot", *args], capture_output=True, text=True, timeout=120,
                         env=env, check=False)
    assert res.returncode == 0, res.stderr
    return res


def start_up(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict, Path, int]:
    env = {**os.environ, "LIQBOT_DEVNET_DIR": str(tmp_path / "state")}
    port, out = free_port(), tmp_path / "market.json"
    up = subprocess.Popen([sys.executable, "-m", "liqbot", "devnet", "up", "--port", str(port), "--out", str(out), *args],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return up, env, out, port


def stop_up(up: subprocess.Popen) -> None:
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait(10)
    up.stdout.close()


@pytest.fixture
def block_time_devnet(tmp_path: Path) -> Iterator[tuple[dict, Path]]:
    """`liqbot devnet up --block-time 2`, as a user starts it."""
    up, env, out, port = start_up(tmp_path, "--block-time", "2")
    try:
        wait_until(lambda: up.poll() is not None or (tmp_path / "state" / "state.json").exists(), 60, "devnet up")
        assert up.poll() is None, up.stdout.read()
        yield env, out
        up.send_signal(signal.SIGINT)  # Ctrl-C
        assert up.wait(15) == 0
        assert port_is_free(port)
    finally:
        stop_up(up)


def test_a_block_time_devnet_seeds_moves_prices_and_liquidates(block_time_devnet: tuple[dict, Path], redis_url: str,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env, market_file = block_time_devnet
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["block_time"] == 2
    rpc = Rpc(state["rpc_url"])
    assert rpc.call("anvil_getIntervalMining") == 2
    assert rpc.call("anvil_getAutomine") is False

    seeded = liqbot("devnet", "seed", "--borrowers", str(BORROWERS), "--seed", str(SEED), env=env)
    assert f"seeded {BORROWERS} borrowers" in seeded.stdout
    moved = liqbot("devnet", "price", "WETH", "--pct", "-30", env=env)
    price_block = int(re.search(r"at block (\d+)", moved.stdout).group(1))
    blocks = [rpc.call("eth_getBlockByNumber", hex(n), False) for n in (price_block - 1, price_block)]
    assert int(blocks[1]["timestamp"], 16) - int(blocks[0]["timestamp"], 16) == 2

    import redis

    redis.Redis.from_url(redis_url).flushdb()
    for k, v in {"MARKET_FILE": str(market_file), "REDIS_URL": redis_url,
                 "DATABASE_URL": f"sqlite:///{tmp_path / 'liqbot.sqlite'}"}.items():
        monkeypatch.setenv(k, v)
    reset_caches()
    from liqbot.runtime import runtime

    rt = runtime()
    try:
        users = [borrower_address(SEED, i) for i in range(BORROWERS)]
        accounts = health_at(rpc, rt.market.pool, users, price_block)
        liquidatable = [u for u, acc in accounts.items() if acc.liquidatable]
        assert len(liquidatable) >= 2, "the scenario needs liquidatable borrowers"
        user = liquidatable[0]
        now = time.time()
        result = run_and_record(rt, {"user": user, "path": "scan", "detected_block": price_block, "detected_at": now,
                                     "started_at": now}, "⚡")
        assert result.outcome == "sent", result.reason
        tx_hash = result.fields["tx_hash"]
        receipt = wait_until(lambda: rpc.call("eth_getTransactionReceipt", tx_hash), 10, "the liquidation mined")
        assert int(receipt["status"], 16) == 1
        assert int(receipt["blockNumber"], 16) > price_block
        events = [aave.LIQUIDATION_CALL_EVENT.decode(log) for log in receipt["logs"]
                  if log["topics"][0] == aave.LIQUIDATION_CALL_EVENT.topic0]
        assert [e["user"] for e in events] == [user]
    finally:
        reset_caches()
        rpc.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_devnet_up_killed_while_deploying_leaves_no_anvil(tmp_path: Path, sig: int):
    up, _env, out, port = start_up(tmp_path, "--block-time", "2")
    try:
        anvil = wait_until(lambda: _children(up.pid), 30, "anvil started", interval=0.01)[0]
        wait_until(lambda: not port_is_free(port), 10, "anvil listening", interval=0.01)
        os.kill(up.pid, sig)
        assert up.wait(15) != 0
        assert not out.exists(), "the signal came after the deploy; the test saw nothing"
        if sig != signal.SIGKILL:
            assert _gone(anvil), "`devnet up` did not stop anvil itself"
            assert "Traceback" not in up.stdout.read()
        wait_until(lambda: _gone(anvil), 10, f"anvil (pid {anvil}) gone")  # SIGKILL: the kernel's parent-death signal
        wait_until(lambda: port_is_free(port), 10, f"port {port} free")  # its socket may close a moment after
    finally:
        stop_up(up)


def test_a_fractional_block_time_is_refused_before_anvil_starts():
    port = free_port()
    with pytest.raises(DevnetError, match="whole number of seconds"):
        Devnet.start(port=port, block_time=0.5)
    assert port_is_free(port)


def test_interval_mining_makes_transactions_wait_and_restores_automine(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    user, weth = m.account("user4").address, m.reserve("WETH").address
    with interval_mining(rpc, 1):
        assert rpc.call("anvil_getAutomine") is False
        tx = TxSender(rpc)
        # anvil skips a transaction that does not fit the block by its gas limit and drops the same
        # sender's later ones; settle() sends those again.
        for gas in (29_000_000, 29_990_000, 100_000):
            tx.call(user, weth, aave.MINT_TO, user, 1, gas=gas)
        blocks = [int(r["blockNumber"], 16) for r in tx.settle(timeout=10)]
        assert blocks[0] < blocks[1] <= blocks[2]
    assert rpc.call("anvil_getAutomine") is True
    tx.call(user, weth, aave.MINT_TO, user, 1)
    (receipt,) = tx.settle(timeout=1)
    assert int(receipt["status"], 16) == 1
