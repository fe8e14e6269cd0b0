"""The flash liquidator's pure parts: Uniswap v3 path bytes, calldata, and LIQUIDATOR_CONTRACT settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liqbot.chain.liquidator import LIQUIDATE, encode_path, liquidate_calldata
from liqbot.config import load_settings
from liqbot.errors import ConfigError

A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
KEY = "0x" + "11" * 32


def test_a_path_is_token_then_fee_and_token_per_hop():
    assert encode_path([A, B], [3000]) == bytes.fromhex("aa" * 20 + "000bb8" + "bb" * 20)
    two = encode_path([A, B, C], [500, 10_000])
    assert len(two) == 20 + 2 * 23
    assert two[20:23] == (500).to_bytes(3, "big")
    assert two[43:46] == (10_000).to_bytes(3, "big")
    with pytest.raises(ValueError, match="one fee per hop"):
        encode_path([A, B], [])


def test_liquidate_calldata_carries_the_path_as_bytes():
    data = liquidate_calldata(A, B, C, 10**6, encode_path([A, B], [3000]), 7)
    assert data.startswith("0x" + LIQUIDATE.selector.hex())
    assert encode_path([A, B], [3000]).hex() in data


def _market_file(tmp_path: Path, **contracts: str) -> Path:
    path = tmp_path / "market.json"
    path.write_text(json.dumps({
        "rpc_url": "http://127.0.0.1:8545", "ws_url": "ws://127.0.0.1:8545", "deploy_block": 1,
        "contracts": {"PoolAddressesProvider": A, **contracts},
        "accounts": {"liquidator": {"role": "liquidator", "address": B, "private_key": KEY}},
    }))
    return path


def test_liquidator_contract_is_optional_validated_and_filled_from_the_market_file(tmp_path, monkeypatch):
    base = {"rpc_url": "http://x", "ws_url": "ws://x", "pool_addresses_provider": A, "liquidator_private_key": KEY}
    assert load_settings(**base).liquidator_contract is None
    assert load_settings(**base, liquidator_contract=C).liquidator_contract.lower() == C
    with pytest.raises(ConfigError, match="LIQUIDATOR_CONTRACT: not a non-zero address; expected the 0x-address of our"):
        load_settings(**base, liquidator_contract="0x1234")
    assert load_settings(market_file=_market_file(tmp_path)).liquidator_contract is None
    market = _market_file(tmp_path, FlashLiquidator=C)
    assert load_settings(market_file=market).liquidator_contract.lower() == C
    monkeypatch.setenv("LIQUIDATOR_CONTRACT", B)  # the environment wins over the market file
    assert load_settings(market_file=market).liquidator_contract.lower() == B
