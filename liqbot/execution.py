"""One liquidation attempt: breaker -> fresh snapshot -> decision (pure core) -> simulation -> send.

Every way out is recorded on the attempt: sent, dry_run, failed, lost (another liquidator got there
first, or bids more than the race is worth), or skipped with its reason (breaker open, no longer
liquidatable, no inventory, unprofitable, would leave dust, gas above cap, reverted in simulation)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from liqbot.chain import aave, liquidator
from liqbot.chain.market import MarketInfo
from liqbot.chain.rivals import RivalTx, mined_rivals, read_contests
from liqbot.chain.sender import Sent, Simulation, SimulationFailed, Tx
from liqbot.chain.snapshot import Snapshot, read_snapshots
from liqbot.domain import fees as fee_core
from liqbot.domain.breaker import CLOSED
from liqbot.domain.close_factor import Rules
from liqbot.domain.liquidation import Candidate, decide, gas_cost_base
from liqbot.domain.plan import PendingUpdate, Plan
from liqbot.domain.reverts import lost_race
from liqbot.domain.route import FLASH, INVENTORY, UNLIMITED, RouteOption, choose, flash_amount, min_profit
from liqbot.domain.units import UINT256_MAX, value_base
from liqbot.errors import LiqbotError, RpcError
from liqbot.runtime import Runtime
from liqbot.store.attempts import awaiting_receipt, record_attempts

log = logging.getLogger(__name__)
# What a user shows after another liquidator took it: a skip for one of these may be a lost race.
RIVAL_LEFT = frozenset({"no longer liquidatable", "no seizable collateral or repayable debt", "would leave dust",
                        "unprofitable"})
REVERTED_IN_SIMULATION = "reverted in simulation: "
# Skips that only an event touching the user (or a price move) can change: such users are parked, not re-tried.
PARKED_REASONS = frozenset({"no seizable collateral or repayable debt", "unprofitable"})
UNREADABLE = "the Pool's account read reverts for this user"
UNREADABLE_RETRY_SECS = 10.0  # such a user is parked this long, then scans route it again
INJECTED_REVERT_GAS = 60_000
READ_WHOLE_MARKET = 16  # reserves: up to this many, a liquidation snapshot with no guess reads them all
EXECUTING_TTL_MS = 20_000  # above check_and_liquidate's time limit: a killed worker's claim lapses by itself
UNSIMULATED = "sent on the mirror's plan, not simulated"  # the row's reason: how receipts know a trusted send
SENT_BY_PRODUCER = f"{UNSIMULATED}, by the producer"  # (a prefix of it: receipts treat both alike)
TRUST_SUSPENDED = "trust:suspended"  # Redis: while set, every plan is verified by simulation
TRUST_SUSPEND_SECS = 600
PLAN_TRUST_SECS = 1.0  # an older plan may predate a block the mirror has not shown it
GAS_MEMORY_SECS = 5.0  # the learned gas is read from Redis at most this often per process


class ReceiptAwaited(LiqbotError):
    """Raised before the bytes leave (nothing is sent): a user of the batch awaits the receipt of a liquidation
    of ours that Redis no longer remembers (`skip_awaiting_receipts`)."""


@dataclass
class Outcome:
    outcome: str
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False  # failed before anything was sent: safe to try again
    stages_ms: dict[str, float] = field(default_factory=dict)  # where the worker's time went, for the log
    group: int = 1  # transactions sent together with this one
    park: str = ""  # a reason to park the user (PARKED_REASONS), kept when a skip turns out a lost race
    left_at: float = 0.0  # sent: when the bytes left for the node (sent_at is when the node had taken them all)


def rules_for(rt: Runtime) -> Rules:
    chosen = rt.settings.close_factor_rules
    return Rules.for_revision(rt.market.revision) if chosen == "auto" else Rules(chosen)


def debt_to_cover_arg(plan: Candidate, held: int) -> int:
    """Pass type(uint256).max when we cover all the Pool allows and hold a margin for interest that
    accrues before mining; the Pool then takes its own maximum (never leaving v3.3 dust)."""
    return UINT256_MAX if held > plan.debt_to_cover + interest_margin(plan) else plan.debt_to_cover


def interest_margin(plan: Candidate) -> int:
    return plan.debt_to_cover // 500


def expected_gas(rt: Runtime, route: str = INVENTORY) -> int:
    """What liquidations by this route use on this market: learned from receipts (tasks.receipts), else
    the setting."""
    learned = rt.recent(("gas", route), GAS_MEMORY_SECS, lambda: rt.state.r.get(gas_key(rt, route)))
    if learned:
        return int(learned)
    return rt.settings.flash_gas_estimate if route == FLASH else rt.settings.liquidation_gas_estimate


def gas_key(rt: Runtime, route: str | None) -> str:
    return rt.state.key("gas", "flash" if route == FLASH else "liquidation")


def snapshot_guess(market: MarketInfo, last_config: int | None) -> int | None:
    """Which reserves to read with the user's configuration: the ones it used last time, or, on a
    market small enough to read whole, all of them; otherwise the snapshot takes a second trip."""
    if last_config is not None:
        return last_config
    if len(market.reserves) <= READ_WHOLE_MARKET:
        return sum(3 << (2 * r.id) for r in market.reserves)
    return None


@dataclass
class Option:
    """One way to send a job's liquidation: from inventory (to the Pool) or by flash loan (to our contract)."""

    route: str
    to: str
    data: str
    plan: Candidate
    gas: tuple[int, int]  # expected, limit
    result: Simulation | SimulationFailed | None = None
    args: tuple = ()  # a flash call's arguments but the profit floor, set once simulated


@dataclass
class Job:
    """One user of a group on its way through an attempt; `outcome` is set where it leaves."""

    user: str
    record: dict[str, Any]
    last_config: int | None
    given: Plan | None = None  # the detector's plan, to verify by simulation instead of a fresh read
    snap: Snapshot | None = None
    plan: Candidate | None = None
    info: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    sim: Simulation | None = None
    fees: fee_core.Fees | None = None
    rival: RivalTx | None = None  # a pending transaction of another liquidator for this user
    note: str = ""  # what the attempt decided on the way (e.g. the outbid), kept as the sent row's reason
    outcome: Outcome | None = None
    options: list[Option] = field(default_factory=list)  # simulated together; the most profitable is sent
    to: str = ""  # where the chosen call goes
    chosen: Option | None = None
    prices: dict[str, int] = field(default_factory=dict)  # asset -> the oracle price the plans used


def attempt_group(rt: Runtime, jobs: list[Job], mark: str) -> list[Outcome]:
    """Liquidate every user of the group in shared round trips. Users that came with a plan (the
    producer's mirror) are verified by one simulation batch and sent in one batch: two round trips.
    The others, and any plan the simulation disagrees with, are read fresh first: one batch reads them
    all, one simulates, one sends. A burst of N users costs two or three round trips, not 3N."""
    allowed, why = rt.breaker.allow()
    if not allowed:
        finish(jobs, "skipped", why)
        return [job.outcome for job in jobs]  # type: ignore[misc]
    if why == "probe":  # half-open: exactly one attempt may test the water
        for job in jobs[1:]:
            job.outcome = Outcome("skipped", "breaker half-open: one probe at a time")
    live = [j for j in jobs if j.outcome is None]
    gas_expected = expected_gas(rt)
    planned = [j for j in live if j.given is not None]
    if planned:
        run_planned(rt, planned, gas_expected)
    fresh = [j for j in live if j.outcome is None]
    if fresh:
        run_fresh(rt, fresh, gas_expected)
    name_lost_races(rt, live)
    for job in jobs:
        assert job.outcome is not None
        if job.outcome.outcome == "dry_run":
            log.info("%s dry run user=%s: would liquidate %s against %s, expected profit %.2f", mark, job.user,
                     job.plan.debt_asset, job.plan.collateral_asset, job.info["expected_profit_base"] / 10**8)
    return [job.outcome for job in jobs]  # type: ignore[misc]


def run_planned(rt: Runtime, jobs: list[Job], gas_expected: int) -> None:
    """Trust the plans, verify them: simulate the exact calls (our nonce rides along), then send. A plan
    the chain disagrees with goes back to the fresh path, with the reason kept on its record. Plans made
    behind a pending price update are simulated behind it, per update."""
    behind: dict[str | None, list[Job]] = {}
    for job in jobs:
        after = job.given.after  # type: ignore[union-attr]
        behind.setdefault(after.tx_hash if after else None, []).append(job)
    for part in behind.values():
        run_plans(rt, part, gas_expected)


def run_plans(rt: Runtime, jobs: list[Job], gas_expected: int) -> None:
    t_sim = time.perf_counter()
    after = jobs[0].given.after  # type: ignore[union-attr]
    for job in jobs:
        adopt(rt, job, job.given)  # type: ignore[arg-type]
    trusted = trusted_jobs(rt, jobs) if after is None else []
    if trusted:
        send_unsimulated(rt, trusted)
        jobs = [j for j in jobs if all(j is not t for t in trusted)]
        if not jobs:
            return
        t_sim = time.perf_counter()
    simulate_all(rt, jobs, jobs[0].given.native_price, gas_expected, behind=after)  # type: ignore[union-attr]
    for job in jobs:
        o = job.outcome
        if o is None or o.outcome != "skipped" or not o.reason.startswith(REVERTED_IN_SIMULATION):
            continue
        if after is not None:  # nothing to read fresh before the update is mined: its own detection will come
            job.outcome = Outcome("skipped", f"backrun of {after.tx_hash}: {o.reason}"[:200], job.info)
            rt.state.release(job.user)
            continue
        job.note = f"plan of block {job.given.block} disagreed ({o.reason[len(REVERTED_IN_SIMULATION):]})"[:200]  # type: ignore[union-attr]
        job.given, job.outcome, job.sim, job.rival, job.options = None, None, None, None, []
        log.info("user=%s: %s; reading it fresh", job.user, job.note)
    ready = [j for j in jobs if j.outcome is None and j.given is not None]
    sims = [j.sim for j in ready if j.sim is not None]
    if sims and sims[0].base_fee > rt.settings.max_gas_price_wei:
        rt.breaker.gas(sims[0].base_fee, rt.settings.max_gas_price_wei)
        finish(ready, "skipped", f"gas price above cap ({sims[0].base_fee / 1e9:.1f} gwei)")
        return
    t_send = time.perf_counter()
    if ready:
        send_all(rt, ready, sims[0].pending_nonce, after)
        mark_stages(ready, {"sim": t_send - t_sim, "send": time.perf_counter() - t_send})
        if after is not None:
            guard(rt, after, ready)


def trusted_jobs(rt: Runtime, jobs: list[Job]) -> list[Job]:
    """Plans fit to send without their verifying simulation (TRUST_MIRROR_PLANS): made by the mirror less
    than a second ago at a known base fee, paid from inventory this process knows it holds and has
    approved, on a market with no PriceOracleSentinel and no liquidation grace period running (chain/guards.py),
    while no such send has reverted lately. The simulation would only prove again what the
    mirror's exact math decided, at the cost of a round trip that loses races; what it would catch beyond
    that (a stale plan, a rule the mirror does not model) costs one reverted transaction, after which
    every plan is verified for TRUST_SUSPEND_SECS (`suspend_trust`, told by the receipt tracker)."""
    s, now = rt.settings, time.time()
    if not s.trust_mirror_plans or s.dry_run or rt.trust_blockers != []:  # None: not read yet
        return []
    fit = [j for j in jobs if j.given is not None and j.given.base_fee and j.given.after is None
           and now - j.record["detected_at"] < PLAN_TRUST_SECS
           and j.options and j.options[0].route == INVENTORY and rt.sender.approved(j.options[0].plan.debt_asset)]
    if not fit or rt.recent(TRUST_SUSPENDED, 1.0, lambda: rt.state.r.exists(rt.state.key(TRUST_SUSPENDED))):
        return []
    out = []
    for job in fit:
        c = job.options[0].plan
        need = c.debt_to_cover + interest_margin(c)
        if rt.inventory.covers(c.debt_asset, need):
            rt.inventory.spend(c.debt_asset, need)
            out.append(job)
    return out


def send_unsimulated(rt: Runtime, jobs: list[Job], unless: Callable[[], set[str]] | None = None) -> None:
    """Bid and send trusted plans at once, on the base fee and gas the detector and the receipts knew. `unless`:
    see `send_all`."""
    t_send = time.perf_counter()
    base_fee = max(j.given.base_fee for j in jobs)  # type: ignore[union-attr]
    for job in jobs:
        o = job.options[0]
        job.sim = Simulation(o.gas[0], o.gas[1], job.given.base_fee)  # type: ignore[union-attr]
        job.note = UNSIMULATED
        bid_fees(rt, job, job.given.native_price)  # type: ignore[union-attr]
    ready = [j for j in jobs if j.outcome is None]
    if ready and base_fee > rt.settings.max_gas_price_wei:
        rt.breaker.gas(base_fee, rt.settings.max_gas_price_wei)
        finish(ready, "skipped", f"gas price above cap ({base_fee / 1e9:.1f} gwei)")
        return
    if ready:
        send_all(rt, ready, None, reuse_nonce=True, unless=unless)
        mark_stages(ready, {"send": time.perf_counter() - t_send})


def send_first_peeks(rt: Runtime) -> list[tuple[str, str | None]]:
    """What `send_first` reads from Redis, for the claim's round trip to read along: the breaker's state, a
    suspended trust, the gas receipts taught (on a loaded host each round trip saved is a millisecond or more)."""
    return [(rt.breaker.key, "state"), (rt.state.key(TRUST_SUSPENDED), None), (gas_key(rt, INVENTORY), None)]


def send_first(rt: Runtime, records: list[tuple[dict[str, Any], Plan]], peeked: list | None = None) -> dict[str, dict[str, Any]]:
    """PRODUCER_SENDS: the detector sends the plans it may trust (`trusted_jobs`) itself, before any task is
    published, so that no hop through Redis and a worker's pool stands between a price move and the send;
    the same checks as the lane's (breaker, a receipt awaited, trust, inventory) and the same send (the nonce
    lock, the intent before the bytes leave). `peeked`: the values of `send_first_peeks`, read with the claim.
    Returns user -> what the priority task records (`record_sent`); the others take the lane's usual way."""
    t0 = time.perf_counter()
    breaker_state = None
    if peeked is not None:
        breaker_state, suspended, gas = peeked
        rt.remember(TRUST_SUSPENDED, suspended is not None)
        rt.remember(("gas", INVENTORY), gas)
    allowed, why = (True, "") if peeked is not None and breaker_state in (None, CLOSED) else rt.breaker.allow()
    if not allowed or why == "probe":  # the half-open probe is the lane's, with its simulation
        return {}
    jobs = [Job(record["user"], record, None, given=plan) for record, plan in records]
    # The receipts query runs beside the trust decision and the send lock's round trip; the send waits for it.
    awaiting = rt.background(lambda: awaiting_receipts(rt, [j.user for j in jobs]))
    for job in jobs:
        adopt(rt, job, job.given)  # type: ignore[arg-type]
    trusted = trusted_jobs(rt, jobs)
    t_checked = time.perf_counter()
    if not trusted:
        return {}
    try:
        send_unsimulated(rt, trusted, unless=awaiting.result)
    except ReceiptAwaited as exc:
        log.info("%s; the lane takes this batch (it skips them)", exc)
        return {}
    return {j.user: {"tx_hash": o.fields["tx_hash"], "sent_at": o.fields["sent_at"], "left_at": o.left_at,
                     "checks_ms": (t_checked - t0) * 1000, "send_ms": o.stages_ms.get("send", 0.0)}
            for j in trusted if (o := j.outcome) is not None and o.outcome == "sent"}


def record_sent(rt: Runtime, record: dict[str, Any], sent: dict[str, Any], mark: str) -> Outcome:
    """The priority task of a user the producer liquidated itself (`send_first`): its attempt row, from the
    intent the send left in Redis, and the lane's ⚡ line. A redelivered task finds the intent gone (recorded)."""
    tx_hash = str(sent.get("tx_hash", ""))
    raw = rt.state.r.hget(rt.state.key("inflight"), tx_hash)
    if raw is None:
        return Outcome("skipped", "already sent, awaiting its receipt")
    intent = json.loads(raw)
    fields = {k: v for k, v in intent.items() if k not in record or k == "started_at"}
    fields["sent_at"] = float(sent.get("sent_at") or intent["sent_at"])
    job = Job(record["user"], {**record, "started_at": fields.pop("started_at", record["started_at"])}, None)
    job.outcome = Outcome("sent", SENT_BY_PRODUCER, fields, stages_ms={"send": float(sent.get("send_ms") or 0.0)})
    record_all(rt, [job], mark)
    return job.outcome


def suspend_trust(rt: Runtime, why: str) -> None:
    """A send without simulation reverted for a reason of ours: verify every plan again for a while."""
    rt.state.r.set(rt.state.key(TRUST_SUSPENDED), why[:200], ex=TRUST_SUSPEND_SECS)
    rt.forget(TRUST_SUSPENDED)
    log.warning("plans are verified by simulation again for %d s: %s", TRUST_SUSPEND_SECS, why)


def guard(rt: Runtime, after: PendingUpdate, jobs: list[Job]) -> None:
    """Watch the update our liquidations follow (tasks/guard.py): if it never lands, they must not either."""
    from liqbot.tasks.guard import GUARD_SECS, guard_backrun

    sent = [[j.user, o.fields["tx_hash"], o.fields["nonce"], o.fields["max_fee"], o.fields["tip"]]
            for j in jobs if (o := j.outcome) is not None and o.outcome == "sent"]
    if not sent:
        return
    try:
        guard_backrun.apply_async((after.tx_hash, sent, time.time()), queue="default", routing_key="default",
                                  countdown=GUARD_SECS)
    except Exception as exc:
        log.warning("could not start the guard of %d backruns behind %s: %s", len(sent), after.tx_hash, exc)


def run_fresh(rt: Runtime, jobs: list[Job], gas_expected: int) -> None:
    s = rt.settings
    t_read = time.perf_counter()
    read = [(j, snap) for j, snap in zip(jobs, read_fresh(rt, jobs), strict=True) if snap is not None]
    if not read:
        return
    jobs, snaps = [j for j, _ in read], [snap for _, snap in read]
    plan_all(rt, jobs, snaps, gas_expected)
    base_fee = snaps[0].base_fee
    if base_fee > s.max_gas_price_wei and any(j.outcome is None for j in jobs):
        rt.breaker.gas(base_fee, s.max_gas_price_wei)
        finish(jobs, "skipped", f"gas price above cap ({base_fee / 1e9:.1f} gwei)")
    t_sim = time.perf_counter()
    simulate_all(rt, [j for j in jobs if j.outcome is None], snaps[0].native_price, gas_expected)
    t_send = time.perf_counter()
    ready = [j for j in jobs if j.outcome is None]
    if ready:
        send_all(rt, ready, snaps[0].liquidator_nonce)
        mark_stages(ready, {"read": t_sim - t_read, "sim": t_send - t_sim, "send": time.perf_counter() - t_send})


def read_fresh(rt: Runtime, jobs: list[Job]) -> list[Snapshot | None]:
    """The group's snapshots in one batch. A read that reverts (the Pool cannot compute a user's account: it
    would revert a liquidation too) is that user's state, not a fault of ours: each user is then read alone,
    and one that still reverts is skipped and parked, never told to the breaker (one such user tripped it,
    three attempts in a row, in a Sentinel failover run)."""
    market = rt.market
    try:
        return list(read_snapshots(rt.rpc, market, [(j.user, snapshot_guess(market, j.last_config)) for j in jobs],
                                   rt.sender.address, rt.native_asset))
    except RpcError as exc:
        if not exc.reverted:
            raise
        if len(jobs) > 1:
            return [snap for job in jobs for snap in read_fresh(rt, [job])]
        jobs[0].outcome = Outcome("skipped", f"{UNREADABLE} ({exc})"[:200], park=UNREADABLE)
        return [None]


def mark_stages(jobs: list[Job], stages: dict[str, float]) -> None:
    for job in jobs:
        if job.outcome is not None and job.outcome.outcome == "sent":
            job.outcome.stages_ms = {k: v * 1000 for k, v in stages.items()}
            job.outcome.group = len(jobs)


def name_lost_races(rt: Runtime, jobs: list[Job]) -> None:
    """After the sends: a user left with nothing for us (healthy again, no collateral, dust, no profit)
    because another liquidator's transaction was mined since the detection is a lost race, recorded
    with that transaction (one log query)."""
    gone = [j for j in jobs if j.outcome is not None and j.outcome.outcome == "skipped" and j.outcome.reason in RIVAL_LEFT]
    if not gone:
        return
    since = min(int(j.record.get("detected_block") or 0) for j in gone)
    rivals = mined_rivals(rt.rpc, rt.market.pool, rt.sender.address, [j.user for j in gone], since,
                          contract=rt.liquidator_contract)
    for job in gone:
        if (tx := rivals.get(job.user.lower())) is not None:
            job.info["rival_tx"] = tx
            park = job.outcome.reason if job.outcome.reason in PARKED_REASONS else ""
            job.outcome = Outcome("lost", f"lost race: liquidated first by {tx}", job.info, park=park)


def finish(jobs: list[Job], outcome: str, reason: str) -> None:
    for job in jobs:
        if job.outcome is None:
            job.outcome = Outcome(outcome, reason, job.info)


def adopt(rt: Runtime, job: Job, given: Plan) -> None:
    """Take a plan made elsewhere as this job's own: its calls (inventory where we hold the debt asset,
    flash where our contract can), and the fields its record keeps."""
    c = given.candidate
    job.prices = {c.collateral_asset: given.collateral_price, c.debt_asset: given.debt_price}
    flash = flash_option(rt, job.user, c)
    if flash is None or rt.sender.approved(c.debt_asset):
        job.options.append(inventory_option(rt, job.user, c, given.debt_arg))
    if flash is not None:
        job.options.append(flash)
    take(job, job.options[0])


def take(job: Job, option: Option) -> None:
    """Make `option` the job's call, and what its record says."""
    c = job.plan = option.plan
    job.to, job.data, job.chosen = option.to, option.data, option
    job.info |= {"route": option.route, "collateral_asset": c.collateral_asset, "debt_asset": c.debt_asset,
                 "debt_to_cover": c.debt_to_cover, "collateral_price": job.prices[c.collateral_asset],
                 "debt_price": job.prices[c.debt_asset]}


def inventory_option(rt: Runtime, user: str, plan: Candidate, debt_arg: int) -> Option:
    data = aave.LIQUIDATION_CALL.calldata(plan.collateral_asset, plan.debt_asset, user, debt_arg, False)
    return Option(INVENTORY, rt.market.pool, data, plan, (expected_gas(rt), rt.settings.liquidation_gas_limit))


def flash_option(rt: Runtime, user: str, plan: Candidate) -> Option | None:
    """The same liquidation through our contract, when one is configured and a DEX route sells the collateral
    for the debt asset. Simulated with no profit floor: the call returns what it would make."""
    contract = rt.liquidator_contract
    if contract is None:
        return None
    path = swap_path(rt, contract, plan.collateral_asset, plan.debt_asset)
    if path is None:
        return None
    s = rt.settings
    args = (plan.collateral_asset, plan.debt_asset, user, flash_amount(plan.debt_to_cover, interest_margin(plan)), path)
    return Option(FLASH, contract, liquidator.liquidate_calldata(*args, 0), plan,
                  (expected_gas(rt, FLASH), s.flash_gas_limit), args=args)


def dex_factory(rt: Runtime, contract: str) -> str:
    """The Uniswap v3 factory behind our contract's router, read once per runtime."""
    if ("factory", contract) not in rt.dex:
        router = liquidator.ROUTER.decode(rt.rpc.eth_call(contract, liquidator.ROUTER.calldata()))
        rt.dex["factory", contract] = liquidator.FACTORY.decode(rt.rpc.eth_call(router, liquidator.FACTORY.calldata()))
    return rt.dex["factory", contract]


def swap_path(rt: Runtime, contract: str, collateral: str, debt: str) -> bytes | None:
    """The Uniswap v3 route our contract sells `collateral` through (direct, or via one of the market's
    reserves), found once per pair and runtime: pools are not created in a race."""
    key = ("path", contract, collateral, debt)
    if key not in rt.dex:
        hubs = [r.asset for r in rt.market.reserves]
        rt.dex[key] = liquidator.find_path(rt.rpc, dex_factory(rt, contract), collateral, debt, hubs)
        if rt.dex[key] is None:
            log.info("no DEX route from %s to %s: those liquidations are paid from inventory", collateral, debt)
    return rt.dex[key]


def plan_all(rt: Runtime, jobs: list[Job], snaps: list[Snapshot], gas_expected: int) -> None:
    """The pure core's decision for each user; the group shares our inventory, so each plan only
    counts on what the plans before it left. With our flash contract, each user also gets the plan a
    flash loan allows (any amount of the debt asset): both are simulated, the better one is sent."""
    s = rt.settings
    min_tip, rules = s.max_priority_fee_wei, rules_for(rt)
    spent: dict[str, int] = {}
    for job, snap in zip(jobs, snaps, strict=True):
        job.snap = snap
        inventory = {asset: held - spent.get(asset, 0) for asset, held in snap.inventory.items()}
        gas_price = snap.base_fee + min_tip
        kw = {"health_factor": snap.account.health_factor, "total_debt_base": snap.account.debt_base, "rules": rules,
              "min_profit_base": s.min_profit_base}
        decision = decide(snap.positions, inventory=inventory,
                          gas_cost_base=gas_cost_base(gas_expected, gas_price, snap.native_price), **kw)
        if decision.plan is not None:
            plan = decision.plan
            spent[plan.debt_asset] = spent.get(plan.debt_asset, 0) + plan.debt_to_cover + interest_margin(plan)
            job.options.append(inventory_option(rt, job.user, plan, debt_to_cover_arg(plan, inventory[plan.debt_asset])))
        if rt.liquidator_contract is not None:
            flash = decide(snap.positions, inventory=UNLIMITED, gas_cost_base=0, **kw)  # profit: from the simulation
            if flash.plan is not None and (option := flash_option(rt, job.user, flash.plan)) is not None:
                job.options.append(option)
        if not job.options:
            job.outcome = Outcome("skipped", decision.reason, {"expected_profit_base": decision.profit_base or None})
            continue
        job.prices = {p.asset: p.price for p in snap.positions}
        take(job, job.options[0])


def simulate_all(rt: Runtime, jobs: list[Job], native_price: int, gas_expected: int,
                 behind: PendingUpdate | None = None) -> None:
    """Approve what needs it (once per asset), simulate every option of every plan in one batch (a flash
    option's simulation is its quote: it returns the profit), keep each job's most profitable option, bid
    the fees. A plan that fails against the pending block because of another liquidator is a contest,
    settled by `contest_all`: a rival still pending is outbid, a race already mined is recorded as lost."""
    if not jobs:
        return
    s, sender = rt.settings, rt.sender
    min_tip = s.max_priority_fee_wei
    held = [o.plan.debt_asset for j in jobs for o in j.options if o.route == INVENTORY]
    unapproved = [a for a in dict.fromkeys(held) if not sender.approved(a)]
    if unapproved:  # rare: approvals are sent at start-up
        base_fee = int(rt.rpc.call("eth_getBlockByNumber", "latest", False).get("baseFeePerGas") or "0x0", 16)
        opening = fee_core.Fees(min(2 * base_fee + min_tip, s.max_gas_price_wei), min_tip)
        for asset in unapproved:
            sender.ensure_approved(asset, rt.market.pool, opening)
    options = [o for j in jobs for o in j.options]
    # One option per job: simulate them at once in the order they will be mined (the group's calls affect
    # each other behind an update, and flash sales move the pools), no separate confirmation needed.
    ordered = all(len(j.options) == 1 for j in jobs) and needs_order(options, behind)
    try:
        if ordered:
            (sims,) = sender.simulate_in_order([[(o.to, o.data, o.gas[1]) for o in options]], behind and behind.call())
        elif behind:
            sims = [r[0] for r in sender.simulate_in_order([[(o.to, o.data, o.gas[1])] for o in options], behind.call())]
        else:
            sims = sender.simulate_many([(o.to, o.data) for o in options], with_nonce=True, gas=[o.gas for o in options])
    except SimulationFailed as exc:  # the update itself would revert (replaced, or already mined)
        sims = [exc] * len(options)
    for option, sim in zip(options, sims, strict=True):
        option.result = sim
    first = sims[0]
    for job in jobs:
        pick(rt, job, first.base_fee + min_tip, native_price)
    if not ordered:
        confirm_in_order(rt, jobs, behind, first.base_fee + min_tip, native_price)
    contested = [j for j in jobs if j.sim is None and isinstance(fail := j.options[0].result, SimulationFailed)
                 and lost_race(fail.code) and behind is None]
    if contested:
        contest_all(rt, contested, Simulation(gas_expected, s.liquidation_gas_limit, first.base_fee, first.pending_nonce))
    for job in jobs:
        if job.outcome is not None:
            continue
        if job.sim is None:
            job.outcome = Outcome("skipped", f"{REVERTED_IN_SIMULATION}{job.options[0].result}"[:200], job.info)
            continue
        bid_fees(rt, job, native_price, behind)


def pick(rt: Runtime, job: Job, gas_price: int, native_price: int) -> None:
    """The job's most profitable option that simulated fine (route core); a flash option's gross profit
    is what the simulation returned, in the debt asset, valued at the plan's price."""
    ok: dict[int, RouteOption] = {}
    quoted = 0
    for i, o in enumerate(job.options):
        if not isinstance(o.result, Simulation):
            continue
        if o.route == FLASH:
            quoted = requote(rt, job, o, o.result, gas_price, native_price)
        ok[i] = RouteOption(o.route, o.plan.gross_profit_base, o.result.estimate)
    best = choose(list(ok.values()), gas_price, native_price)
    if best is None:
        return
    chosen = job.options[next(i for i, r in ok.items() if r is best)]
    take(job, chosen)
    job.sim = chosen.result  # type: ignore[assignment]
    notes = [f"flash: simulated profit {quoted} (debt asset units)"] if best.route == FLASH else []
    if len(ok) > 1:
        other = next(r for r in ok.values() if r is not best)
        notes.append(f"{best.route} over {other.route}: net {best.net(gas_price, native_price) / 10**8:.2f} vs "
                     f"{other.net(gas_price, native_price) / 10**8:.2f} USD before the tip")
    job.note = "; ".join([job.note, *notes] if job.note else notes)


def requote(rt: Runtime, job: Job, o: Option, sim: Simulation, gas_price: int, native_price: int) -> int:
    """A flash option's simulation is its quote: the profit it returned (debt asset units) becomes the plan's
    gross profit, and the call to send gets its profit floor. Returns the quote."""
    price, decimals = job.prices[o.plan.debt_asset], rt.market.by_asset[o.plan.debt_asset].decimals
    quoted = int(sim.output, 16) if sim.output not in ("0x", "") else 0
    o.plan = replace(o.plan, gross_profit_base=value_base(quoted, price, decimals))
    cost = gas_cost_base(o.gas[0], gas_price, native_price) + rt.settings.min_profit_base
    o.data = liquidator.liquidate_calldata(*o.args, min_profit(quoted, rt.settings.flash_slippage_bps, cost, price, decimals))
    return quoted


def needs_order(options: list[Option], behind: PendingUpdate | None) -> bool:
    """Calls that must be simulated in the order they are mined: several behind one update, or several
    flash sales on the same DEX."""
    return len(options) > 1 and (behind is not None or sum(o.route == FLASH for o in options) > 1)


def confirm_in_order(rt: Runtime, jobs: list[Job], behind: PendingUpdate | None, gas_price: int, native_price: int) -> None:
    """Options are simulated each on its own; a group's chosen calls then run in one block one after the other:
    behind a pending update, or when flash loans sell on the same DEX pools (each sale moves the price the next
    one gets), simulate them once more in that order (one more round trip) and take those figures: a call
    that fails there is skipped, a flash quote is renewed."""
    chosen = [j for j in jobs if j.sim is not None and j.outcome is None and j.chosen is not None]
    opts = [j.chosen for j in chosen if j.chosen is not None]
    if not needs_order(opts, behind):
        return
    calls = [(o.to, liquidator.liquidate_calldata(*o.args, 0) if o.route == FLASH else o.data, o.gas[1]) for o in opts]
    try:
        (results,) = rt.sender.simulate_in_order([calls], behind.call() if behind else None)
    except SimulationFailed as exc:
        results = [exc] * len(calls)
    for job, o, r in zip(chosen, opts, results, strict=True):
        if isinstance(r, SimulationFailed):
            job.sim = None
            job.outcome = Outcome("skipped", f"{REVERTED_IN_SIMULATION}{r} (after the group's earlier calls)"[:200], job.info)
            continue
        job.sim = r
        if o.route == FLASH:
            requote(rt, job, o, r, gas_price, native_price)
            job.plan, job.data = o.plan, o.data


def contest_all(rt: Runtime, jobs: list[Job], sim: Simulation) -> None:
    """One round trip for the contested plans: still fine against the latest block with a rival pending
    means we can be ordered first; failing there too means the race was lost (to the rival whose
    LiquidationCall was mined, when there is one)."""
    since = min(int(j.record.get("detected_block") or j.snap.block) for j in jobs)  # type: ignore[union-attr]
    contests = read_contests(rt.rpc, rt.market.pool, rt.sender.address, [(j.user, j.to, j.data) for j in jobs], since,
                             contract=rt.liquidator_contract)
    for job, c in zip(jobs, contests, strict=True):
        if c.mined_ok:
            job.sim, job.rival = sim, c.pending
        elif lost_race(c.code) and (c.mined or job.given is None):  # without a rival, a plan may be what is wrong
            job.info["rival_tx"] = c.mined
            job.outcome = Outcome("lost", f"lost race: {c.code}" + (f", liquidated by {c.mined}" if c.mined else ""),
                                  job.info)


def bid_fees(rt: Runtime, job: Job, native_price: int, behind: PendingUpdate | None = None) -> None:
    """The fee bid from the simulated gas and the profit; against a pending rival, a bid that orders us
    first, or the race given up when winning it costs more than the profit share or the fee cap. Behind a
    pending update: its own max fee (a node ordering by fee, then arrival, mines us right after it; a
    higher fee would mine us before it, where we revert)."""
    s, sim, plan = rt.settings, job.sim, job.plan
    assert sim is not None
    assert plan is not None
    gross = plan.gross_profit_base
    net_before_tip = gross - gas_cost_base(sim.estimate, sim.base_fee, native_price)
    share = {"gas": sim.estimate, "profit_base": net_before_tip, "native_price": native_price,
             "min_tip": s.max_priority_fee_wei, "profit_share_bps": s.tip_profit_share_bps}
    job.fees = fee_core.bid(base_fee=sim.base_fee, max_fee_cap=s.max_gas_price_wei, **share)
    if behind is not None:
        job.fees = fee_core.Fees(behind.max_fee, min(behind.tip, behind.max_fee))
        job.note = "; ".join(filter(None, [job.note, f"behind pending {behind.tx_hash}"]))
        if behind.max_fee > s.max_gas_price_wei:
            job.outcome = Outcome("skipped", f"gas price above cap ({behind.max_fee / 1e9:.1f} gwei, the update's)", job.info)
            return
    lost = ""
    if job.rival is not None:
        job.info["rival_tx"] = job.rival.tx_hash
        ahead = fee_core.outbid(job.fees, job.rival.fees, base_fee=sim.base_fee, ceiling_tip=fee_core.tip_ceiling(**share),
                                max_fee_cap=s.max_gas_price_wei)
        rival = (f"pending rival {job.rival.tx_hash} (max fee {job.rival.fees.max_fee / 1e9:.3f} gwei, "
                 f"tip {job.rival.fees.tip / 1e9:.3f} gwei)")
        if ahead is None:
            lost = f"not outbid: {rival} pays more than our profit share or fee cap"
        else:
            job.fees, job.note = ahead, f"outbid {rival}: max fee {ahead.max_fee / 1e9:.3f}, tip {ahead.tip / 1e9:.3f} gwei"
    expected = gross - gas_cost_base(sim.estimate, sim.base_fee + job.fees.tip, native_price)
    job.info |= {"expected_profit_base": expected, "max_fee": job.fees.max_fee, "tip": job.fees.tip}
    if lost:  # what was given up stays on the row: its profit and the fees we would have paid
        job.outcome = Outcome("lost", lost, job.info)
    elif expected < s.min_profit_base:
        job.outcome = Outcome("skipped", "unprofitable", job.info)
    elif s.dry_run:
        job.outcome = Outcome("dry_run", job.note, job.info)


def send_all(rt: Runtime, jobs: list[Job], pending_nonce: int | None, behind: PendingUpdate | None = None,
             reuse_nonce: bool = False, unless: Callable[[], set[str]] | None = None) -> None:
    """`unless()`: users that must not be sent for, asked at the last moment before the bytes leave; if any of
    the batch is among them, nothing is sent (ReceiptAwaited)."""
    s = rt.settings

    def intent(signed: list[tuple[str, int]]) -> None:
        """Before the bytes leave: mark each user and keep what we are about to send, so a worker killed
        right after the send still ends up with exactly one attempt row per transaction (tasks.receipts)."""
        if unless is not None and (busy := unless() & {j.user for j in jobs}):
            raise ReceiptAwaited(f"{len(busy)} of {len(jobs)} users await the receipt of a liquidation of ours")
        pipe = rt.state.r.pipeline(transaction=False)
        now = time.time()
        for job, (tx_hash, nonce) in zip(jobs, signed, strict=True):
            pipe.set(rt.state.key("dedupe", job.user), "sent", px=int(s.liquidation_max_age_secs * 1000))
            pipe.hset(rt.state.key("inflight"), tx_hash, json.dumps(
                {**job.record, **job.info, "tx_hash": tx_hash, "nonce": nonce, "sent_at": now}))
        pipe.execute()
        left.append(time.time())

    left: list[float] = []
    txs = [Tx(j.to, j.data, INJECTED_REVERT_GAS if s.fault_inject_revert else j.sim.gas, j.fees)  # type: ignore[union-attr,arg-type]
           for j in jobs]
    try:
        results: list = rt.sender.send_many(txs, before_send=intent, pending_nonce=pending_nonce, submitter=rt.submitter,
                                            reuse_nonce=reuse_nonce,
                                            ahead=[behind.raw] if behind is not None and behind.raw else [])
    except (RpcError, OSError) as exc:
        results = [exc] * len(jobs)
    sent_at = time.time()
    rt.breaker.attempted(count=len(jobs))  # counted after the bytes left: the window trips later attempts
    for job, result in zip(jobs, results, strict=True):
        if isinstance(result, Sent):
            sent = {"tx_hash": result.tx_hash, "nonce": result.nonce, "sent_at": sent_at}
            job.outcome = Outcome("sent", job.note, job.info | sent, left_at=left[-1] if left else sent_at)
        else:
            rt.state.release(job.user)
            job.outcome = Outcome("failed", f"send failed: {result}"[:200], job.info)
    failures = [j.outcome.reason for j in jobs if j.outcome.outcome == "failed"]  # type: ignore[union-attr]
    if failures:
        rt.breaker.result(False, failures[0])
    if s.fault_pause_after_send_secs:
        time.sleep(s.fault_pause_after_send_secs)


def run_and_record(rt: Runtime, record: dict[str, Any], mark: str, group: list[tuple[str, str]] | None = None,
                   plan: Plan | None = None) -> Outcome:
    """Attempt the liquidation of the task's user (with its `plan`, when the detector made one), and of
    the siblings it can claim (with the plans their detection left in Redis), and store what happened
    to each. Nothing raises out of here: an RPC or Redis failure is recorded as a failed
    attempt and counted by the breaker. Returns the task's own user's outcome ("grouped" when
    another task's group took the user: that task recorded it)."""
    user, lane_ms, s = record["user"], rt.settings.lane_yield_ms, rt.settings
    jobs: list[Job] = []
    try:
        # One attempt per user at a time, across every worker: two tasks for the same user (a
        # detection after the dedupe window, a redelivery) must not both send.
        begin = rt.state.begin_group(user, record.get("task_id") or "1", group or [], EXECUTING_TTL_MS, lane_ms,
                                     int(s.liquidation_max_age_secs * 1000))
        if begin.grouped:
            log.debug("%s user=%s taken by another task's group", mark, user)
            return Outcome("grouped")
        own = Job(user, record, begin.last_config, given=plan)
        if not begin.claimed:
            own.outcome = Outcome("skipped", "another attempt for this user is in progress")
        elif begin.already_sent:
            own.outcome = Outcome("skipped", "already sent, awaiting its receipt")  # a redelivered task
        siblings = [Job(sib, {**record, "user": sib, "task_id": task_id}, cfg, given=plan_of(raw))
                    for sib, task_id, cfg, raw in begin.siblings]
        jobs = [own, *siblings]
        todo = [j for j in jobs if j.outcome is None]  # claimed here: released at the end, whatever happens
        try:
            skip_awaiting_receipts(rt, todo)
            if live := [j for j in todo if j.outcome is None]:
                attempt_group(rt, live, mark)
        finally:
            rt.state.end_attempts([j.user for j in todo], lane_ms, {
                j.user: j.snap.config for j in todo if j.snap is not None and j.snap.config != j.last_config})
    except Exception as exc:
        log.exception("%s attempt for user=%s failed", mark, user)
        with contextlib.suppress(Exception):
            rt.breaker.result(False, f"{type(exc).__name__}: {exc}")
        failed = Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], retryable=isinstance(exc, RpcError))
        jobs = jobs or [Job(user, record, None)]
        for job in jobs:
            if job.outcome is None:
                job.outcome = failed
    record_all(rt, jobs, mark)
    return jobs[0].outcome  # type: ignore[return-value]


def skip_awaiting_receipts(rt: Runtime, jobs: list[Job]) -> None:
    """Redis marks a user whose liquidation is out ("sent" in its dedupe key, for LIQUIDATION_MAX_AGE_SECS),
    but a Redis restart forgets it while the transaction may still wait in the mempool (behind a pending
    update, or in a full block): the attempts table says so too, over the same window (a transaction a reorg
    dropped must not hold its user until the receipt tracker gives up on it)."""
    awaiting = awaiting_receipts(rt, [j.user for j in jobs if j.outcome is None])
    for job in jobs:
        if job.outcome is None and job.user in awaiting:
            job.outcome = Outcome("skipped", "already sent, awaiting its receipt")


def awaiting_receipts(rt: Runtime, users: list[str]) -> set[str]:
    """Those of `users` with a liquidation of ours sent within LIQUIDATION_MAX_AGE_SECS and not mined yet."""
    if not users:
        return set()
    with rt.sessions() as session:
        return awaiting_receipt(session, users, time.time() - rt.settings.liquidation_max_age_secs)


def plan_of(raw: str | None) -> Plan | None:
    try:
        return Plan.from_message(json.loads(raw)) if raw else None
    except ValueError:
        return None


def stages_text(result: Outcome) -> str:
    parts = [f"{k}={v:.1f}" for k, v in result.stages_ms.items()]
    return " ".join(parts + ([f"group={result.group}"] if result.group > 1 else []))


def parked_reason(result: Outcome) -> str:
    if result.outcome == "skipped" and result.reason in PARKED_REASONS:
        return result.reason
    return result.park


def record_all(rt: Runtime, jobs: list[Job], mark: str) -> None:
    """Log and store each user's attempt, then drop the intents the rows now cover."""
    rows = []
    for job in jobs:
        result, record = job.outcome, job.record
        assert result is not None
        fields = {**record, **result.fields, "outcome": result.outcome, "reason": result.reason or None}
        if result.outcome == "sent":
            fields["latency_ms"] = (fields["sent_at"] - record["detected_at"]) * 1000
            log.info("%s liquidation sent user=%s block=%s path=%s detect->send=%.1fms start->send=%.1fms (%s) "
                     "expected profit=%.2f tx=%s", mark, job.user, record["detected_block"], record["path"],
                     fields["latency_ms"], (fields["sent_at"] - record["started_at"]) * 1000,
                     stages_text(result),
                     (fields.get("expected_profit_base") or 0) / 10**8, fields["tx_hash"])
        else:
            log.info("%s %s user=%s block=%s%s", mark, result.outcome, job.user, record["detected_block"],
                     f": {result.reason}" if result.reason else "")
        rows.append(fields)
    with rt.sessions.begin() as session:
        record_attempts(session, rows)
    sent = [f["tx_hash"] for f in rows if f["outcome"] == "sent"]
    if sent:
        rt.state.r.hdel(rt.state.key("inflight"), *sent)
    parked = {j.user: park for j in jobs if (park := parked_reason(j.outcome))}  # type: ignore[arg-type]
    # An account read that reverts may pass (seen once per few Sentinel chaos runs, cause unknown): scans retry it.
    rt.state.park({u: why for u, why in parked.items() if why != UNREADABLE})
    rt.state.park({u: why for u, why in parked.items() if why == UNREADABLE}, retry_after=UNREADABLE_RETRY_SECS)
