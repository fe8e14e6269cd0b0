"""Our EIP-1559 signer produces exactly eth_account's bytes and hash."""

from __future__ import annotations

from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from liqbot.chain.signing import Signer

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
keys = st.integers(1, SECP256K1_N - 1).map(lambda k: "0x" + k.to_bytes(32, "big").hex())
u64, u256 = st.integers(0, 2**64 - 1), st.integers(0, 2**256 - 1)


@settings(max_examples=200, deadline=None)
@given(key=keys, chain_id=st.integers(1, 2**32), nonce=u64, to=st.binary(min_size=20, max_size=20),
       data=st.binary(max_size=600), gas=st.integers(21_000, 30_000_000), max_fee=u256, tip=u256, value=u256)
def test_the_signer_matches_eth_account(key, chain_id, nonce, to, data, gas, max_fee, tip, value):
    address = to_checksum_address(to)
    ours = Signer(key).sign_1559(chain_id=chain_id, nonce=nonce, to=address, data="0x" + data.hex(), gas=gas,
                                 max_fee=max_fee, tip=tip, value=value)
    theirs = Account.from_key(key).sign_transaction({
        "chainId": chain_id, "nonce": nonce, "to": address, "data": "0x" + data.hex(), "gas": gas,
        "value": value, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2})
    assert ours == ("0x" + bytes(theirs.hash).hex(), "0x" + bytes(theirs.raw_transaction).hex())
