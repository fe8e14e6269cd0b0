"""Log classification: users, exposure, price moves; malformed logs are skipped, never fatal."""

from __future__ import annotations

from eth_abi import encode

from liqbot.chain import aave
from liqbot.chain.market import MarketInfo, ReserveInfo
from liqbot.producer.events import classify

POOL = "0x" + "11" * 20
ORACLE = "0x" + "22" * 20
WETH, AWETH, FEED = "0x" + "33" * 20, "0x" + "44" * 20, "0x" + "55" * 20
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20


def _cs(a: str) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(a)


def market() -> MarketInfo:
    r = ReserveInfo(_cs(WETH), "WETH", 18, 0, _cs(AWETH), "0x" + "0" * 40, "0x" + "0" * 40, 8000, 8250, 10500, 1000,
                    True, False, False, _cs(FEED), (_cs(FEED),))
    return MarketInfo(_cs("0x" + "99" * 20), _cs(POOL), _cs(ORACLE), _cs("0x" + "98" * 20), 1, 10**8, (r,))


def _word(typ: str, v: object) -> str:
    return "0x" + encode([typ], [v]).hex()


def _log(address: str, event, topics: list[str], data: bytes, block: int = 7) -> dict:
    return {"address": address, "topics": [event.topic0, *topics], "data": "0x" + data.hex(), "blockNumber": hex(block)}


def test_supply_on_behalf_exposes_the_beneficiary_to_the_reserve():
    log = _log(POOL, aave.SUPPLY_EVENT, [_word("address", WETH), _word("address", ALICE), _word("uint16", 0)],
               encode(["address", "uint256"], [BOB, 5]))
    ch = classify([log], market())
    assert ch.users == {_cs(ALICE): 7}
    assert ch.exposure == [(_cs(WETH), _cs(ALICE))]


def test_price_update_from_the_feed_marks_the_asset():
    log = _log(FEED, aave.ANSWER_UPDATED_EVENT, [_word("int256", 5), _word("uint256", 2)], encode(["uint256"], [9]))
    ch = classify([log], market())
    assert ch.prices == {_cs(WETH): 7}
    assert ch.users == {}


def test_atoken_transfers_touch_both_sides_and_foreign_contracts_are_ignored():
    data = encode(["uint256", "uint256"], [1, 1])
    good = _log(AWETH, aave.BALANCE_TRANSFER_EVENT, [_word("address", ALICE), _word("address", BOB)], data)
    foreign = _log("0x" + "77" * 20, aave.BALANCE_TRANSFER_EVENT, [_word("address", ALICE), _word("address", BOB)], data)
    ch = classify([good, foreign], market())
    assert set(ch.users) == {_cs(ALICE), _cs(BOB)}
    assert (_cs(WETH), _cs(BOB)) in ch.exposure


def test_malformed_logs_are_counted_and_skipped():
    bad = [
        {"address": POOL, "topics": [aave.SUPPLY_EVENT.topic0], "data": "0x", "blockNumber": "0x1"},
        {"address": POOL, "topics": "garbage", "blockNumber": "0x1"},
        {"nothing": True},
        _log(FEED, aave.ANSWER_UPDATED_EVENT, [_word("int256", 5)], b""),
    ]
    ch = classify(bad, market())
    assert ch.skipped == 4
    assert ch.users == {}
    assert ch.prices == {}


def test_risk_batches_start_small_and_cover_everyone():
    from liqbot.producer.listener import risk_batches

    users = [f"u{i}" for i in range(1234)]
    batches = list(risk_batches(users, 500))
    assert [len(b) for b in batches] == [50, 200, 500, 484]
    assert [u for b in batches for u in b] == users
    assert list(risk_batches([], 500)) == []
