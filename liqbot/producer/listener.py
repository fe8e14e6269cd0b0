"""The producer process: one WebSocket connection, a backfill from the durable cursor, then live.

The event loop only reads the socket; decoding, health checks and publishing run on worker
threads so a slow RPC batch never stalls the stream. The fast path (health check at once, route
to the priority lane) runs before bookkeeping is published, and bookkeeping has a thread of its own.
Every user an event or a price move touches is unparked (see State.park): with its dedupe lock when
the fast path routes it, else before its bookkeeping is published. A parked user is thus attempted
once more after each change, never on a mere scan; a price move leaves a user with no collateral
parked, as no price can make it seizable.

Faults: a dropped connection is retried with backoff and jitter, and the gap is backfilled from the
cursor (stored in the database, not in Redis). What cannot be published while Redis is down waits in
a bounded buffer that drains when Redis is back. Only the holder of the producer lease works; a
standby takes over within the lease's TTL when the active producer dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor

import websockets

from liqbot.chain import aave
from liqbot.chain.market import MarketInfo
from liqbot.chain.pending import prices_after
from liqbot.chain.reader import account_data
from liqbot.chain.rpc import Rpc
from liqbot.chain.submit import BadTransaction, raw_transaction
from liqbot.domain.account import NotModelled, UnsupportedRevision
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import gas_cost_base
from liqbot.domain.plan import PendingUpdate, Plan, make_plan
from liqbot.errors import LiqbotError, RpcError
from liqbot.logs import FAST
from liqbot.mirror import Applied, LiveMirror, Mirror
from liqbot.mirror.audit import Audit, audit, snapshot
from liqbot.mirror.events import TOPICS as MIRROR_TOPICS
from liqbot.producer.events import PRICE_EVENTS, USER_EVENTS, classify, topics
from liqbot.runtime import Runtime
from liqbot.store.lease import Lease
from liqbot.store.positions import exposure, get_cursor, health_factors, set_cursor
from liqbot.tasks.routing import Detection, route_liquidation, route_liquidations

log = logging.getLogger(__name__)
CURSOR = "producer"
FLAG = "ws_fast_path"
BUFFER_MAX = 100_000
LEASE_TTL_SECS = 5.0
REORG_DEPTH = 64
DRIFT_LOGGED = 20  # drifting users logged per audit, each with both values
STREAM_ERRORS = (websockets.ConnectionClosed, websockets.InvalidHandshake, OSError, RpcError, asyncio.TimeoutError)


def risk_batches(users: list[str], size: int) -> Iterator[list[str]]:
    """A small first batch (answered fastest), then growing ones up to `size`."""
    start, step = 0, min(50, size)
    while start < len(users):
        yield users[start : start + step]
        start += step
        step = min(size, step * 4)


MIRROR_RETRY_SECS = 5.0  # a load reads every user: while the node fails it, heads keep flowing on chain reads


class LostLease(Exception):
    """Another producer holds the lease now: stop working, go back to standby."""


class Producer:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.s = rt.settings
        self.market: MarketInfo = rt.market
        self.index: dict[str, set[str]] = {}
        self.known: set[str] = set()
        self.fast_path = self.s.ws_fast_path
        self.cursor = 0
        self._cursor_saved = 0.0
        self._rpc_local = threading.local()
        self._checks = ThreadPoolExecutor(2, thread_name_prefix="fast")
        self._books = ThreadPoolExecutor(1, thread_name_prefix="books")
        self.resubscribe = False
        self._subs: dict[str, str] = {}
        self._pending_sub: int | None = None
        self._unsubscribe: list[str] = []
        # user -> (block, detected_at, liquidatable?) waiting for Redis
        self.buffer: OrderedDict[str, tuple[int, float, bool]] = OrderedDict()
        self._buffer_lock = threading.Lock()
        self.lease = Lease(rt.state.r, rt.state.key("producer", "leader"), LEASE_TTL_SECS)
        self.reconnects = 0
        self.recent: OrderedDict[int, str] = OrderedDict()  # block number -> hash, for reorg detection
        self.last_hf: dict[str, int] = {}  # user -> last health factor seen (wad), to check the riskiest first
        self.mirror: LiveMirror | None = None  # every followed user's position in memory
        self.use_mirror = rt.settings.mirror_detection
        self._mirror_tried = 0.0  # a failing load is retried on a later head, not on every one
        self.configurator = ""  # its logs move reserve configurations the mirror follows
        self.base_fee = 0  # of the last head, for the gas a plan will cost
        self._audits = ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._seen_pending: OrderedDict[str, None] = OrderedDict()  # pending tx hashes already looked at
        self._audit: Future | None = None
        self._audit_due = 0.0
        self._took = (0.0, 0.0)
        self.sends = False  # PRODUCER_SENDS with a key: trusted plans are sent from here (see `prepare_sends`)

    # --- state ---------------------------------------------------------------------------------------
    def rpc(self) -> Rpc:
        rpc = getattr(self._rpc_local, "rpc", None)
        if rpc is None:
            rpc = self._rpc_local.rpc = Rpc(self.s.rpc_url, timeout=self.s.rpc_timeout_secs)
        return rpc

    def load(self) -> None:
        with self.rt.sessions() as session:
            self.index = exposure(session)
            self.last_hf = health_factors(session)
            self.known = set(self.last_hf)
            stored = get_cursor(session, CURSOR)
        self.cursor = stored if stored is not None else max(self.s.start_block - 1, -1)
        if self.use_mirror:
            self.configurator = aave.GET_POOL_CONFIGURATOR.decode(self.rpc().eth_call(
                self.market.provider, aave.GET_POOL_CONFIGURATOR.calldata()))
        latest = self.rpc().call("eth_getBlockByNumber", "latest", False)  # plans bid on it until the first head
        self.base_fee = int(latest.get("baseFeePerGas") or "0x0", 16)
        try:
            flag = self.rt.state.get_flag(FLAG)
            if flag is not None:
                self.fast_path = flag
        except Exception as exc:
            log.warning("cannot read the fast-path flag from Redis (%s); using WS_FAST_PATH", exc)
        log.info("producer: %d known users, cursor at block %d, fast path %s", len(self.known), self.cursor,
                 "on" if self.fast_path else "off")
        self.prepare_sends()

    def prepare_sends(self) -> None:
        """PRODUCER_SENDS: learn what the lane knows before it trusts a plan (approvals, our balances, the
        market's blockers) and follow it as a worker does; without a key, or in a dry run, workers send."""
        from liqbot.config import LIQUIDATOR_KEY

        s = self.s
        if not (s.producer_sends and s.trust_mirror_plans and self.use_mirror) or s.dry_run:
            return
        if not s.is_set(LIQUIDATOR_KEY):
            log.info("PRODUCER_SENDS: no liquidator key here, so the priority workers send every liquidation")
            return
        self.sends = True
        try:
            self.rt.warm()
            self.rt.inventory.follow()
            log.info("PRODUCER_SENDS: trusted plans are sent from here by %s; the lane records them", self.rt.sender.address)
        except Exception as exc:  # the lane sends meanwhile; the inventory thread keeps trying
            log.warning("PRODUCER_SENDS: not ready (%s): the priority workers send until it is", exc)

    def save_cursor(self, block: int, force: bool = False) -> None:
        if block <= self.cursor and not force:
            return
        self.cursor = max(self.cursor, block)
        if force or time.monotonic() - self._cursor_saved > 1.0:
            with self.rt.sessions.begin() as session:
                set_cursor(session, CURSOR, self.cursor)
            self._cursor_saved = time.monotonic()

    def report(self, state: str, **extra: object) -> None:
        """Connection state for `liqbot status` (best effort: Redis may be the thing that is down)."""
        with contextlib.suppress(Exception):
            self.rt.state.r.hset(self.rt.state.key("producer", "status"), mapping={
                "state": state, "since": f"{time.time():.3f}", "owner": self.lease.owner, "cursor": str(self.cursor),
                "reconnects": str(self.reconnects), "buffered": str(len(self.buffer)),
                "fast_path": "1" if self.fast_path else "0", **{k: str(v) for k, v in extra.items()}})

    # --- acting on changes ---------------------------------------------------------------------------
    def handle(self, logs: list[dict], detected_at: float, live: bool = True) -> None:
        """The fast check first, then bookkeeping, then (for a price source swap) the market re-read:
        a swap moves one asset's price, which the health reads already see through the oracle, so the
        exposed users must not wait for the rest of the market to be rediscovered."""
        removed = [lg for lg in logs if lg.get("removed")]
        if removed:
            self._reorged(removed)
            logs = [lg for lg in logs if not lg.get("removed")]
            self.mirror = None  # it cannot step back: loaded again at the next head
        t_in = time.time()
        applied = self._advance_mirror(logs) if live else None
        self._took = (t_in - detected_at, time.time() - t_in)  # for the ⚡ line: waited for this thread, applied
        ch = classify(logs, self.market)
        for asset, user in ch.exposure:
            self.index.setdefault(asset, set()).add(user)
        users = dict(ch.users)
        for asset, block in ch.prices.items():
            for user in self.index.get(asset, ()):
                users.setdefault(user, block)
        settled: set[str] = set()
        if live and self.fast_path and applied is not None:
            settled = self.mirror_check(applied, users, detected_at, priced_only=users.keys() - ch.users.keys())
        elif live and self.fast_path and users:
            settled = self.fast_check(users, detected_at, priced_only=users.keys() - ch.users.keys())
        if users:  # the settled users' parking is decided: unparking them now could undo a new park
            self._books.submit(self._publish_updates, users, detected_at, [u for u in users if u not in settled])
        if ch.sources_changed and live:  # the initial backfill's history is already in the discovered market
            self.market = self.rt.refresh_market()
            self.resubscribe = True  # the new feed's AnswerUpdated must reach us too

    def on_head(self, head: dict) -> None:
        """Advance the cursor, and catch reorgs the node does not announce with removed logs (anvil's
        `anvil_reorg` replaces blocks silently): a head whose parent is not the block we saw."""
        number, block_hash, parent = int(head["number"], 16), head.get("hash"), head.get("parentHash")
        self.base_fee = int(head.get("baseFeePerGas") or "0x0", 16)
        known_parent = self.recent.get(number - 1)
        if (known_parent and parent and parent != known_parent) or (number in self.recent and self.recent[number] != block_hash):
            self._chain_reorged(number)
        self.recent[number] = block_hash or ""
        while len(self.recent) > REORG_DEPTH:
            self.recent.popitem(last=False)
        self.save_cursor(number - 1)
        if self.use_mirror and self.mirror is None and self.cursor >= 0 and \
                time.monotonic() - self._mirror_tried > MIRROR_RETRY_SECS:
            self.load_mirror(number)
        self._maybe_audit()

    def _chain_reorged(self, number: int) -> None:
        fork = number - 1
        for n in sorted(self.recent, reverse=True):  # walk back to the last block both chains share
            if n >= number:
                continue
            block = self.rpc().call("eth_getBlockByNumber", hex(n), False)
            if block and block.get("hash") == self.recent[n]:
                fork = n
                break
            fork = n - 1
        for n in [n for n in self.recent if n > fork]:
            del self.recent[n]
        log.warning("reorg detected at block %d: blocks after %d were replaced; re-reading them", number, fork)
        self.mirror = None  # it applied blocks that left the chain and cannot step back: loaded again
        self.cursor = min(self.cursor, fork)
        self.save_cursor(self.cursor, force=True)
        self._after_reorg([], fork + 1)
        self.backfill(number - 1, live=True)

    def _after_reorg(self, tx_hashes: list[str], from_block: int | None) -> None:
        from liqbot.tasks.receipts import reorged
        from liqbot.tasks.scan import full_rescan

        try:
            reorged.apply_async((tx_hashes, from_block), queue="default", routing_key="default")
            full_rescan.apply_async(queue="default", routing_key="default")
        except Exception as exc:  # the receipt sweep and the next rescan catch up anyway
            log.warning("could not publish the reorg tasks: %s", exc)

    def _reorged(self, removed: list[dict]) -> None:
        """Logs of blocks that left the chain: re-read those users, and let receipts be checked again."""
        ch = classify(removed, self.market)
        tx_hashes = sorted({lg.get("transactionHash") for lg in removed if lg.get("transactionHash")})
        log.warning("reorg: %d logs removed (blocks %s), %d users to re-read", len(removed),
                    sorted({int(lg.get("blockNumber", "0x0"), 16) for lg in removed}), len(ch.users))
        from liqbot.tasks.receipts import reorged

        try:
            reorged.apply_async((tx_hashes,), queue="default", routing_key="default")
        except Exception as exc:
            log.warning("could not publish the reorg task: %s", exc)
        if ch.users:
            self._books.submit(self._publish_updates, dict(ch.users), time.time(), list(ch.users))

    # --- the mirror ----------------------------------------------------------------------------------
    def load_mirror(self, block: int) -> None:
        """Every known user's position in memory, read pinned to `block`; later blocks arrive as logs. A
        market the mirror cannot model runs on chain reads, said once here."""
        t0 = self._mirror_tried = time.monotonic()
        try:
            self.mirror = LiveMirror.load(self.rpc(), self.market.pool, self.known, block=block)
        except (UnsupportedRevision, NotModelled) as exc:
            log.warning("the mirror cannot model this market (%s): the fast path reads the chain instead", exc)
            self.use_mirror = False
            return
        except (LiqbotError, OSError) as exc:
            log.warning("loading the mirror failed (%s): the fast path reads the chain until the next head", exc)
            return
        if set(self.mirror.log_filter()["address"]) - set(self._log_filter()["address"]):
            self.resubscribe = True
        log.info("mirror loaded at block %d: %d users in %.2f s (Pool revision %d)", block, len(self.mirror.mirror.users),
                 time.monotonic() - t0, self.mirror.mirror.revision)
        self._audit_due = time.monotonic() + self.s.full_rescan_interval_secs
        gc.collect()
        gc.freeze()  # the collector never walks the loaded users again (a full pass over 100k costs ~100 ms)
        self._warm_detection()

    def _warm_detection(self) -> None:
        """Pay now what the first price move would: the screen's first pass over every row (numpy's first
        calls, the stable-debt arrays) and the planner's import (~20 ms together, measured in the race)."""
        from liqbot.execution import rules_for

        assert self.mirror is not None
        self.mirror.candidates()
        rules_for(self.rt)

    def _maybe_audit(self) -> None:
        """At the full rescan's interval, compare the mirror with the chain in the background: a snapshot of
        it at this block (later events do not touch it) against `getUserAccountData` pinned to that block."""
        if self.mirror is None or time.monotonic() < self._audit_due or (self._audit and not self._audit.done()):
            return
        self._audit_due = time.monotonic() + self.s.full_rescan_interval_secs
        self._audit = self._audits.submit(self.audit_mirror, snapshot(self.mirror.mirror), set(self.mirror.unmodelled))

    def audit_mirror(self, snap: Mirror, unmodelled: AbstractSet[str] = frozenset()) -> Audit:
        """Count the users whose (collateral, debt, threshold, HF) the mirror gets wrong, log each with both
        values, and leave the figures for `liqbot status` and the metrics."""
        result = audit(snap, self.rpc(), skip=unmodelled, batch_size=self.s.scan_batch_size)
        for d in result.drift[:DRIFT_LOGGED]:
            log.warning("mirror drift at block %d: user %s: %s", result.block, d.user, d.describe())
        if len(result.drift) > DRIFT_LOGGED:
            log.warning("mirror drift at block %d: %d more users", result.block, len(result.drift) - DRIFT_LOGGED)
        log.log(logging.WARNING if result.drift else logging.INFO,
                "mirror audit at block %d: %d users compared with the chain in %.2f s, drift %d (%d not compared)",
                result.block, result.compared, result.secs, len(result.drift), result.skipped)
        try:
            self.rt.state.record_audit(result.summary())
        except Exception as exc:
            log.warning("cannot record the mirror audit in Redis: %s", exc)
        return result

    def _advance_mirror(self, logs: list[dict]) -> list[Applied] | None:
        """The mirror moved by these logs (blocks after its own); None when there is no mirror, or applying
        failed (it is dropped and loaded again at the next head: never a half-applied mirror)."""
        if self.mirror is None:
            return None
        try:
            applied = self.mirror.apply(logs)
        except Exception as exc:
            log.warning("the mirror could not apply %d logs (%s): loading it again at the next head", len(logs), exc)
            self.mirror = None
            return None
        if any(a.filter_changed for a in applied):
            self.resubscribe = True
        return applied

    def mirror_check(self, applied: list[Applied], users: dict[str, int], detected_at: float,
                     priced_only: AbstractSet[str]) -> set[str]:
        """Health from memory, no node call: each applied block's touched users exactly, and every holder
        of an asset it moved screened; each liquidatable user routed with its plan. Users the mirror
        cannot model are read from the chain as before. Returns the users whose parking this settled."""
        mirror = self.mirror
        assert mirror is not None
        t0 = time.time()
        found: dict[str, tuple[AccountData, Applied]] = {}
        for a in applied:
            for acc in mirror.liquidatable(a):
                found[acc.user] = (acc, a)
        t1 = time.time()
        hopeless = {u for u, (acc, _) in found.items() if acc.collateral_base == 0 and u in priced_only}
        dets = [Detection(u, a.block, detected_at, "fast", self._plan(acc, a.block, a.timestamp)) for u, (acc, a) in found.items()
                if u not in hopeless]
        if dets:
            t2 = time.time()
            self._route_detections(dets)
            log.info("%s fast path (mirror): %d users liquidatable at block %d, routed in %.1f ms (waited %.1f, applied %.1f, "
                     "screen %.1f, plans %.1f, routing %.1f)", FAST, len(dets), applied[-1].block, (time.time() - t0) * 1000,
                     self._took[0] * 1000, self._took[1] * 1000, (t1 - t0) * 1000, (t2 - t1) * 1000, (time.time() - t2) * 1000)
        for det in dets:
            self.last_hf[det.user] = found[det.user][0].health_factor
        settled = {d.user for d in dets} | hopeless
        unmodelled = {u: b for u, b in users.items() if u in mirror.unmodelled}
        if unmodelled:
            settled |= self.fast_check(unmodelled, detected_at, priced_only)
        return settled

    def _plan(self, acc: AccountData, block: int, timestamp: int, after: PendingUpdate | None = None) -> Plan | None:
        from liqbot.execution import rules_for

        mirror, native = self.mirror, self.rt.native_asset
        assert mirror is not None
        try:
            positions = mirror.positions(acc.user, timestamp)
            native_price = mirror.price(native) if native else 0
        except (NotModelled, KeyError):
            return None
        gas = gas_cost_base(self.s.liquidation_gas_estimate, self.base_fee + self.s.max_priority_fee_wei, native_price)
        return make_plan(positions, acc, rules=rules_for(self.rt), native_price=native_price, gas_cost_base=gas,
                         min_profit_base=self.s.min_profit_base, block=block, after=after, base_fee=self.base_fee)

    # --- pending price updates (MEMPOOL_BACKRUN) --------------------------------------------------------
    def price_setters(self) -> set[str]:
        """Where a transaction changes a price the market reads: a feed behind an AaveOracle source, the
        AaveOracle itself (a source swap), and what the operator adds (BACKRUN_WATCH)."""
        return {a.lower() for a in (*self.market.by_feed, self.market.oracle, *self.s.backrun_watch_list)}

    def on_pending(self, txs: list[dict], seen_at: float) -> None:
        """Pending transactions (full objects): for each that would move a price, the prices it will set (one
        eth_simulateV1, no decoding per feed type), the mirror screened at them and every user they make
        liquidatable routed with a plan and the update attached, to land right behind it."""
        if self.mirror is None or not self.fast_path:
            return
        setters = self.price_setters()
        for tx in txs:
            if (tx.get("to") or "").lower() not in setters or tx.get("hash") in self._seen_pending:
                continue
            self._seen_pending[tx["hash"]] = None
            while len(self._seen_pending) > 4096:
                self._seen_pending.popitem(last=False)
            update = PendingUpdate.from_tx(tx, self._raw_of(tx))
            if update is not None:
                self._backrun(update, seen_at)

    def _raw_of(self, tx: dict) -> str:
        """The update's signed bytes, which a bundle carries ahead of ours (SUBMIT_ROUTE=bundle); "" otherwise."""
        if self.s.submit_route != "bundle":
            return ""
        try:
            return raw_transaction(tx)
        except BadTransaction as exc:
            log.info("pending %s: its raw bytes cannot be rebuilt (%s); a bundle cannot carry it", tx.get("hash"), exc)
            return ""

    def _backrun(self, update: PendingUpdate, seen_at: float) -> None:
        t0 = time.time()
        lm = self.mirror
        assert lm is not None
        assets = lm.mirror.priced_assets()
        try:
            prices = prices_after(self.rpc(), update, lm.mirror.oracle, assets)
        except (RpcError, OSError, ValueError) as exc:
            log.info("pending %s: prices not learned (%s)", update.tx_hash, exc)
            return
        if prices is None:
            return
        block, ts = lm.block, max(lm.timestamp + 1, int(time.time()))
        with lm.prices_at(prices) as moved:
            if not moved:
                return
            found = lm.screen(moved, ts)
            dets = [Detection(acc.user, block, seen_at, "backrun", plan) for acc in found
                    if (plan := self._plan(acc, block, ts, after=update)) is not None]
        if dets:
            self._route_detections(dets)
        log.info("%s backrun: pending %s moves %d price(s); %d users liquidatable behind it, routed in %.1f ms",
                 FAST, update.tx_hash, len(moved), len(dets), (time.time() - t0) * 1000)

    def fast_check(self, users: dict[str, int], detected_at: float, priced_only: AbstractSet[str] = frozenset()) -> set[str]:
        """Health of every affected user in batched calls, riskiest first (by the last health factor we
        saw), each batch's liquidatable users routed before the next batch is read: with thousands of
        users exposed to a price, the ones about to be liquidated do not wait for the safe ones.

        A user touched only by a price move (`priced_only`) that has no collateral left (bad debt) is
        not routed: no price makes it seizable, so a parked one stays parked. Returns the users whose
        parking this check settled: the routed ones (unparked with their locks) and the bad-debt ones."""
        t0 = time.time()
        ordered = sorted(users, key=lambda u: self.last_hf.get(u, -1))  # unknown users first, then by risk
        hits, hopeless = self._check(risk_batches(ordered, self.s.scan_batch_size), users, detected_at, priced_only)
        if hits:
            log.info("%s fast path: %d/%d users liquidatable, checked in %.1f ms", FAST, len(hits), len(users),
                     (time.time() - t0) * 1000)
        return hits | hopeless

    def learn_risk(self) -> None:
        """Read the health of every known user whose risk we do not know yet (a fresh database, new
        borrowers), so that the first price move already checks the riskiest users first."""
        unknown = [u for u in self.known if u not in self.last_hf]
        size = self.s.scan_batch_size
        t0 = time.monotonic()
        try:
            for start in range(0, len(unknown), size):
                self.rt.state.yield_to_lane(self.s.lane_yield_max_ms / 1000)
                for acc in account_data(self.rpc(), self.market.pool, unknown[start : start + size], size).values():
                    self.last_hf.setdefault(acc.user, acc.health_factor if acc.has_debt else 2**255)
        except Exception as exc:  # only an ordering hint: the fast path checks every exposed user anyway
            log.warning("learning users' risk stopped: %s", exc)
            return
        if unknown:
            log.info("risk of %d users learnt in %.1f s", len(unknown), time.monotonic() - t0)

    def _check(self, batches: Iterable[list[str]], users: dict[str, int], detected_at: float,
               priced_only: AbstractSet[str]) -> tuple[set[str], set[str]]:
        """Read each batch's health and route its liquidatable users (together) before reading the next.
        One batch at a time: reading them side by side loads the node the lane is about to need.
        Returns (users routed, bad-debt users a price move cannot help)."""
        hits: set[str] = set()
        hopeless: set[str] = set()
        for chunk in batches:
            found = []
            for acc in account_data(self.rpc(), self.market.pool, chunk, self.s.scan_batch_size).values():
                self.last_hf[acc.user] = acc.health_factor if acc.has_debt else 2**255
                if acc.liquidatable and acc.collateral_base == 0 and acc.user in priced_only:
                    hopeless.add(acc.user)
                elif acc.liquidatable:
                    found.append(acc.user)
            if found:
                hits.update(found)
                self._route({u: users[u] for u in found}, detected_at)
        return hits, hopeless

    def _route(self, found: dict[str, int], detected_at: float) -> None:
        self._route_detections([Detection(user, block, detected_at, "fast") for user, block in found.items()])

    def _route_detections(self, dets: list[Detection]) -> None:
        """Route users an event touched: their parking goes with their locks, in the same round trip."""
        try:
            route_liquidations(dets, after_event=True, send=self.sends)
        except Exception as exc:  # Redis or the broker is down: keep them for later (dedupe drops repeats)
            log.warning("%s cannot route %d users now (%s); buffered", FAST, len(dets), exc)
            self._buffer({d.user: d.block for d in dets}, dets[0].detected_at, liquidatable=True)

    def _publish_updates(self, users: dict[str, int], detected_at: float, unpark: list[str]) -> None:
        """Bookkeeping for every affected user, after unparking `unpark` (so that update_position may
        route them); with the fast path on it waits while the lane works (a price move can touch
        thousands of users, and publishing them costs CPU the lane needs then)."""
        from liqbot.tasks.positions import update_position

        if self.fast_path:  # without it, these tasks are how liquidations are found: no waiting then
            with contextlib.suppress(Exception):  # Redis down: publishing below buffers what it cannot send
                self.rt.state.yield_to_lane(self.s.lane_yield_max_ms / 1000)
        try:
            self.rt.state.unpark(unpark)
        except Exception as exc:  # draining the buffer unparks them
            log.warning("unparking failed (%s); buffering %d users", exc, len(users))
            self._buffer(users, detected_at, liquidatable=False)
            return
        pending = list(users.items())
        for i, (user, block) in enumerate(pending):
            try:
                update_position.apply_async((user, block, detected_at), queue="default", routing_key="default")
            except Exception as exc:
                log.warning("publishing update_position failed (%s); buffering %d users", exc, len(pending) - i)
                self._buffer(dict(pending[i:]), detected_at, liquidatable=False)
                return
            self.known.add(user)

    def _buffer(self, users: dict[str, int], detected_at: float, liquidatable: bool) -> None:
        with self._buffer_lock:
            for user, block in users.items():
                prev = self.buffer.pop(user, None)
                self.buffer[user] = (block, detected_at, liquidatable or bool(prev and prev[2]))
            while len(self.buffer) > BUFFER_MAX:  # the full rescan still finds whoever falls out
                self.buffer.popitem(last=False)

    def drain_buffer(self) -> int:
        """Publish what waited for Redis, oldest first, unparking each user first (an event touched it);
        stop at the first failure."""
        from liqbot.tasks.positions import update_position

        done = 0
        while True:
            with self._buffer_lock:
                if not self.buffer:
                    return done
                user, (block, detected_at, liquidatable) = next(iter(self.buffer.items()))
            try:
                if liquidatable:
                    route_liquidation(Detection(user, block, detected_at, "fast"), after_event=True)
                else:
                    self.rt.state.unpark([user])
                update_position.apply_async((user, block, detected_at), queue="default", routing_key="default")
            except Exception:
                return done
            with self._buffer_lock:
                self.buffer.pop(user, None)
            done += 1

    # --- backfill ------------------------------------------------------------------------------------
    def backfill(self, to_block: int, live: bool = False) -> None:
        """Logs from the cursor to `to_block`, in pages. After a reconnect (`live`) the gap's price moves
        and positions go through the fast path as if they had just arrived."""
        start = self.cursor + 1
        if start > to_block:
            return
        # The first backfill needs only who borrows what; a reconnect gap also needs its price moves, and
        # everything the mirror follows when it was kept: it moves through the gap block by block, as live.
        flt = self._log_filter() if live else {"address": [self.market.pool, *self.market.by_a_token],
                                               "topics": topics(USER_EVENTS)}
        total = to_block - start + 1
        t0 = time.monotonic()
        for page_start in range(start, to_block + 1, self.s.log_page_blocks):
            page_end = min(page_start + self.s.log_page_blocks - 1, to_block)
            logs = self.rpc().call("eth_getLogs", {**flt, "fromBlock": hex(page_start), "toBlock": hex(page_end)})
            self.handle(logs, time.time(), live=live)
            if live and self.mirror is not None and self._log_filter() != flt:
                log.info("the gap changed what the mirror follows (blocks %d-%d): loading it anew", page_start, page_end)
                self.mirror = None  # later logs of what it now follows were not asked for in this page
            self.save_cursor(page_end, force=True)
            log.info("backfill: blocks %d-%d (%d/%d), %d logs", page_start, page_end, page_end - start + 1, total, len(logs))
        self._books.submit(lambda: None).result()  # bookkeeping of the backfill published (or buffered)
        log.info("backfill done: %d blocks in %.1f s, %d known users", total, time.monotonic() - t0, len(self.known))

    # --- the loop ------------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checks, self.load)
        helpers = [asyncio.create_task(self._follow_flag()), asyncio.create_task(self._drain_forever())]
        delay = 0.0
        try:
            while True:
                if not await loop.run_in_executor(None, self.lease.hold):
                    self.report("standby", leader=self.lease.holder() or "")
                    await asyncio.sleep(1.0)
                    continue
                try:
                    await self._session()
                except LostLease:
                    log.warning("producer lease lost to %s; standing by", self.lease.holder())
                    continue
                except STREAM_ERRORS as exc:
                    self.reconnects += 1
                    delay = min(30.0, max(0.5, delay * 2)) * (0.5 + random.random())  # backoff with jitter
                    log.warning("producer connection lost (%s: %s); reconnecting in %.1fs (backfill from block %d)",
                                type(exc).__name__, exc, delay, self.cursor + 1)
                    self.report("reconnecting", error=f"{type(exc).__name__}: {exc}"[:200], retry_in=f"{delay:.1f}")
                    await asyncio.sleep(delay)
                    continue
                delay = 0.0
        finally:
            for t in helpers:
                t.cancel()
            self.lease.release()
            self.save_cursor(self.cursor, force=True)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        async with websockets.connect(self.s.ws_url, max_size=64 * 2**20, ping_interval=10, ping_timeout=10,
                                      open_timeout=10) as ws:
            await self._subscribe(ws)
            head = int(await loop.run_in_executor(self._checks, self.rpc().call, "eth_blockNumber"), 16)
            if self.reconnects == 0:
                self.mirror = None
            await loop.run_in_executor(self._checks, self.backfill, head, self.reconnects > 0)
            backfilled_to = head
            if self.use_mirror and self.mirror is None:
                await loop.run_in_executor(self._checks, self.load_mirror, head)
            loop.run_in_executor(self._checks, self.learn_risk)  # beside the stream, not before it
            log.info("producer live on %s (fast path %s)", self.s.ws_url, "on" if self.fast_path else "off")
            self.report("connected", head=head)
            queue: asyncio.Queue = asyncio.Queue()
            worker = asyncio.create_task(self._drain(queue, ws))
            keeper = asyncio.create_task(self._keep_lease(ws))
            try:
                async for frame in ws:
                    now = time.time()
                    for kind, payload in self._parse(frame):
                        if kind == "log" and not payload.get("removed") and \
                                int(payload.get("blockNumber", "0x0"), 16) <= backfilled_to:
                            continue
                        await queue.put((kind, payload, now))
                    if worker.done() or keeper.done():
                        break
            finally:
                worker.cancel()
                keeper.cancel()
            if keeper.done() and not keeper.cancelled() and isinstance(keeper.exception(), LostLease):
                raise LostLease
            raise websockets.ConnectionClosedError(None, None)

    async def _keep_lease(self, ws: websockets.ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(LEASE_TTL_SECS / 5)
            if not await loop.run_in_executor(None, self.lease.hold):
                await ws.close()
                raise LostLease

    async def _subscribe(self, ws: websockets.ClientConnection) -> None:
        """Subscribe before reading anything else, so replies cannot interleave with notifications."""
        self._subs = {}
        self._subs[await self._request(ws, "eth_subscribe", ["logs", self._log_filter()])] = "logs"
        self._subs[await self._request(ws, "eth_subscribe", ["newHeads"])] = "heads"
        if self.s.mempool_backrun:
            self._subs[await self._request(ws, "eth_subscribe", ["newPendingTransactions", True])] = "pending"
        log.info("subscribed to logs of %d contracts and to new heads", len(self.market.watched_addresses))

    def _log_filter(self) -> dict:
        """What the producer reads, and, with the mirror, everything the mirror follows (its Pool
        configurator, the oracle, reserve and e-mode events) from the first block it will apply."""
        addresses, topic0 = set(self.market.watched_addresses), set(topics((*USER_EVENTS, *PRICE_EVENTS))[0])
        if self.use_mirror:
            addresses |= {a for a in (self.configurator, self.market.oracle) if a}
            topic0 |= set(MIRROR_TOPICS)
            if self.mirror is not None:
                addresses |= set(self.mirror.log_filter()["address"])
        return {"address": sorted(addresses), "topics": [sorted(topic0)]}

    async def _request(self, ws: websockets.ClientConnection, method: str, params: list) -> str:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply["result"]

    async def _resubscribe_logs(self, ws: websockets.ClientConnection) -> None:
        """A price source changed: watch the new feed. The reply comes back through the frame stream,
        so it is matched by id there; notifications of the old subscription stay valid until then."""
        self.resubscribe = False
        self._pending_sub = 1_000_000 + len(self._subs)
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": self._pending_sub, "method": "eth_subscribe",
                                  "params": ["logs", self._log_filter()]}))
        log.info("price sources changed: subscribing to %d contracts", len(self.market.watched_addresses))

    def _parse(self, frame: str | bytes) -> Iterable[tuple[str, dict]]:
        """Garbage frames are logged and dropped, never fatal."""
        try:
            msg = json.loads(frame)
            if self._pending_sub is not None and msg.get("id") == self._pending_sub:
                self._pending_sub = None
                if "result" not in msg:
                    log.error("re-subscribing to logs failed: %s", msg.get("error"))
                    return []
                old = [sid for sid, kind in self._subs.items() if kind == "logs"]
                self._subs = {sid: kind for sid, kind in self._subs.items() if kind != "logs"}
                self._subs[msg["result"]] = "logs"
                self._unsubscribe.extend(old)
                return []
            if "params" not in msg and "id" in msg:
                return []  # a reply to an unsubscribe
            params = msg["params"]
            kind = self._subs.get(params["subscription"])
            result = params["result"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring a malformed frame (%s): %.200r", exc, frame)
            return []
        if kind is None or not isinstance(result, dict):
            return []
        return [({"logs": "log", "heads": "head"}.get(kind, kind), result)]

    async def _drain(self, queue: asyncio.Queue, ws: websockets.ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            kind, payload, seen_at = await queue.get()
            batch = [(kind, payload, seen_at)]
            while not queue.empty() and len(batch) < 1000:  # logs of one block arrive together: check them together
                batch.append(queue.get_nowait())
            logs = [p for k, p, _ in batch if k == "log"]
            heads = [p for k, p, _ in batch if k == "head" and "number" in p]
            pending = [p for k, p, _ in batch if k == "pending"]
            try:
                if pending:
                    await loop.run_in_executor(self._checks, self.on_pending, pending, batch[0][2])
                if logs:
                    await loop.run_in_executor(self._checks, self.handle, logs, batch[0][2])
                for head in heads:
                    await loop.run_in_executor(self._checks, self.on_head, head)
                if self.resubscribe:
                    await self._resubscribe_logs(ws)
                while self._unsubscribe:
                    sid = self._unsubscribe.pop()
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_unsubscribe", "params": [sid]}))
            except STREAM_ERRORS:
                raise
            except Exception:
                log.exception("handling %d logs failed", len(logs))

    async def _drain_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            if self.buffer:
                done = await loop.run_in_executor(self._books, self.drain_buffer)
                if done:
                    log.info("published %d buffered users after the outage (%d left)", done, len(self.buffer))

    async def _follow_flag(self) -> None:
        """`liqbot config set ws-fast-path ...` takes effect within a second, no restart."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.5)
            try:
                flag = await loop.run_in_executor(None, self.rt.state.get_flag, FLAG)
            except Exception as exc:
                log.debug("cannot read the fast-path flag: %s", exc)
                continue
            if flag is not None and flag != self.fast_path:
                self.fast_path = flag
                log.info("fast path switched %s", "on" if flag else "off")
                with contextlib.suppress(Exception):  # bookkeeping reads it to know whether to yield
                    self.rt.state.r.hset(self.rt.state.key("producer", "status"), "fast_path", "1" if flag else "0")


def run_producer(rt: Runtime) -> None:
    from liqbot.metrics import serve

    serve(rt.settings.metrics_port)
    producer = Producer(rt)
    try:
        asyncio.run(producer.run())
    except KeyboardInterrupt:
        log.info("producer stopped")
