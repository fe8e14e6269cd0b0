"""The lane's view of our balances: trusted only while recent, counted down by our sends."""

from __future__ import annotations

from unittest import mock

from liqbot.chain.inventory import Inventory


def test_inventory_covers_what_the_last_read_holds_less_what_was_sent_since():
    reads = iter([{"A": 100}, {"A": 40}])
    inv = Inventory(lambda: next(reads), max_age=30)
    assert not inv.covers("A", 1)  # never read
    inv.refresh()
    assert inv.covers("A", 100)
    assert not inv.covers("A", 101)
    assert not inv.covers("B", 1)
    inv.spend("A", 70)
    assert inv.covers("A", 30)
    assert not inv.covers("A", 31)
    inv.refresh()
    assert inv.covers("A", 40)


def test_an_old_read_is_not_trusted():
    inv = Inventory(lambda: {"A": 100}, max_age=30)
    with mock.patch("liqbot.chain.inventory.time.monotonic", return_value=1000.0):
        inv.refresh()
    with mock.patch("liqbot.chain.inventory.time.monotonic", return_value=1029.0):
        assert inv.covers("A", 100)
    with mock.patch("liqbot.chain.inventory.time.monotonic", return_value=1031.0):
        assert not inv.covers("A", 1)
