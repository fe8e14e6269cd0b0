"""The circuit breaker on the devnet: injected reverts trip it, the next attempt is refused, after the
cool-down one attempt goes through and its success closes it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from liqbot.devnet import Devnet, move_price
from liqbot.store.attempts import attempts_for
from liqbot.store.db import BreakerEvent
from tests.helpers import attempt_record, liquidations, open_position, runtime_with


def test_injected_reverts_trip_the_breaker_and_a_probe_closes_it(chain: Devnet, env: dict,
                                                                  monkeypatch: pytest.MonkeyPatch):
    from liqbot.execution import run_and_record
    from liqbot.tasks.receipts import track_receipts

    users = [open_position(chain, who, weth=10, usdc=15_000) for who in ("user4", "user5", "user6", "user7", "user8")]
    start = move_price(chain.market, "WETH", pct=-10).block
    rt = runtime_with(monkeypatch, FAULT_INJECT_REVERT="true", BREAKER_MAX_FAILURES="2", BREAKER_COOLDOWN_SECS="2")

    for user in users[:2]:
        assert run_and_record(rt, attempt_record(user), "⚡").outcome == "sent"
    assert track_receipts() == 2
    with rt.sessions() as s:
        assert [a.outcome for u in users[:2] for a in attempts_for(s, u)] == ["reverted", "reverted"]
    assert rt.breaker.state().state == "open"

    refused = run_and_record(rt, attempt_record(users[2]), "⚡")
    assert refused.outcome == "skipped"
    assert refused.reason.startswith("breaker open")

    rt = runtime_with(monkeypatch, FAULT_INJECT_REVERT="false", BREAKER_MAX_FAILURES="2", BREAKER_COOLDOWN_SECS="2")
    time.sleep(2.1)
    assert run_and_record(rt, attempt_record(users[2]), "⚡").outcome == "sent"  # the half-open probe
    assert run_and_record(rt, attempt_record(users[3]), "⚡").reason.startswith("breaker open")  # one probe only
    assert track_receipts() == 1
    assert rt.breaker.state().state == "closed"
    assert run_and_record(rt, attempt_record(users[4]), "⚡").outcome == "sent"

    mined = {e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)}
    assert mined == {users[2], users[4]}
    with rt.sessions() as s:
        events = [(e.old_state, e.new_state) for e in s.query(BreakerEvent).order_by(BreakerEvent.id)]
        causes = [e.cause for e in s.query(BreakerEvent).order_by(BreakerEvent.id)]
    assert events == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert "2 consecutive failed liquidations" in causes[0]


def test_breaker_cli_status_and_reset(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch):
    rt = runtime_with(monkeypatch)
    rt.breaker.gas(10**12, 10**9)
    run = lambda *a: subprocess.run([sys.executable, "-m", "liqbot", "breaker", *a], capture_output=True, text=True,  # noqa: E731
                                    check=False, timeout=60)
    res = run("status")
    assert res.returncode == 0, res.stderr
    assert "open" in res.stdout
    assert "gas price" in res.stdout
    assert run("reset").returncode == 0
    assert rt.breaker.state().state == "closed"
    assert "closed" in run("status").stdout
