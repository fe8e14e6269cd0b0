"""Races against another liquidator on the real devnet, with transactions waiting in the pool as on a
chain with blocks: a pending rival is outbid rather than left to win, a race lost on chain is recorded
as lost (with the rival's transaction) and never counted by the breaker."""

from __future__ import annotations

import pytest

from liqbot.chain import aave
from liqbot.chain.reader import account_data
from liqbot.devnet import Devnet, move_price
from liqbot.devnet.txs import TxSender
from liqbot.execution import run_and_record
from liqbot.store.attempts import attempts_for
from tests.helpers import attempt_record, mempool, open_position, runtime_with

pytestmark = pytest.mark.aave()  # custom errors from v3.4, and v3.3+ burns the debt a seizure leaves
RIVAL = "user9"
GWEI = 10**9


def _armed(chain: Devnet) -> str:
    """The rival and our liquidator hold USDC and have approved the Pool (no approval mid-race)."""
    m, tx = chain.market, TxSender(chain.rpc)
    usdc = m.reserve("USDC").address
    for who in (RIVAL, "liquidator"):
        addr = m.account(who).address
        tx.call(addr, usdc, aave.MINT_TO, addr, 10**13)
        tx.call(addr, usdc, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.settle()
    return m.account(RIVAL).address


def _rival_liquidates(chain: Devnet, user: str, max_fee: int, tip: int) -> str:
    m = chain.market
    data = aave.LIQUIDATION_CALL.calldata(m.reserve("WETH").address, m.reserve("USDC").address, user,
                                          aave.UINT256_MAX, False)
    return chain.rpc.call("eth_sendTransaction", {"from": m.account(RIVAL).address, "to": m.pool, "data": data,
                                                  "gas": hex(1_000_000), "maxFeePerGas": hex(max_fee),
                                                  "maxPriorityFeePerGas": hex(tip)})


def _base_fee(chain: Devnet) -> int:
    return int(chain.rpc.call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)


def test_a_pending_rival_with_a_lower_fee_is_outbid_and_we_are_mined_first(chain: Devnet, env: dict,
                                                                             monkeypatch: pytest.MonkeyPatch):
    rt = runtime_with(monkeypatch)
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    _armed(chain)
    move_price(chain.market, "WETH", pct=-20)
    base = _base_fee(chain)
    with mempool(chain):
        rival_tx = _rival_liquidates(chain, user, max_fee=2 * base + 2 * GWEI, tip=2 * GWEI)
        result = run_and_record(rt, attempt_record(user), "⚡")
        assert result.outcome == "sent", result.reason
        assert result.reason.startswith(f"outbid pending rival {rival_tx}")
        chain.rpc.call("evm_mine")
    ours = chain.rpc.call("eth_getTransactionReceipt", result.fields["tx_hash"])
    theirs = chain.rpc.call("eth_getTransactionReceipt", rival_tx)
    assert ours["status"] == "0x1"
    assert ours["blockNumber"] == theirs["blockNumber"]
    assert int(ours["transactionIndex"], 16) < int(theirs["transactionIndex"], 16)
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
    assert row.rival_tx == rival_tx
    assert row.max_fee > 2 * base + 2 * GWEI


def test_a_rival_bidding_above_our_cap_is_a_lost_race_and_nothing_is_sent(chain: Devnet, env: dict,
                                                                            monkeypatch: pytest.MonkeyPatch):
    rt = runtime_with(monkeypatch, MAX_GAS_PRICE_GWEI="50")
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    _armed(chain)
    move_price(chain.market, "WETH", pct=-20)
    nonce = int(chain.rpc.call("eth_getTransactionCount", rt.sender.address, "pending"), 16)
    with mempool(chain):
        rival_tx = _rival_liquidates(chain, user, max_fee=100 * GWEI, tip=60 * GWEI)
        result = run_and_record(rt, attempt_record(user), "⚡")
        assert result.outcome == "lost"
        assert rival_tx in result.reason
        assert int(chain.rpc.call("eth_getTransactionCount", rt.sender.address, "pending"), 16) == nonce
        chain.rpc.call("evm_mine")
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
    assert (row.outcome, row.rival_tx, row.tx_hash) == ("lost", rival_tx, None)


def test_races_lost_on_chain_are_recorded_as_lost_and_never_trip_the_breaker(chain: Devnet, env: dict,
                                                                               monkeypatch: pytest.MonkeyPatch):
    from liqbot.tasks.receipts import track_receipts

    rt = runtime_with(monkeypatch, BREAKER_MAX_FAILURES="2")
    users = [open_position(chain, who, weth=10, usdc=15_000) for who in ("user4", "user5", "user6")]
    _armed(chain)
    move_price(chain.market, "WETH", pct=-25)  # below HF 0.95: the rival repays all of each user's debt
    rivals = {}
    with mempool(chain):
        for user in users:
            sent = run_and_record(rt, attempt_record(user), "⚡")
            assert sent.outcome == "sent", sent.reason
            rivals[user] = _rival_liquidates(chain, user, max_fee=2 * sent.fields["max_fee"], tip=2 * sent.fields["tip"])
        chain.rpc.call("evm_mine")
    assert track_receipts() == 3
    with rt.sessions() as s:
        rows = {u: attempts_for(s, u)[0] for u in users}
    assert {u: (r.outcome, r.rival_tx) for u, r in rows.items()} == {u: ("lost", rivals[u]) for u in users}
    assert all(r.reason.startswith("lost race: reverted, liquidated first by") for r in rows.values())
    state = rt.breaker.state()
    assert (state.state, state.consecutive_failures) == ("closed", 0)


def test_a_user_liquidated_by_a_rival_since_the_detection_is_a_lost_race(chain: Devnet, env: dict,
                                                                           monkeypatch: pytest.MonkeyPatch):
    rt = runtime_with(monkeypatch)
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    _armed(chain)
    detected = move_price(chain.market, "WETH", pct=-25).block
    base = _base_fee(chain)
    rival_tx = _rival_liquidates(chain, user, max_fee=2 * base + 2 * GWEI, tip=2 * GWEI)  # mined at once
    result = run_and_record(rt, attempt_record(user, detected), "⚡")
    assert (result.outcome, result.reason) == ("lost", f"lost race: liquidated first by {rival_tx}")
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
    assert row.rival_tx == rival_tx
    left = account_data(chain.rpc, chain.market.pool, [user])[user]
    # v3.0 leaves the debt a full seizure cannot cover (bad debt: parked); v3.3+ burns it.
    assert rt.state.parked_among([user]) == ({user} if left.debt_base else set())
