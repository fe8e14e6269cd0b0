"""Turn raw logs into what the producer acts on: users whose position moved, assets whose price moved."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Event
from liqbot.chain.market import MarketInfo
from liqbot.domain.users import RESERVE_ARG, affected_users

log = logging.getLogger(__name__)

POOL_EVENTS: tuple[Event, ...] = (
    aave.SUPPLY_EVENT, aave.WITHDRAW_EVENT, aave.BORROW_EVENT, aave.REPAY_EVENT, aave.COLLATERAL_ENABLED_EVENT,
    aave.COLLATERAL_DISABLED_EVENT, aave.EMODE_EVENT, aave.LIQUIDATION_CALL_EVENT,
)
USER_EVENTS = (*POOL_EVENTS, aave.BALANCE_TRANSFER_EVENT)
PRICE_EVENTS = (aave.ANSWER_UPDATED_EVENT, aave.ASSET_SOURCE_UPDATED_EVENT)
BY_TOPIC = {e.topic0: e for e in (*USER_EVENTS, *PRICE_EVENTS)}


def topics(events: tuple[Event, ...]) -> list[list[str]]:
    return [[e.topic0 for e in events]]


@dataclass
class Changes:
    """What a batch of logs changed."""

    users: dict[str, int] = field(default_factory=dict)  # user -> block where the change was seen
    exposure: list[tuple[str, str]] = field(default_factory=list)  # (asset, user)
    prices: dict[str, int] = field(default_factory=dict)  # asset -> block
    sources_changed: bool = False
    skipped: int = 0
    max_block: int = -1


def classify(logs: list[dict], market: MarketInfo, changes: Changes | None = None) -> Changes:
    """Decode logs from the watched contracts; malformed or unknown ones are counted and skipped."""
    ch = changes or Changes()
    for raw in logs:
        try:
            ch.max_block = max(ch.max_block, int(raw["blockNumber"], 16))
            _classify_one(raw, market, ch)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            ch.skipped += 1
            log.warning("skipping a malformed log (%s): %.200s", exc, raw)
    return ch


def _classify_one(raw: dict, market: MarketInfo, ch: Changes) -> None:
    topic_list = raw.get("topics") or []
    if not isinstance(topic_list, list):
        raise TypeError("topics is not a list")
    event = BY_TOPIC.get(topic_list[0].lower()) if topic_list else None
    if event is None:
        return
    block = int(raw["blockNumber"], 16)
    address = to_checksum_address(raw["address"])
    args = event.decode(raw)
    if event is aave.ANSWER_UPDATED_EVENT:
        for asset in market.by_feed.get(address, ()):
            ch.prices[asset] = block
        return
    if event is aave.ASSET_SOURCE_UPDATED_EVENT:
        ch.sources_changed = True
        ch.prices[args["asset"]] = block
        return
    if event is aave.BALANCE_TRANSFER_EVENT and address not in market.by_a_token:
        return
    if event in POOL_EVENTS and address != market.pool:
        return
    users = affected_users(event.name, args)
    for user in users:
        ch.users.setdefault(user, block)
    asset = args.get(RESERVE_ARG.get(event.name, ""), None) or market.by_a_token.get(address)
    if event is aave.LIQUIDATION_CALL_EVENT:
        ch.exposure += [(args["collateralAsset"], u) for u in users] + [(args["debtAsset"], u) for u in users]
    elif asset:
        ch.exposure += [(asset, u) for u in users]
