"""The route choice (inventory vs flash loan) is plain arithmetic on simulated figures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.close_factor import Rules
from liqbot.domain.liquidation import ReservePosition, decide, gas_cost_base
from liqbot.domain.route import FLASH, INVENTORY, UNLIMITED, RouteOption, choose, flash_amount, min_profit
from liqbot.domain.units import UINT256_MAX, WAD

GWEI = 10**9
ETH = 2_000 * 10**8


def test_flash_wins_only_when_its_profit_beats_its_extra_gas():
    inv, flash = RouteOption(INVENTORY, 500 * 10**8, 360_000), RouteOption(FLASH, 500 * 10**8, 600_000)
    assert choose([inv, flash], 10 * GWEI, ETH) is inv  # same gross: the cheaper gas wins
    richer = RouteOption(FLASH, 500 * 10**8 + gas_cost_base(240_000, 10 * GWEI, ETH) + 1, 600_000)
    assert choose([inv, richer], 10 * GWEI, ETH) is richer
    tie = RouteOption(FLASH, 500 * 10**8 + gas_cost_base(240_000, 10 * GWEI, ETH), 600_000)
    assert choose([inv, tie], 10 * GWEI, ETH) is inv  # a tie goes to inventory: no swap to go wrong
    assert choose([flash], 10 * GWEI, ETH) is flash  # no inventory: everything by flash loan
    assert choose([], 10 * GWEI, ETH) is None


@given(st.lists(st.tuples(st.sampled_from([INVENTORY, FLASH]), st.integers(-10**12, 10**14), st.integers(21_000, 2_000_000)),
                min_size=1, max_size=4), st.integers(0, 500 * GWEI), st.integers(1, 10**13))
def test_the_choice_has_the_highest_net(raw, gas_price, native_price):
    options = [RouteOption(*o) for o in raw]
    best = choose(options, gas_price, native_price)
    assert best is not None
    assert all(best.net(gas_price, native_price) >= o.net(gas_price, native_price) for o in options)


@given(st.integers(0, 10**30), st.integers(0, 10_000), st.integers(0, 10**12), st.integers(1, 10**13), st.integers(0, 24))
def test_the_profit_floor_gives_up_at_most_the_slippage_and_never_goes_below_break_even(quoted, bps, cost, price, dec):
    floor = min_profit(quoted, bps, cost, price, dec)
    assert floor >= quoted * (10_000 - bps) // 10_000
    assert floor * price >= cost * 10**dec  # valued at the price, the floor pays the cost
    assert min_profit(quoted, 0, 0, price, dec) == quoted


def test_the_profit_floor_in_numbers():
    usdc = (10**8, 6)  # 1 USD, 6 decimals
    assert min_profit(300 * 10**6, 5_000, 2 * 10**8, *usdc) == 150 * 10**6  # half the quote: above the 2 USD of gas
    assert min_profit(3 * 10**6, 5_000, 2 * 10**8, *usdc) == 2 * 10**6  # a thin quote: break-even wins


def test_with_no_inventory_only_a_flash_loan_can_liquidate():
    weth = ReservePosition("0xW", 18, ETH, 10 * 10**18, 0, True, 8250, 10500, 1000)
    usdc = ReservePosition("0xU", 6, 10**8, 0, 17_000 * 10**6, False, 8000, 10450, 1000)
    kw = {"health_factor": 90 * WAD // 100, "total_debt_base": 17_000 * 10**8, "rules": Rules("v3.3"),
          "gas_cost_base": 0, "min_profit_base": 0}
    assert decide([weth, usdc], inventory={}, **kw).reason == "no inventory"
    flash = decide([weth, usdc], inventory=UNLIMITED, **kw).plan
    assert flash is not None
    assert flash.debt_asset == "0xU"
    assert flash.debt_to_cover == 17_000 * 10**6  # HF < 0.95: the whole debt, not capped by any balance
    assert UNLIMITED.get("anything") == UINT256_MAX
    assert flash_amount(flash.debt_to_cover, 34) == flash.debt_to_cover + 34
