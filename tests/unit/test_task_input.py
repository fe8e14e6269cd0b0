"""Task arguments arrive from a broker anybody with access can write to: they are checked, not trusted."""

from __future__ import annotations

from liqbot.tasks.liquidate import MAX_GROUP, valid_group
from liqbot.tasks.routing import valid_user

A = "0x" + "ab" * 20
B = "0x" + "cd" * 20


def test_valid_user_accepts_addresses_and_refuses_the_rest():
    assert valid_user(A) == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    for bad in (None, 7, "", "0x" + "0" * 40, "0x1234", "not an address", ["0x" + "ab" * 20]):
        assert valid_user(bad) is None


def test_valid_group_keeps_well_formed_siblings_once_and_never_the_task_own_user():
    me = valid_user(A)
    got = valid_group([[A, "t0"], [B, "t1"], [B, "t2"], ["junk", "t3"], [B], "x", [B, 5], None], me)
    assert got == [(valid_user(B), "t1")]


def test_valid_group_ignores_what_is_not_a_list_and_caps_a_huge_one():
    assert valid_group(None, A) == []
    assert valid_group({"a": 1}, A) == []
    many = [["0x" + f"{i + 1:040x}", f"t{i}"] for i in range(10 * MAX_GROUP)]
    assert len(valid_group(many, A)) == MAX_GROUP
