"""One block's logs -> what the mirror must change and what it must re-read at that block (pure).

Decoded without a read: ReserveDataUpdated (rates and indexes as stored; updateState ran in that
transaction, so the reserve's last update is the block's timestamp) and a direct feed's AnswerUpdated.
One state change has no event: a liquidation taking aTokens updates the collateral reserve's indexes
(v3.3+) without ReserveDataUpdated; that reserve's data is read with the user.
Re-read, pinned to the block, in one batch: the users a Pool event or an aToken transfer names (their
configuration, e-mode and the scaled balances of the reserves they use or the events name), the reserves
a configurator event names, the e-mode categories one changes, and the prices a source swap, a fallback
change or an adapter's feed moves. Re-reads give the state at the end of the block, so only decoded
items need the block's order (the last one of each wins).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Event
from liqbot.domain.units import ZERO_ADDRESS

log = logging.getLogger(__name__)

# Pool events that move one user's position: (event, the args naming users, the args naming reserves)
USER_EVENTS: tuple[tuple[Event, tuple[str, ...], tuple[str, ...]], ...] = (
    (aave.SUPPLY_EVENT, ("onBehalfOf",), ("reserve",)),
    (aave.WITHDRAW_EVENT, ("user",), ("reserve",)),
    (aave.BORROW_EVENT, ("onBehalfOf",), ("reserve",)),
    (aave.REPAY_EVENT, ("user",), ("reserve",)),
    (aave.LIQUIDATION_CALL_EVENT, ("user",), ("collateralAsset", "debtAsset")),
    (aave.COLLATERAL_ENABLED_EVENT, ("user",), ("reserve",)),
    (aave.COLLATERAL_DISABLED_EVENT, ("user",), ("reserve",)),
    (aave.EMODE_EVENT, ("user",), ()),
    (aave.SWAP_BORROW_RATE_MODE_EVENT, ("user",), ("reserve",)),
    (aave.REBALANCE_STABLE_BORROW_RATE_EVENT, ("user",), ("reserve",)),
    (aave.MINT_UNBACKED_EVENT, ("onBehalfOf",), ("reserve",)),
)
_USER = {e.topic0: (e, users, reserves) for e, users, reserves in USER_EVENTS}

# Configurator events naming an asset whose configuration word (or existence) they change. Only some
# bits move account data or a liquidation (thresholds, LTV, bonus, fee, active, paused, the v3.0 e-mode
# byte); re-reading on the rest too keeps the mirror's word the Pool's, at the price of a rare read.
RESERVE_EVENTS: tuple[Event, ...] = (
    aave.RESERVE_INITIALIZED_EVENT, aave.RESERVE_DROPPED_EVENT, aave.COLLATERAL_CONFIGURATION_CHANGED_EVENT,
    aave.PENDING_LTV_CHANGED_EVENT, aave.RESERVE_ACTIVE_EVENT, aave.RESERVE_FROZEN_EVENT, aave.RESERVE_PAUSED_EVENT,
    aave.LIQUIDATION_PROTOCOL_FEE_CHANGED_EVENT, aave.EMODE_ASSET_CATEGORY_CHANGED_EVENT, aave.RESERVE_BORROWING_EVENT,
    aave.RESERVE_FLASH_LOANING_EVENT, aave.RESERVE_STABLE_RATE_BORROWING_EVENT, aave.RESERVE_FACTOR_CHANGED_EVENT,
    aave.BORROW_CAP_CHANGED_EVENT, aave.SUPPLY_CAP_CHANGED_EVENT, aave.DEBT_CEILING_CHANGED_EVENT,
    aave.SILOED_BORROWING_CHANGED_EVENT, aave.UNBACKED_MINT_CAP_CHANGED_EVENT, aave.BORROWABLE_IN_ISOLATION_CHANGED_EVENT,
)
_RESERVE = {e.topic0: e for e in RESERVE_EVENTS}
# Configurator events changing an e-mode category: the category is topic 1 or a data field.
CATEGORY_EVENTS: tuple[Event, ...] = (
    aave.EMODE_CATEGORY_ADDED_EVENT, aave.ASSET_COLLATERAL_IN_EMODE_CHANGED_EVENT, aave.ASSET_LTVZERO_IN_EMODE_CHANGED_EVENT,
)
_CATEGORY = {e.topic0: e for e in CATEGORY_EVENTS}

TOPICS: tuple[str, ...] = tuple(sorted({
    *_USER, *_RESERVE, *_CATEGORY, aave.RESERVE_DATA_UPDATED_EVENT.topic0, aave.BALANCE_TRANSFER_EVENT.topic0,
    aave.ANSWER_UPDATED_EVENT.topic0, aave.ASSET_SOURCE_UPDATED_EVENT.topic0, aave.FALLBACK_ORACLE_UPDATED_EVENT.topic0,
}))


@dataclass
class BlockPlan:
    block: int
    rates: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # asset -> liquidity rate, variable
    #   rate, liquidity index, variable index: the block's last ReserveDataUpdated
    answers: dict[str, int] = field(default_factory=dict)  # feed -> its last answer in the block
    sources: dict[str, str] = field(default_factory=dict)  # asset -> its new source
    users: dict[str, set[str]] = field(default_factory=dict)  # user -> the reserves its events named
    reserves: set[str] = field(default_factory=set)  # configuration to re-read
    indexes: set[str] = field(default_factory=set)  # reserve data to re-read: indexes moved with no event
    categories: set[int] = field(default_factory=set)  # e-mode categories a configurator event changed
    entered: set[int] = field(default_factory=set)  # e-mode categories users entered (read if unknown)
    fallback: bool = False  # the oracle's fallback changed
    skipped: int = 0  # malformed logs


def _order(raw: Mapping) -> int:
    return int(raw.get("logIndex") or "0x0", 16)


def plan_block(logs: Sequence[Mapping], block: int, *, pool: str, configurator: str, oracle: str,
               a_tokens: Mapping[str, str], feeds: Collection[str]) -> BlockPlan:
    """Sort one block's logs into a plan; logs of other contracts or events are ignored, malformed ones
    counted and skipped (a node can send garbage; the mirror must not die of it)."""
    plan = BlockPlan(block)
    for raw in sorted(logs, key=_order):
        try:
            if int(raw["blockNumber"], 16) != block:
                raise ValueError(f"log of block {int(raw['blockNumber'], 16)} in block {block}")
            _plan_one(raw, plan, pool, configurator, oracle, a_tokens, feeds)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            plan.skipped += 1
            log.warning("mirror: skipping a malformed log (%s): %.200s", exc, raw)
    return plan


def _plan_one(raw: Mapping, plan: BlockPlan, pool: str, configurator: str, oracle: str, a_tokens: Mapping[str, str],
              feeds: Collection[str]) -> None:
    topics = raw.get("topics") or []
    if not topics:
        return
    topic0, address = topics[0].lower(), to_checksum_address(raw["address"])
    if address == pool:
        if topic0 == aave.RESERVE_DATA_UPDATED_EVENT.topic0:
            a = aave.RESERVE_DATA_UPDATED_EVENT.decode(dict(raw))
            plan.rates[a["reserve"]] = (a["liquidityRate"], a["variableBorrowRate"], a["liquidityIndex"],
                                        a["variableBorrowIndex"])
        elif topic0 in _USER:
            event, user_args, reserve_args = _USER[topic0]
            a = event.decode(dict(raw))
            for name in user_args:
                if a[name] != ZERO_ADDRESS:
                    plan.users.setdefault(a[name], set()).update(a[r] for r in reserve_args)
            if event is aave.EMODE_EVENT and a["categoryId"]:
                plan.entered.add(a["categoryId"])
            if event is aave.LIQUIDATION_CALL_EVENT and a["receiveAToken"]:
                # v3.3+ update the collateral reserve's state but, its liquidity untouched, emit no
                # ReserveDataUpdated for it: its indexes and timestamp are read at the block's end.
                plan.indexes.add(a["collateralAsset"])
    elif address in a_tokens and topic0 == aave.BALANCE_TRANSFER_EVENT.topic0:
        a = aave.BALANCE_TRANSFER_EVENT.decode(dict(raw))
        for name in ("from", "to"):
            if a[name] != ZERO_ADDRESS:
                plan.users.setdefault(a[name], set()).add(a_tokens[address])
    elif address in feeds and topic0 == aave.ANSWER_UPDATED_EVENT.topic0:
        plan.answers[address] = aave.ANSWER_UPDATED_EVENT.decode(dict(raw))["current"]
    elif address == oracle and topic0 == aave.ASSET_SOURCE_UPDATED_EVENT.topic0:
        a = aave.ASSET_SOURCE_UPDATED_EVENT.decode(dict(raw))
        plan.sources[a["asset"]] = a["source"]
    elif address == oracle and topic0 == aave.FALLBACK_ORACLE_UPDATED_EVENT.topic0:
        aave.FALLBACK_ORACLE_UPDATED_EVENT.decode(dict(raw))
        plan.fallback = True
    elif address == configurator and topic0 in _RESERVE:
        plan.reserves.add(_RESERVE[topic0].decode(dict(raw))["asset"])
    elif address == configurator and topic0 in _CATEGORY:
        plan.categories.add(_CATEGORY[topic0].decode(dict(raw))["categoryId"])
