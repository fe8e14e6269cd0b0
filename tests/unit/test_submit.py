"""Submission routes without a chain: raw transactions rebuilt from a node's JSON, the relay request
signature, the bundle route against the relay double (record only), and the settings it needs."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from liqbot.chain.submit import (
    SIGNATURE_HEADER,
    BadTransaction,
    BundleRefused,
    BundleSubmitter,
    PublicSubmitter,
    build_submitter,
    raw_transaction,
    relay_signature,
)
from liqbot.config import load_settings
from liqbot.devnet.anvil import free_port
from liqbot.errors import ConfigError
from tests.relay_double import RelayDouble, SignatureRefused, signer_of
from tests.unit.test_config import GOOD, KEY

SIGNER = Account.from_key("0x" + "11" * 32)
RELAY_KEY = "0x" + "22" * 32
TO = to_checksum_address("0x" + "ab" * 20)
ACCESS = [{"address": to_checksum_address("0x" + "cd" * 20), "storageKeys": ["0x" + "00" * 31 + "01", "0x" + "ff" * 32]}]


def _node_json(fields: dict) -> tuple[dict, str]:
    """The full JSON object a node shows for `fields` signed by SIGNER: quantities as minimal hex, `v`
    as signed, `yParity` on typed transactions, `to` null for a creation; and the raw bytes signed."""
    signed = SIGNER.sign_transaction(fields)
    kind = fields.get("type", 1 if "accessList" in fields else 0)
    out = {"hash": "0x" + bytes(signed.hash).hex(), "type": hex(kind), "from": SIGNER.address,
           "to": fields.get("to"), "input": fields.get("data", "0x"), "v": hex(signed.v), "r": hex(signed.r),
           "s": hex(signed.s), "blockHash": None, "blockNumber": None, "transactionIndex": None}
    for key in ("nonce", "gas", "value", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "chainId"):
        if key in fields:
            out[key] = hex(fields[key])
    if kind:
        out["accessList"] = fields.get("accessList", [])
        out["yParity"] = hex(signed.v)
    return out, "0x" + bytes(signed.raw_transaction).hex()


BASE = {"nonce": 7, "gas": 90_000, "to": TO, "value": 3, "data": "0x" + "12" * 68}
CASES = {
    "legacy eip-155": {**BASE, "gasPrice": 30 * 10**9, "chainId": 31337},
    "legacy pre-155": {**BASE, "gasPrice": 30 * 10**9},
    "eip-2930": {**BASE, "gasPrice": 30 * 10**9, "chainId": 1, "accessList": ACCESS},
    "eip-1559": {**BASE, "type": 2, "maxFeePerGas": 41 * 10**9, "maxPriorityFeePerGas": 10**9, "chainId": 1,
                 "accessList": ACCESS},
    "eip-1559 no access list": {**BASE, "type": 2, "maxFeePerGas": 2, "maxPriorityFeePerGas": 0, "chainId": 8453},
    "eip-1559 creation": {**{k: v for k, v in BASE.items() if k != "to"}, "type": 2, "maxFeePerGas": 5,
                          "maxPriorityFeePerGas": 1, "chainId": 1},
}


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_raw_transaction_rebuilds_the_signed_bytes(fields: dict):
    tx, raw = _node_json(fields)
    assert raw_transaction(tx) == raw


def test_a_typed_transaction_without_y_parity_uses_v():
    tx, raw = _node_json(CASES["eip-1559"])
    del tx["yParity"]
    assert raw_transaction(tx) == raw


@pytest.mark.parametrize(("key", "value"), [("value", "0x4"), ("input", "0x"), ("s", "0x1"), ("hash", "0x" + "00" * 32)])
def test_a_json_that_does_not_hash_to_its_hash_is_refused(key: str, value: str):
    tx, _ = _node_json(CASES["eip-1559"])
    tx[key] = value
    with pytest.raises(BadTransaction, match="hash to"):
        raw_transaction(tx)


def test_an_unsupported_type_is_refused():
    tx, _ = _node_json(CASES["eip-1559"])
    tx["type"] = "0x3"
    with pytest.raises(BadTransaction, match="type 3"):
        raw_transaction(tx)


def test_the_signature_header_recovers_to_the_signing_key_address():
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x01"],"blockNumber":"0x10"}]}'
    header = relay_signature(body, RELAY_KEY)
    address, _, signature = header.partition(":")
    assert address == Account.from_key(RELAY_KEY).address
    # EIP-191 over the 0x-hex text of keccak(body), exactly
    message = encode_defunct(text="0x" + keccak(body).hex())
    assert Account.recover_message(message, signature=signature) == address
    assert signer_of(header, body) == address
    with pytest.raises(SignatureRefused, match="signature check"):
        signer_of(header, body + b" ")
    with pytest.raises(SignatureRefused, match="missing"):
        signer_of(None, body)


class _Rpc:
    """Our node, as far as the bundle route asks it: the latest block number."""

    def call(self, method: str, *params: object) -> str:
        assert method == "eth_blockNumber"
        return "0x63"


def test_a_bundle_goes_to_every_relay_for_each_target_block_behind_what_goes_ahead():
    ahead, ours = _node_json(CASES["eip-1559"])[1], [_node_json({**CASES["eip-1559"], "nonce": n})[1] for n in (1, 2)]
    with RelayDouble() as a, RelayDouble() as b:
        sub = BundleSubmitter(_Rpc(), [a.url, b.url], RELAY_KEY, blocks=2)
        try:
            result = sub.submit(ours, ahead=[ahead])
        finally:
            sub.close()
    assert result.replies == ["0x" + keccak(bytes.fromhex(r[2:])).hex() for r in ours]
    assert result.bundle is not None
    assert result.bundle.blocks == (100, 101)
    for relay in (a, b):
        assert [(x.txs, x.block, x.signer) for x in relay.bundles] == [
            ([ahead, *ours], 100, sub.signer), ([ahead, *ours], 101, sub.signer)]
        assert relay.refused == []


def test_one_relay_accepting_is_enough_and_the_others_errors_are_logged_and_returned(caplog: pytest.LogCaptureFixture):
    raw = _node_json(CASES["eip-1559"])[1]
    with RelayDouble() as ok, RelayDouble(refuse_with="bundle rejected") as no:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        sub = BundleSubmitter(_Rpc(), [ok.url, no.url, dead], RELAY_KEY)
        with caplog.at_level(logging.WARNING, logger="liqbot.chain.submit"):
            result = sub.submit([raw])
        sub.close()
    assert isinstance(result.replies[0], str)
    assert result.bundle is not None
    assert result.bundle.accepted
    errors = result.bundle.errors
    assert set(errors) == {no.url, dead}
    assert "bundle rejected" in str(errors[no.url][0])
    assert "relay unreachable" in str(errors[dead][0])
    assert no.url in caplog.text
    assert dead in caplog.text


def test_a_bundle_every_relay_refuses_is_a_refusal_of_each_transaction():
    raws = [_node_json({**CASES["eip-1559"], "nonce": n})[1] for n in (1, 2)]
    with RelayDouble(refuse_with="bundle rejected") as no:
        sub = BundleSubmitter(_Rpc(), [no.url], RELAY_KEY)
        result = sub.submit(raws)
        sub.close()
    assert all(isinstance(r, BundleRefused) for r in result.replies)
    assert "bundle rejected" in str(result.replies[0])


def test_a_request_signed_by_another_key_than_it_names_is_refused_with_403():
    import requests

    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x01"],"blockNumber":"0x10"}]}'
    forged = Account.from_key(RELAY_KEY).address + ":" + relay_signature(body, "0x" + "33" * 32).partition(":")[2]
    with RelayDouble() as relay:
        for headers in ({}, {SIGNATURE_HEADER: forged}):
            resp = requests.post(relay.url, data=body, headers=headers, timeout=5)
            assert resp.status_code == 403
            assert resp.json()["error"]["code"] == -32600
    assert relay.bundles == []
    assert relay.refused == ["missing X-Flashbots-Signature header",
                             f"error in signature check {Account.from_key(RELAY_KEY).address}"]


# ---------------------------------------------------------------------------------------------- settings

ROUTE_VARS = ["SUBMIT_ROUTE", "RELAY_URLS", "RELAY_SIGNING_KEY", "BUNDLE_BLOCKS", "LIQUIDATOR_KEY_FILE", "MARKET_FILE"]


@pytest.fixture
def bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ROUTE_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in {**GOOD, "SUBMIT_ROUTE": "bundle", "RELAY_URLS": "http://127.0.0.1:1, https://relay.example/x",
                 "RELAY_SIGNING_KEY": RELAY_KEY}.items():
        monkeypatch.setenv(k, v)


@pytest.mark.usefixtures("bundle_env")
def test_bundle_settings_and_the_submitter_they_build():
    s = load_settings()
    assert (s.submit_route, s.relay_urls, s.bundle_blocks) == ("bundle", ["http://127.0.0.1:1", "https://relay.example/x"], 1)
    assert s.redacted()["relay_signing_key"] == "0x****(masked)"
    sub = build_submitter(_Rpc(), s.submit_route, s.relay_urls, s.relay_signing_key.get_secret_value(), s.bundle_blocks)
    assert isinstance(sub, BundleSubmitter)
    assert RELAY_KEY not in repr(sub)
    sub.close()


def test_the_default_route_is_public(monkeypatch: pytest.MonkeyPatch):
    for var in ROUTE_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert (s.submit_route, s.relay_urls, s.relay_signing_key) == ("public", [], None)
    assert isinstance(build_submitter(_Rpc(), s.submit_route), PublicSubmitter)


@pytest.mark.usefixtures("bundle_env")
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SUBMIT_ROUTE": "private"}, "SUBMIT_ROUTE"),
        ({"RELAY_URLS": ""}, "RELAY_URLS: required when SUBMIT_ROUTE=bundle"),
        ({"RELAY_URLS": "relay.flashbots.net"}, "RELAY_URLS: not a list of http(s) URLs"),
        ({"RELAY_SIGNING_KEY": ""}, "RELAY_SIGNING_KEY: required when SUBMIT_ROUTE=bundle"),
        ({"RELAY_SIGNING_KEY": "0x1234"}, "RELAY_SIGNING_KEY: not a 32-byte hex key"),
        ({"RELAY_SIGNING_KEY": KEY.upper().replace("0X", "0x")}, "RELAY_SIGNING_KEY: must not be the liquidator key"),
        ({"BUNDLE_BLOCKS": "0"}, "BUNDLE_BLOCKS"),
    ],
)
def test_bundle_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict, expected: str):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings()


@pytest.mark.usefixtures("bundle_env")
def test_the_relay_key_must_differ_from_a_liquidator_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = tmp_path / "key"
    path.write_text(RELAY_KEY + "\n")
    os.chmod(path, 0o600)
    monkeypatch.delenv("LIQUIDATOR_PRIVATE_KEY")
    monkeypatch.setenv("LIQUIDATOR_KEY_FILE", str(path))
    with pytest.raises(ConfigError, match="RELAY_SIGNING_KEY: must not be the liquidator key"):
        load_settings()
