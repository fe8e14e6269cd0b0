"""The devnet's pure parts: borrower plans and price arithmetic."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqbot.devnet.market import DEFAULT_RESERVES
from liqbot.devnet.prices import new_answer
from liqbot.devnet.seed import HF_MAX_BPS, HF_MIN_BPS, AssetParams, borrower_address, plan_borrower
from liqbot.errors import DevnetError

ASSETS = [
    AssetParams(s.symbol, f"0x{i:040x}", s.decimals, s.price, s.ltv, s.liquidation_threshold)
    for i, s in enumerate(DEFAULT_RESERVES, 1)
]


def _hf_bps(plan, assets):
    """Health factor the plan yields, computed as Aave does (base units, then weighted threshold)."""
    by = {a.symbol: a for a in assets}
    coll = sum(amt * by[s].price // 10 ** by[s].decimals * by[s].liquidation_threshold for s, amt in plan.collateral.items())
    debt = sum(amt * by[s].price // 10 ** by[s].decimals for s, amt in plan.debt.items())
    return coll // debt


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=10_000))
def test_plans_hit_their_target_health_factor(seed, index):
    plan = plan_borrower(random.Random(seed), borrower_address(seed, index), ASSETS)
    assert HF_MIN_BPS <= plan.target_hf_bps <= HF_MAX_BPS
    assert 1 <= len(plan.collateral) <= 3
    assert 1 <= len(plan.debt) <= 2
    assert all(v > 0 for v in [*plan.collateral.values(), *plan.debt.values()])
    assert abs(_hf_bps(plan, ASSETS) - plan.target_hf_bps) <= plan.target_hf_bps // 500 + 2


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**32))
def test_extra_collateral_only_when_ltv_would_block_the_borrow(seed):
    plan = plan_borrower(random.Random(seed), borrower_address(seed, 0), ASSETS)
    by = {a.symbol: a for a in ASSETS}
    capacity = sum(amt * by[s].price // 10 ** by[s].decimals * by[s].ltv for s, amt in plan.collateral.items()) // 10_000
    debt = sum(amt * by[s].price // 10 ** by[s].decimals for s, amt in plan.debt.items())
    if plan.extra is None:
        assert debt <= capacity
    else:
        s, amt = plan.extra
        assert s in plan.collateral
        assert debt <= capacity + amt * by[s].price // 10 ** by[s].decimals * by[s].ltv // 10_000


def test_plans_are_reproducible_from_the_seed():
    a = [plan_borrower(random.Random(5), borrower_address(5, i), ASSETS) for i in range(3)]
    b = [plan_borrower(random.Random(5), borrower_address(5, i), ASSETS) for i in range(3)]
    assert a == b
    assert borrower_address(5, 0) != borrower_address(6, 0)


def test_new_answer_by_percent_and_by_usd():
    assert new_answer(2000 * 10**8, pct="-30") == 1400 * 10**8
    assert new_answer(2000 * 10**8, pct=12.5) == 2250 * 10**8
    assert new_answer(1, usd="1850.5") == 185_050_000_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pct": "-100"}, "above 0"),
        ({"pct": "-130"}, "above 0"),
        ({"usd": "0"}, "above 0"),
        ({"usd": "-5"}, "above 0"),
        ({"usd": "abc"}, "not a number"),
        ({}, "exactly one"),
        ({"pct": "1", "usd": "1"}, "exactly one"),
    ],
)
def test_new_answer_refuses_bad_input(kwargs, message):
    with pytest.raises(DevnetError, match=message):
        new_answer(2000 * 10**8, **kwargs)
