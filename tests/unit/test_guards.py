"""What turns the trusted path off: a PriceOracleSentinel, a liquidation grace period still running."""

from __future__ import annotations

from liqbot.chain import aave
from liqbot.chain.guards import blockers_from
from liqbot.errors import RpcError

ZERO = "0x" + "00" * 32
A, B = "0x" + "11" * 20, "0x" + "22" * 20
NO_FUNCTION = RpcError("eth_call", {"code": 3, "message": "execution reverted"})


def _word(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def test_nothing_set_blocks_nothing_on_any_revision():
    assert blockers_from(ZERO, [_word(0), _word(0)], [A, B], now=1_000) == []
    assert blockers_from(NO_FUNCTION, [NO_FUNCTION, "0x"], [A, B], now=1_000) == []  # v3.0: no such functions


def test_a_sentinel_or_a_running_grace_period_blocks():
    sentinel = _word(int("33" * 20, 16))
    assert blockers_from(sentinel, [_word(0), _word(0)], [A, B], now=1_000) == [
        f"a PriceOracleSentinel is set ({aave.GET_PRICE_ORACLE_SENTINEL.decode(sentinel)})"]
    assert blockers_from(ZERO, [_word(1_001), _word(999)], [A, B], now=1_000) == [
        f"liquidation grace period on {A} until 1001"]
