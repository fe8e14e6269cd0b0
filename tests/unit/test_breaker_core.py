"""The breaker's state machine (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.breaker import CLOSED, HALF_OPEN, OPEN, BreakerConfig, BreakerState, attempted, gas_seen, request, result

CFG = BreakerConfig(max_attempts=5, window_secs=60, max_consecutive_failures=3, cooldown_secs=30)


def test_consecutive_failures_trip_it_and_a_probe_closes_it():
    st_ = BreakerState()
    for _ in range(2):
        st_ = result(st_, CFG, 0, success=False)
    assert st_.state == CLOSED
    st_ = result(st_, CFG, 1, success=False, what="reverted 0xabc")
    assert st_.state == OPEN
    assert "3 consecutive" in st_.cause
    assert request(st_, CFG, 10)[0] is False  # cooling down
    ok, st_ = request(st_, CFG, 31)
    assert ok
    assert st_.state == HALF_OPEN
    assert request(st_, CFG, 31.5)[0] is False  # one probe only
    st_ = result(st_, CFG, 32, success=True)
    assert st_ == BreakerState()


def test_a_failed_probe_opens_it_again():
    st_ = BreakerState(state=OPEN, opened_at=0, cause="x", consecutive_failures=3)
    _, st_ = request(st_, CFG, 30)
    st_ = result(st_, CFG, 31, success=False)
    assert st_.state == OPEN
    assert st_.opened_at == 31


def test_rate_and_gas_trip_it():
    assert attempted(BreakerState(), CFG, 0, 5).state == CLOSED
    assert attempted(BreakerState(), CFG, 0, 6).state == OPEN
    assert gas_seen(BreakerState(), 0, 10**9, 2 * 10**9).state == CLOSED
    tripped = gas_seen(BreakerState(), 0, 3 * 10**9, 2 * 10**9)
    assert tripped.state == OPEN
    assert "gas price" in tripped.cause


events = st.lists(st.tuples(st.sampled_from(["request", "ok", "fail", "burst", "gas"]), st.floats(0, 40)), max_size=60)


@given(events)
def test_invariants(seq):
    st_, now = BreakerState(), 0.0
    for kind, dt in seq:
        now += dt
        before = st_
        if kind == "request":
            ok, st_ = request(st_, CFG, now)
            if before.state == OPEN and now - before.opened_at < CFG.cooldown_secs:
                assert not ok  # never through while cooling down
            if ok and before.state != CLOSED:
                assert st_.state == HALF_OPEN
                assert st_.probe_taken
        elif kind in ("ok", "fail"):
            st_ = result(st_, CFG, now, kind == "ok")
        elif kind == "burst":
            st_ = attempted(st_, CFG, now, 99)
        else:
            st_ = gas_seen(st_, now, 10**12, 10**9)
        assert st_.state in (CLOSED, OPEN, HALF_OPEN)
        assert st_.consecutive_failures >= 0
