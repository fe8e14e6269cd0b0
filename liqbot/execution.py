"""One liquidation attempt: breaker -> fresh snapshot -> decision (pure core) -> simulation -> send.

Every way out is recorded on the attempt: sent, dry_run, failed, or skipped with its reason
(breaker open, no longer liquidatable, no inventory, unprofitable, would leave dust, gas above cap,
reverted in simulation)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from liqbot.chain import aave
from liqbot.chain.sender import SimulationFailed
from liqbot.chain.snapshot import Snapshot, read_snapshot
from liqbot.domain import fees as fee_core
from liqbot.domain.close_factor import Rules
from liqbot.domain.liquidation import Candidate, decide, gas_cost_base
from liqbot.domain.units import UINT256_MAX
from liqbot.errors import RpcError
from liqbot.runtime import Runtime
from liqbot.store.attempts import record_attempt

log = logging.getLogger(__name__)
INJECTED_REVERT_GAS = 60_000
EXECUTING_TTL_MS = 20_000  # above check_and_liquidate's time limit: a killed worker's claim lapses by itself


@dataclass
class Outcome:
    outcome: str
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False  # failed before anything was sent: safe to try again


def rules_for(rt: Runtime) -> Rules:
    chosen = rt.settings.close_factor_rules
    return Rules.for_revision(rt.market.revision) if chosen == "auto" else Rules(chosen)


def debt_to_cover_arg(plan: Candidate, snap: Snapshot) -> int:
    """Pass type(uint256).max when we cover all the Pool allows and hold a margin for interest that
    accrues before mining; the Pool then takes its own maximum (never leaving v3.3 dust)."""
    held = snap.inventory.get(plan.debt_asset, 0)
    return UINT256_MAX if held > plan.debt_to_cover + plan.debt_to_cover // 500 else plan.debt_to_cover


def expected_gas(rt: Runtime) -> int:
    """What liquidations on this market use: learned from receipts (tasks.receipts), else the setting."""
    learned = rt.state.r.get(rt.state.key("gas", "liquidation"))
    return int(learned) if learned else rt.settings.liquidation_gas_estimate


def attempt(rt: Runtime, user: str, mark: str, record: dict[str, Any] | None = None) -> Outcome:
    s, market = rt.settings, rt.market
    if rt.state.r.get(rt.state.key("dedupe", user)) == "sent":
        return Outcome("skipped", "already sent, awaiting its receipt")  # a redelivered task
    allowed, why = rt.breaker.allow()
    if not allowed:
        return Outcome("skipped", why)
    sender = rt.sender
    snap = read_snapshot(rt.rpc, market, user, sender.address, rt.native_asset)
    min_tip = s.max_priority_fee_wei
    gas_expected = expected_gas(rt)
    planned_gas_cost = gas_cost_base(gas_expected, snap.base_fee + min_tip, snap.native_price)
    decision = decide(snap.positions, health_factor=snap.account.health_factor, total_debt_base=snap.account.debt_base,
                      rules=rules_for(rt), inventory=snap.inventory, gas_cost_base=planned_gas_cost,
                      min_profit_base=s.min_profit_base)
    plan = decision.plan
    if plan is None:
        return Outcome("skipped", decision.reason, {"expected_profit_base": decision.profit_base or None})
    if snap.base_fee > s.max_gas_price_wei:
        rt.breaker.gas(snap.base_fee, s.max_gas_price_wei)
        return Outcome("skipped", f"gas price above cap ({snap.base_fee / 1e9:.1f} gwei)")

    prices = {p.asset: p.price for p in snap.positions}
    info = {"collateral_asset": plan.collateral_asset, "debt_asset": plan.debt_asset,
            "debt_to_cover": plan.debt_to_cover, "collateral_price": prices[plan.collateral_asset],
            "debt_price": prices[plan.debt_asset]}
    opening = fee_core.Fees(min(2 * snap.base_fee + min_tip, s.max_gas_price_wei), min_tip)
    sender.ensure_approved(plan.debt_asset, market.pool, opening)
    data = aave.LIQUIDATION_CALL.calldata(plan.collateral_asset, plan.debt_asset, user, debt_to_cover_arg(plan, snap), False)
    try:
        sim = sender.simulate(market.pool, data, expected_gas=gas_expected, gas_limit=s.liquidation_gas_limit)
    except SimulationFailed as exc:
        return Outcome("skipped", f"reverted in simulation: {exc}"[:200], info)
    gross = plan.gross_profit_base
    net_before_tip = gross - gas_cost_base(sim.estimate, sim.base_fee, snap.native_price)
    fees = fee_core.bid(base_fee=sim.base_fee, gas=sim.estimate, profit_base=net_before_tip, native_price=snap.native_price,
                        min_tip=min_tip, profit_share_bps=s.tip_profit_share_bps, max_fee_cap=s.max_gas_price_wei)
    expected = gross - gas_cost_base(sim.estimate, sim.base_fee + fees.tip, snap.native_price)
    info |= {"expected_profit_base": expected, "max_fee": fees.max_fee, "tip": fees.tip}
    if expected < s.min_profit_base:
        return Outcome("skipped", "unprofitable", info)
    if s.dry_run:
        log.info("%s dry run user=%s: would liquidate %s against %s, expected profit %.2f", mark, user,
                 plan.debt_asset, plan.collateral_asset, expected / 10**8)
        return Outcome("dry_run", "", info)
    gas = INJECTED_REVERT_GAS if s.fault_inject_revert else sim.gas
    rt.breaker.attempted()

    def intent(tx_hash: str, nonce: int) -> None:
        """Before the bytes leave: mark the user and keep what we are about to send, so a worker killed
        right after the send still ends up with exactly one attempt row (see tasks.receipts)."""
        pipe = rt.state.r.pipeline(transaction=False)
        pipe.set(rt.state.key("dedupe", user), "sent", px=int(s.liquidation_max_age_secs * 1000))
        pipe.hset(rt.state.key("inflight"), tx_hash, json.dumps(
            {**(record or {"user": user}), **info, "tx_hash": tx_hash, "nonce": nonce, "sent_at": time.time()}))
        pipe.execute()

    try:
        sent = sender.send(market.pool, data, gas, fees, before_send=intent, pending_nonce=snap.liquidator_nonce)
    except (RpcError, OSError) as exc:
        rt.state.release(user)
        rt.breaker.result(False, f"send failed: {exc}")
        return Outcome("failed", f"send failed: {exc}"[:200], info)
    sent_at = time.time()
    if s.fault_pause_after_send_secs:
        time.sleep(s.fault_pause_after_send_secs)
    return Outcome("sent", "", info | {"tx_hash": sent.tx_hash, "nonce": sent.nonce, "sent_at": sent_at})


def run_and_record(rt: Runtime, record: dict[str, Any], mark: str) -> Outcome:
    """Attempt the liquidation and store what happened. Nothing raises out of here: an RPC or Redis
    failure is recorded as a failed attempt and counted by the breaker."""
    user = record["user"]
    running = rt.state.key("executing", user)
    try:
        # One attempt per user at a time, across every worker: two tasks for the same user (a
        # detection after the dedupe window, a redelivery) must not both send.
        if rt.state.r.set(running, record.get("task_id") or "1", nx=True, px=EXECUTING_TTL_MS):
            try:
                result = attempt(rt, user, mark, record)
            finally:
                rt.state.r.delete(running)
        else:
            result = Outcome("skipped", "another attempt for this user is in progress")
    except Exception as exc:
        log.exception("%s attempt for user=%s failed", mark, record["user"])
        with contextlib.suppress(Exception):
            rt.breaker.result(False, f"{type(exc).__name__}: {exc}")
        result = Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], retryable=isinstance(exc, RpcError))
    fields = {**record, **result.fields, "outcome": result.outcome, "reason": result.reason or None}
    if result.outcome == "sent":
        fields["latency_ms"] = (fields["sent_at"] - record["detected_at"]) * 1000
        log.info("%s liquidation sent user=%s block=%s path=%s detect->send=%.1fms start->send=%.1fms "
                 "expected profit=%.2f tx=%s", mark, record["user"], record["detected_block"], record["path"],
                 fields["latency_ms"], (fields["sent_at"] - record["started_at"]) * 1000,
                 (fields.get("expected_profit_base") or 0) / 10**8, fields["tx_hash"])
    else:
        log.info("%s %s user=%s block=%s%s", mark, result.outcome, record["user"], record["detected_block"],
                 f": {result.reason}" if result.reason else "")
    with rt.sessions.begin() as session:
        record_attempt(session, **fields)
    if result.outcome == "sent":
        rt.state.r.hdel(rt.state.key("inflight"), fields["tx_hash"])
    return result
