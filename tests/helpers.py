"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from liqbot.chain import aave
from liqbot.chain.reader import account_data
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def liquidations(rpc: Rpc, pool: str, from_block: int) -> list[dict]:
    logs = rpc.call("eth_getLogs", {"fromBlock": hex(from_block), "toBlock": "latest", "address": pool,
                                    "topics": [aave.LIQUIDATION_CALL_EVENT.topic0]})
    return [{**aave.LIQUIDATION_CALL_EVENT.decode(log), "tx": log["transactionHash"], "block": int(log["blockNumber"], 16)}
            for log in logs]


def health_at(rpc: Rpc, pool: str, users: list[str], block: int) -> dict[str, AccountData]:
    return account_data(rpc, pool, users, block=hex(block))


def open_position(chain, who: str, weth: int = 10, usdc: int = 15_000, wbtc: int = 0) -> str:
    """`who` supplies `weth` WETH (and `wbtc` WBTC) and borrows `usdc` USDC."""
    from liqbot.devnet.txs import TxSender

    m = chain.market
    user = m.account(who).address
    tx = TxSender(chain.rpc)
    for symbol, amount in (("WETH", weth * 10**18), ("WBTC", wbtc * 10**8)):
        if amount:
            token = m.reserve(symbol).address
            tx.call(user, token, aave.MINT_TO, user, amount)
            tx.call(user, token, aave.APPROVE, m.pool, aave.UINT256_MAX)
            tx.call(user, m.pool, aave.SUPPLY, token, amount, user, 0)
    tx.call(user, m.pool, aave.BORROW, m.reserve("USDC").address, usdc * 10**6, aave.VARIABLE_RATE, 0, user)
    tx.settle()
    return user


def make_liquidatable_borrower(chain, who: str = "user4", weth: int = 10, usdc: int = 15_000, pct: int = -10) -> str:
    """A borrower with `weth` WETH of collateral and `usdc` USDC of debt, then WETH moved by `pct`%."""
    from liqbot.devnet import move_price

    user = open_position(chain, who, weth, usdc)
    move_price(chain.market, "WETH", pct=pct)
    return user


def attempt_record(user: str, block: int = 1) -> dict:
    """What a liquidation task hands `run_and_record`: the user, as detected now at `block`."""
    now = time.time()
    return {"user": user, "path": "fast", "detected_block": block, "detected_at": now, "started_at": now}


def runtime_with(monkeypatch, **env: str):
    """The process runtime rebuilt with these settings on top of the test's environment."""
    from liqbot.runtime import runtime
    from tests.integration.conftest import reset_caches

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_caches()
    return runtime()


def producer_after_backfill(chain, rt, fast_path: bool = True):
    """A producer that has seen the market's history (who holds what), as after its backfill."""
    from liqbot.producer.events import USER_EVENTS, topics
    from liqbot.producer.listener import Producer

    producer = Producer(rt)
    producer.fast_path = fast_path
    history = chain.rpc.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "topics": topics(USER_EVENTS),
                                             "address": [chain.market.pool, *producer.market.by_a_token]})
    producer.handle(history, time.time(), live=False)
    producer._books.submit(lambda: None).result()
    return producer


def deploy_flash_liquidator(chain, owner_role: str = "liquidator") -> str:
    """Our FlashLiquidator on the devnet's market and Uniswap router, owned by `owner_role`."""
    from liqbot.devnet import artifacts
    from liqbot.devnet.txs import TxSender

    m = chain.market
    tx = TxSender(chain.rpc)
    address = tx.deploy(m.account(owner_role).address, artifacts.ours("FlashLiquidator"), m.provider, m.contracts["SwapRouter"])
    tx.settle()
    return address


def give_away_inventory(chain, who: str, keep: dict[str, int] | None = None) -> None:
    """Everything `who` holds of every reserve (but `keep`: symbol -> token units) goes to the treasury."""
    from liqbot.devnet.txs import TxSender

    m, rpc, keep = chain.market, chain.rpc, keep or {}
    tx = TxSender(rpc)
    for symbol, r in m.reserves.items():
        held = aave.BALANCE_OF.decode(rpc.eth_call(r.address, aave.BALANCE_OF.calldata(who)))
        if held > keep.get(symbol, 0):
            tx.call(who, r.address, aave.TRANSFER, m.account("treasury").address, held - keep.get(symbol, 0))
    tx.settle()


def plan_from_chain(rt, user: str):
    """The plan a detector with the user's exact positions makes (read here from the chain, as the mirror
    computes them), inventory unlimited."""
    from liqbot.chain.snapshot import read_snapshot
    from liqbot.domain.liquidation import decide
    from liqbot.domain.plan import Plan
    from liqbot.domain.units import UINT256_MAX
    from liqbot.execution import rules_for

    snap = read_snapshot(rt.rpc, rt.market, user, rt.sender.address, rt.native_asset)
    d = decide(snap.positions, health_factor=snap.account.health_factor, total_debt_base=snap.account.debt_base,
               rules=rules_for(rt), inventory=snap.inventory, gas_cost_base=0, min_profit_base=0)
    assert d.plan is not None, d.reason
    prices = {p.asset: p.price for p in snap.positions}
    return Plan(d.plan, UINT256_MAX, prices[d.plan.collateral_asset], prices[d.plan.debt_asset], snap.native_price, snap.block)


def mirror_producer(chain, rt, users, fast_path: bool = True):
    """A producer after its backfill that follows `users` with a mirror loaded at the head."""
    producer = producer_after_backfill(chain, rt, fast_path)
    producer.known |= set(users)
    producer.load_mirror(int(chain.rpc.call("eth_blockNumber"), 16))
    return producer


@contextmanager
def mempool(chain) -> Iterator[None]:
    """Automine off: what is sent waits in the pool until the test mines a block."""
    chain.rpc.call("evm_setAutomine", False)
    try:
        yield
    finally:
        chain.rpc.call("evm_setAutomine", True)


def postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a PostgreSQL database of the caller's own on the local server, dropped afterwards (skips the
    test when no server answers)."""
    import uuid

    import psycopg
    import pytest

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({exc}); .ci/run installs one")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
