import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from liqbot.chain import aave
from liqbot.chain.abi import Event, Function

ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_selector_matches_the_canonical_signature():
    assert aave.GET_USER_ACCOUNT_DATA.selector.hex() == "bf92857c"
    assert aave.LIQUIDATION_CALL.selector.hex() == "00a718a9"
    assert aave.MINT_TO.selector == keccak(text="mint(address,uint256)")[:4]


def test_tuple_arrays_encode_like_eth_abi():
    fn = aave.INIT_RESERVES
    item = (ADDR, ADDR, ADDR, 18, ADDR, ADDR, ADDR, ADDR, "a", "b", "c", "d", "e", "f", b"")
    typ = "(address,address,address,uint8,address,address,address,address,string,string,string,string,string,string,bytes)[]"
    assert fn.calldata([item]) == "0x" + (fn.selector + encode([typ], [[item]])).hex()


@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=6, max_size=6))
def test_multi_value_returns_round_trip(values):
    raw = encode(["uint256"] * 6, values)
    assert list(aave.GET_USER_ACCOUNT_DATA.decode(raw)) == values


def test_decoded_addresses_are_checksummed():
    raw = encode(["address"], [ADDR.lower()])
    assert Function("getPool()", "address").decode("0x" + raw.hex()) == ADDR


def _log(event: Event, topics: list[bytes], data: bytes) -> dict:
    return {"topics": [event.topic0] + ["0x" + t.hex() for t in topics], "data": "0x" + data.hex()}


def test_event_decodes_indexed_and_plain_arguments():
    ev = aave.SUPPLY_EVENT
    assert ev.topic0 == "0x" + keccak(text="Supply(address,address,address,uint256,uint16)").hex()
    reserve, user, on_behalf = ADDR, "0x" + "11" * 20, "0x" + "22" * 20
    topics = [encode(["address"], [reserve]), encode(["address"], [on_behalf]), encode(["uint16"], [7])]
    out = ev.decode(_log(ev, topics, encode(["address", "uint256"], [user, 5])))
    assert out["reserve"] == ADDR
    assert out["onBehalfOf"].lower() == on_behalf
    assert out["amount"] == 5
    assert out["referralCode"] == 7


def test_malformed_logs_raise_value_error():
    ev = aave.ANSWER_UPDATED_EVENT
    good = _log(ev, [encode(["int256"], [-5]), encode(["uint256"], [1])], encode(["uint256"], [9]))
    assert ev.decode(good)["current"] == -5
    for bad in (
        {**good, "topics": good["topics"][:2]},
        {**good, "topics": ["0x" + "00" * 32, *good["topics"][1:]]},
        {**good, "data": "0x"},
        {"topics": []},
    ):
        with pytest.raises(ValueError, match="AnswerUpdated"):
            ev.decode(bad)


@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=6, max_size=6),
       st.binary(min_size=20, max_size=20))
def test_the_scanners_hand_encoding_matches_the_abi(values, addr):
    from eth_utils import to_checksum_address

    from liqbot.chain.reader import account_calldata, decode_account

    user = to_checksum_address(addr)
    assert account_calldata(user) == aave.GET_USER_ACCOUNT_DATA.calldata(user)
    raw = "0x" + encode(["uint256"] * 6, values).hex()
    acc = decode_account(user, raw)
    assert [acc.collateral_base, acc.debt_base, acc.available_borrows_base, acc.liquidation_threshold, acc.ltv,
            acc.health_factor] == values
