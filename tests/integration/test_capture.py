"""The capture audit on the devnet: every LiquidationCall of the market is ours or lost with its reason,
stored once, and the rates reach `liqbot status`; and its store on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from liqbot.chain import aave
from liqbot.chain.snapshot import read_snapshot
from liqbot.devnet import Devnet, move_price
from liqbot.devnet.txs import TxSender
from liqbot.execution import run_and_record
from liqbot.runtime import Runtime
from liqbot.store.captures import capture_rate, capture_summary, loss_reasons, record_captures
from liqbot.store.db import Capture
from liqbot.store.positions import save_position
from liqbot.tasks import capture, receipts  # modules, not task objects: collection must not finalize the app
from tests.helpers import attempt_record, liquidations, open_position, runtime_with
from tests.integration.test_store import sessions  # noqa: F401  (SQLite and PostgreSQL)

RIVAL = "user9"


def _track(rt: Runtime, users: list[str]) -> None:
    """What the producer's bookkeeping does when a user borrows: its position stored, at that block."""
    with rt.sessions.begin() as session:
        for user in users:
            snap = read_snapshot(rt.rpc, rt.market, user)
            save_position(session, snap.account, snap.positions, snap.block)


def _rival_liquidates(chain: Devnet, users: list[str]) -> None:
    """Another liquidator, with USDC of its own, calls the Pool directly: one transaction per user."""
    m, tx = chain.market, TxSender(chain.rpc)
    rival, weth, usdc = m.account(RIVAL).address, m.reserve("WETH").address, m.reserve("USDC").address
    tx.call(rival, usdc, aave.MINT_TO, rival, 10**13)
    tx.call(rival, usdc, aave.APPROVE, m.pool, aave.UINT256_MAX)
    for user in users:
        tx.call(rival, m.pool, aave.LIQUIDATION_CALL, weth, usdc, user, aave.UINT256_MAX, False)
    tx.settle()


def test_every_liquidation_is_ours_or_lost_with_its_reason(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture):
    caplog.set_level("INFO", logger="liqbot.tasks.capture")
    rt = runtime_with(monkeypatch)
    ours = [open_position(chain, who) for who in ("user4", "user5")]
    undetected, skipped, untracked = (open_position(chain, who) for who in ("user6", "user7", "user8"))
    _track(rt, [*ours, undetected, skipped])
    start = int(chain.rpc.call("eth_blockNumber"), 16)
    assert capture.capture_audit() == 0  # nothing liquidated yet; the audit has seen who we track
    detected = move_price(chain.market, "WETH", pct=-10).block

    picky = runtime_with(monkeypatch, MIN_PROFIT_BASE=str(10**15))
    assert run_and_record(picky, attempt_record(skipped, detected), "⚡").outcome == "skipped"
    rt = runtime_with(monkeypatch, MIN_PROFIT_BASE="0")
    for user in ours:
        assert run_and_record(rt, attempt_record(user, detected), "⚡").outcome == "sent"
    assert receipts.track_receipts() == 2
    _rival_liquidates(chain, [skipped, undetected, untracked])
    everything = liquidations(chain.rpc, chain.market.pool, start)
    assert len(everything) == 5

    # A liquidation of ours for the undetected user still in flight: the audit stops before its block.
    inflight = rt.state.key("inflight")
    rt.state.r.hset(inflight, "0xfeed", json.dumps({"user": undetected, "sent_at": 0}))
    chain.rpc.call("evm_mine")
    chain.rpc.call("evm_mine")
    assert capture.capture_audit() == 3  # ours (2) and the skipped user's, mined before it
    rt.state.r.hdel(inflight, "0xfeed")
    assert capture.capture_audit() == 2
    assert capture.capture_audit() == 0  # each event once

    with rt.sessions() as s:
        rows = {c.user: c for c in s.scalars(select(Capture))}
    assert {c.tx_hash for c in rows.values()} == {e["tx"] for e in everything}
    assert {u: (c.ours, c.reason) for u, c in rows.items()} == {
        ours[0]: (True, None), ours[1]: (True, None), undetected: (False, "not detected"),
        skipped: (False, "skipped: unprofitable"), untracked: (False, "not tracked")}
    assert all(rows[u].attempt_id is not None for u in (*ours, skipped))
    assert all(c.bonus_base > 0 for c in rows.values())
    lost = rows[untracked]
    assert f"⚡ lost user={untracked} block={lost.block} to {lost.liquidator} tx={lost.tx_hash}: not tracked" in caplog.messages

    from liqbot.cli.status import capture_line, gather

    summary = gather()["capture"]
    day = summary["rates"]["24h"]
    ours_bonus = sum(rows[u].bonus_base for u in ours)
    assert (day["ours"], day["total"], day["ours_bonus"]) == (2, 5, ours_bonus)
    assert day["total_bonus"] == sum(c.bonus_base for c in rows.values())
    assert summary["rates"]["1h"] == day
    assert sorted(summary["losses"]) == [("not detected", 1), ("not tracked", 1), ("skipped: unprofitable", 1)]
    assert capture_line(summary).startswith(f"capture: last hour 2/5 (40%), {ours_bonus / day['total_bonus']:.0%} of bonus;")


def _row(tx: str, log_index: int, at: int, ours: bool, reason: str | None, bonus: int) -> dict:
    return {"tx_hash": tx, "log_index": log_index, "block": 10, "block_timestamp": at, "user": "0xU", "liquidator": "0xL",
            "collateral_asset": "0xC", "debt_asset": "0xD", "debt_covered": 3 * 10**30, "collateral_seized": 2**200,
            "bonus_base": bonus, "ours": ours, "reason": reason, "attempt_id": None}


def test_captures_are_recorded_once_and_rated_by_window(sessions: sessionmaker):  # noqa: F811
    now = 1_000_000
    rows = [_row("0x1", 0, now - 10, True, None, 970), _row("0x1", 1, now - 20, False, "not detected", 10),
            _row("0x2", 0, now - 7_200, False, "not detected", 10), _row("0x3", 0, now - 100_000, False, "reverted", 5)]
    with sessions.begin() as s:
        assert record_captures(s, rows) == 4
    with sessions.begin() as s:
        assert record_captures(s, rows[:2]) == 0
    with sessions() as s:
        assert capture_rate(s, now - 3_600).as_dict() == {"ours": 1, "total": 2, "ours_bonus": 970, "total_bonus": 980,
                                                         "by_count": 0.5, "by_bonus": 970 / 980}
        assert loss_reasons(s, now - 86_400) == [("not detected", 2)]
        assert loss_reasons(s, 0) == [("not detected", 2), ("reverted", 1)]
        assert s.scalar(select(Capture.collateral_seized).where(Capture.tx_hash == "0x1").limit(1)) == 2**200
        summary = capture_summary(s, now)
    assert (summary["rates"]["1h"]["total"], summary["rates"]["24h"]["total"]) == (2, 3)
