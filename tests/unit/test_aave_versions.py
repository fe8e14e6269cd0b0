"""Which rules each Pool revision runs, the dust error of each version, and v3.6's rate data (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_abi import encode

from liqbot.devnet import v36
from liqbot.devnet.market import RATE_STRATEGIES
from liqbot.domain.close_factor import FIRST_V33_REVISION, Rules
from liqbot.domain.reverts import CUSTOM_ERRORS, NAMES, revert_code

# aave-v3-origin tag -> PoolInstance.POOL_REVISION -> the liquidation rules it runs.
REVISIONS = [
    ("core-v3 1.19 (v3.0)", 1, Rules.V30),
    ("v3.1.0", 4, Rules.V30),
    ("v3.2.0", 5, Rules.V30),
    ("v3.2.1", 6, Rules.V30),  # no MIN_LEFTOVER_BASE in its LiquidationLogic
    ("v3.3.0", 7, Rules.V33),
    ("v3.4.0", 8, Rules.V33),
    ("v3.5.0", 9, Rules.V33),
    ("v3.6.0", 10, Rules.V33),
    ("v3.7", 11, Rules.V33),
]


@pytest.mark.parametrize(("tag", "revision", "rules"), REVISIONS, ids=[r[0] for r in REVISIONS])
def test_each_revision_runs_its_rules(tag: str, revision: int, rules: Rules):
    assert Rules.for_revision(revision) is rules


def test_v33_rules_start_at_revision_7_and_an_unknown_revision_is_treated_as_v30():
    assert FIRST_V33_REVISION == 7
    assert Rules.for_revision(None) is Rules.V30


def _error_string(text: str) -> str:
    return "0x08c379a0" + encode(["string"], [text]).hex()


def test_both_dust_errors_are_one_code():
    assert revert_code(_error_string("103")) == revert_code("0xb629b0e4") == "MustNotLeaveDust"


def test_every_custom_error_named_is_declared_by_v36():
    errors_sol = Path("node_modules/@aave-dao/aave-v3-origin/src/contracts/protocol/libraries/helpers/Errors.sol")
    if not errors_sol.is_file():
        pytest.skip("node_modules not installed (make setup)")
    declared = set(re.findall(r"error (\w+)\(\)", errors_sol.read_text()))
    assert set(CUSTOM_ERRORS) <= declared
    assert set(NAMES.values()) <= declared


def test_v36_rate_data_is_the_v30_strategy_in_bps():
    volatile, stable = v36.rate_data(RATE_STRATEGIES[True]), v36.rate_data(RATE_STRATEGIES[False])
    assert volatile == encode(["(uint16,uint32,uint32,uint32)"], [(4_500, 0, 400, 30_000)])
    assert stable == encode(["(uint16,uint32,uint32,uint32)"], [(9_000, 0, 400, 6_000)])
