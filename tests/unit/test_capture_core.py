"""The capture audit's core: every LiquidationCall is ours, or lost for exactly one reason."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.capture import (
    DETECTED_LATE,
    FAILED,
    MINED_LATER,
    NOT_DETECTED,
    NOT_MINED,
    NOT_TRACKED,
    REASONS,
    REVERTED,
    SKIPPED,
    AttemptView,
    LiquidationEvent,
    Rate,
    Verdict,
    bonus_base,
    classify,
    reason_kind,
)

US, CONTRACT, RIVAL, USER = "0x" + "a" * 40, "0x" + "c" * 40, "0x" + "b" * 40, "0x" + "d" * 40
OURS = (US, CONTRACT)
WETH, USDC = "0x" + "1" * 40, "0x" + "2" * 40


def event(liquidator: str = RIVAL, block: int = 100, tx_index: int = 3, tx: str = "0xrival") -> LiquidationEvent:
    return LiquidationEvent(block=block, tx_index=tx_index, log_index=7, tx_hash=tx, user=USER, liquidator=liquidator,
                            collateral_asset=WETH, debt_asset=USDC, debt_to_cover=7_500 * 10**6,
                            collateral_seized=4 * 10**18)


def attempt(outcome: str, detected: int = 99, reason: str | None = None, id: int = 1, tx: str | None = None,
            mined: int | None = None, index: int | None = None) -> AttemptView:
    return AttemptView(id, detected, outcome, reason, tx, mined, index)


def test_ours_by_our_account_or_our_contract_whatever_the_attempts_say():
    assert classify(event(US, tx="0xours"), OURS, True, [attempt("mined", tx="0xours", id=4)]) == Verdict(True, None, 4)
    assert classify(event(CONTRACT.upper().replace("0X", "0x")), OURS, False, []) == Verdict(True, None, None)
    assert classify(event(US), (US, ""), True, []).ours  # no flash contract configured


def test_each_loss_reason_in_the_order_of_checks():
    e = event()
    assert classify(e, OURS, False, [attempt("skipped", reason="unprofitable")]).reason == NOT_TRACKED
    assert classify(e, OURS, True, []) == Verdict(False, NOT_DETECTED, None)
    assert classify(e, OURS, True, [attempt("skipped", detected=102, id=2), attempt("sent", detected=101, id=3)]) \
        == Verdict(False, DETECTED_LATE, 3)
    assert classify(e, OURS, True, [attempt("skipped", reason="gas price above cap (31.0 gwei)")]).reason \
        == SKIPPED + "gas price above cap"
    assert classify(e, OURS, True, [attempt("skipped", reason="breaker open (3 consecutive failures)")]).reason \
        == "skipped: breaker open"
    assert classify(e, OURS, True, [attempt("dry_run")]).reason == "skipped: dry run"
    assert classify(e, OURS, True, [attempt("lost", reason="lost race: reverted, liquidated first by 0xr")]).reason == MINED_LATER
    assert classify(e, OURS, True, [attempt("mined", tx="0xus", mined=101)]).reason == MINED_LATER
    assert classify(e, OURS, True, [attempt("mined", tx="0xus", mined=100)]).reason == MINED_LATER  # index unknown
    assert classify(e, OURS, True, [attempt("mined", tx="0xus", mined=100, index=5)]).reason == MINED_LATER
    assert classify(e, OURS, True, [attempt("reverted", mined=100)]).reason == REVERTED
    assert classify(e, OURS, True, [attempt("failed", reason="RPC timeout")]).reason == FAILED
    assert classify(e, OURS, True, [attempt("dropped")]).reason == NOT_MINED


def test_the_attempt_that_got_furthest_explains_the_loss():
    tries = [attempt("skipped", reason="another attempt for this user is in progress", id=1),
             attempt("reverted", detected=98, id=2), attempt("failed", detected=100, id=3)]
    assert classify(event(), OURS, True, tries) == Verdict(False, REVERTED, 2)
    assert classify(event(), OURS, True, tries[::2]) == Verdict(False, FAILED, 3)


def test_our_liquidation_mined_ahead_of_the_rival_is_an_earlier_capture_not_this_race():
    ahead = attempt("mined", detected=90, tx="0xus", mined=100, index=1)
    assert classify(event(), OURS, True, [ahead]).reason == NOT_DETECTED
    assert classify(event(), OURS, True, [attempt("mined", detected=90, mined=95)]).reason == NOT_DETECTED
    assert classify(event(), OURS, True, [ahead, attempt("skipped", reason="no inventory", id=2)]) \
        == Verdict(False, "skipped: no inventory", 2)


def test_unknown_outcomes_are_not_attempts():
    assert classify(event(), OURS, True, [attempt("grouped")]).reason == NOT_DETECTED


def test_reason_kind_drops_the_particulars():
    assert reason_kind("reverted in simulation: MustNotLeaveDust") == "reverted in simulation"
    assert reason_kind("breaker half-open: one probe at a time") == "breaker half-open"
    assert reason_kind("would leave dust") == "would leave dust"
    assert reason_kind(None) == reason_kind("") == "unknown"


def test_bonus_is_collateral_seized_less_debt_covered_at_the_block_prices():
    # 4 WETH at 2,000 USD, 7,500 USDC at 1 USD: 500 USD of bonus, in 8-decimal base units
    assert bonus_base(event(), 2_000 * 10**8, 18, 10**8, 6) == 500 * 10**8
    assert isinstance(bonus_base(event(), 2_000 * 10**8 + 1, 18, 10**8 - 1, 6), int)


def test_rates_by_count_and_by_bonus():
    r = Rate(ours=12, total=13, ours_bonus=97, total_bonus=100)
    assert (round(r.by_count, 2), r.by_bonus) == (0.92, 0.97)
    assert Rate(0, 0, 0, 0).as_dict() == {"ours": 0, "total": 0, "ours_bonus": 0, "total_bonus": 0, "by_count": None,
                                          "by_bonus": None}


OUTCOMES = ("sent", "mined", "reverted", "lost", "skipped", "failed", "dry_run", "dropped", "replaced", "grouped")
attempts = st.lists(st.builds(
    AttemptView, id=st.integers(1, 50), detected_block=st.integers(80, 120), outcome=st.sampled_from(OUTCOMES),
    reason=st.sampled_from([None, "", "unprofitable", "gas price above cap (9 gwei)", "reverted in simulation: 45"]),
    tx_hash=st.sampled_from([None, "0xus", "0xrival"]), mined_block=st.none() | st.integers(90, 110),
    mined_index=st.none() | st.integers(0, 6)), max_size=6)


@given(liquidator=st.sampled_from([US, CONTRACT, RIVAL]), tracked=st.booleans(), block=st.integers(90, 110),
       tx_index=st.integers(0, 6), tries=attempts)
def test_classification_is_total_ours_or_exactly_one_known_reason(liquidator, tracked, block, tx_index, tries):
    v = classify(event(liquidator, block, tx_index), OURS, tracked, tries)
    assert v.ours == (liquidator != RIVAL)
    assert (v.reason is None) == v.ours
    if not v.ours:
        assert sum(v.reason == r or (r == SKIPPED and v.reason.startswith(SKIPPED)) for r in REASONS) == 1
    assert v.attempt_id is None or v.attempt_id in {a.id for a in tries}
