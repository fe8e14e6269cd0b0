"""The bundle route on the devnet, through the relay double: a pending oracle update is taken from the
node's pending block, its raw bytes rebuilt, and the bundle [update, our liquidation] lands in one block
in that order; a badly signed request is refused and nothing reaches the node; a bundle that never
lands leaves its nonce to the next send; SUBMIT_ROUTE=public sends as it always did."""

from __future__ import annotations

import pytest
import requests
from eth_account import Account

from liqbot.chain import aave
from liqbot.chain.sender import Sent, Tx
from liqbot.chain.submit import SIGNATURE_HEADER, BundleSubmitter, PublicSubmitter, raw_transaction, relay_signature
from liqbot.devnet import Devnet, interval_mining
from liqbot.devnet.txs import TxSender
from liqbot.domain.fees import Fees
from liqbot.errors import RpcError
from tests.helpers import mempool, open_position, runtime_with, wait_until
from tests.relay_double import RelayDouble

GWEI = 10**9
RELAY_KEY = "0x" + "5e" * 32


def _pending(chain: Devnet, tx_hash: str) -> dict:
    """The transaction as the node's pending block shows it (what a backrunner sees)."""
    block = chain.rpc.call("eth_getBlockByNumber", "pending", True)
    return next(tx for tx in block["transactions"] if tx["hash"] == tx_hash)


def _fees(chain: Devnet) -> Fees:
    base = int(chain.rpc.call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    return Fees(2 * base + GWEI, GWEI)


def _weth_feed(chain: Devnet) -> tuple[str, int]:
    m, get_source = chain.market, aave.GET_SOURCE_OF_ASSET
    feed = get_source.decode(chain.rpc.eth_call(m.contracts["AaveOracle"], get_source.calldata(m.reserve("WETH").address)))
    return feed, aave.LATEST_ANSWER.decode(chain.rpc.eth_call(feed, aave.LATEST_ANSWER.calldata()))


def _armed(chain: Devnet) -> None:
    """Our liquidator holds USDC and has approved the Pool, so a liquidation is one transaction."""
    m, tx = chain.market, TxSender(chain.rpc)
    me, usdc = m.account("liquidator").address, m.reserve("USDC").address
    tx.call(me, usdc, aave.MINT_TO, me, 10**13)
    tx.call(me, usdc, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.settle()


def _bundle_runtime(monkeypatch: pytest.MonkeyPatch, relay: RelayDouble, **env: str):
    return runtime_with(monkeypatch, SUBMIT_ROUTE="bundle", RELAY_URLS=relay.url, RELAY_SIGNING_KEY=RELAY_KEY, **env)


def _next_block_just_started(chain: Devnet) -> None:
    """Under interval mining: wait for a block to be mined, so most of an interval lies ahead."""
    now = chain.rpc.call("eth_blockNumber")
    wait_until(lambda: chain.rpc.call("eth_blockNumber") != now, 5, "a block", interval=0.01)


def test_raw_transactions_rebuilt_from_anvils_pending_json_are_the_bytes_it_holds(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    frm, to = m.account("user7").address, m.account("treasury").address
    fees = _fees(chain)
    kinds = {
        "legacy": {"gasPrice": hex(fees.max_fee)},
        "eip-2930": {"gasPrice": hex(fees.max_fee), "accessList": [{"address": to, "storageKeys": ["0x" + "00" * 31 + "07"]}]},
        "eip-1559": {"maxFeePerGas": hex(fees.max_fee), "maxPriorityFeePerGas": hex(fees.tip),
                     "accessList": [{"address": to, "storageKeys": []}]},
    }
    with mempool(chain):
        sent = {k: rpc.call("eth_sendTransaction", {"from": frm, "to": to, "value": "0x1", "data": "0xbeef",
                                                    "gas": hex(60_000), **extra}) for k, extra in kinds.items()}
        for kind, tx_hash in sent.items():
            pending = _pending(chain, tx_hash)
            assert pending["type"] == {"legacy": "0x0", "eip-2930": "0x1", "eip-1559": "0x2"}[kind]
            raw = raw_transaction(pending)  # checks keccak(raw) == hash
            assert raw == raw_transaction(rpc.call("eth_getTransactionByHash", tx_hash))
            assert raw == rpc.call("eth_getRawTransactionByHash", tx_hash)
        rpc.call("evm_mine")


def test_a_bundle_backruns_a_pending_oracle_update_in_the_same_block(chain: Devnet, env: dict,
                                                                     monkeypatch: pytest.MonkeyPatch):
    m, rpc = chain.market, chain.rpc
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    _armed(chain)
    feed, answer = _weth_feed(chain)
    liquidate = aave.LIQUIDATION_CALL.calldata(m.reserve("WETH").address, m.reserve("USDC").address, user,
                                               aave.UINT256_MAX, False)
    with RelayDouble(forward_to=chain.anvil.http_url) as relay:
        rt = _bundle_runtime(monkeypatch, relay)
        assert isinstance(rt.submitter, BundleSubmitter)
        fees = _fees(chain)  # the update's max fee, and ours: equal, so arrival order is block order
        with interval_mining(rpc, 1):
            _next_block_just_started(chain)
            update = rpc.call("eth_sendTransaction", {
                "from": m.account("deployer").address, "to": feed, "data": aave.SET_ANSWER.calldata(answer * 80 // 100),
                "gas": hex(100_000), "maxFeePerGas": hex(fees.max_fee), "maxPriorityFeePerGas": hex(fees.tip)})
            raw_update = raw_transaction(_pending(chain, update))
            rpc.call("anvil_dropTransaction", update)  # from here only the bundle can bring it
            # a liquidation valid only after the update: no estimate, an explicit gas limit
            (ours,) = rt.sender.send_many([Tx(m.pool, liquidate, 1_000_000, fees)], submitter=rt.submitter,
                                          ahead=[raw_update])
            assert isinstance(ours, Sent), ours
            receipts = [wait_until(lambda h=h: rpc.call("eth_getTransactionReceipt", h), 10, f"receipt of {h}")
                        for h in (update, ours.tx_hash)]
    (bundle,) = relay.bundles
    assert bundle.txs[0] == raw_update
    assert bundle.signer == Account.from_key(RELAY_KEY).address
    assert bundle.block == int(receipts[0]["blockNumber"], 16)  # the next block, where it landed
    assert [f.tx_hash for f in relay.forwarded] == [update, ours.tx_hash]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    assert int(receipts[0]["transactionIndex"], 16) + 1 == int(receipts[1]["transactionIndex"], 16)
    assert [r["status"] for r in receipts] == ["0x1", "0x1"]
    assert any(log["topics"][0] == aave.LIQUIDATION_CALL_EVENT.topic0 for log in receipts[1]["logs"])
    assert ours.bundle is not None
    assert ours.bundle.accepted


def test_a_badly_signed_bundle_is_refused_and_nothing_is_forwarded(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    signer = Account.from_key(m.account("user7").private_key)
    fees, nonce = _fees(chain), int(rpc.call("eth_getTransactionCount", signer.address, "pending"), 16)
    raw = "0x" + bytes(signer.sign_transaction({
        "chainId": int(rpc.call("eth_chainId"), 16), "nonce": nonce,
        "to": m.account("treasury").address, "value": 1, "gas": 21_000, "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.tip, "type": 2}).raw_transaction).hex()
    body = (b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["' + raw.encode()
            + b'"],"blockNumber":"' + hex(int(rpc.call("eth_blockNumber"), 16) + 1).encode() + b'"}]}')
    other = relay_signature(body, "0x" + "77" * 32).partition(":")[2]
    with RelayDouble(forward_to=chain.anvil.http_url) as relay:
        for header in (None, f"{Account.from_key(RELAY_KEY).address}:{other}", relay_signature(body + b" ", RELAY_KEY)):
            resp = requests.post(relay.url, data=body, timeout=5,
                                 headers={"Content-Type": "application/json", **({SIGNATURE_HEADER: header} if header else {})})
            assert resp.status_code == 403
            assert resp.json()["error"]["code"] == -32600
        assert len(relay.refused) == 3
        assert relay.bundles == []
        assert relay.forwarded == []
        # the same body, rightly signed, goes through: the refusals were the signature's
        resp = requests.post(relay.url, data=body, timeout=5, headers={SIGNATURE_HEADER: relay_signature(body, RELAY_KEY)})
        assert "bundleHash" in resp.json()["result"]


def test_a_bundle_that_does_not_land_leaves_its_nonce_to_the_next_send(chain: Devnet, env: dict,
                                                                       monkeypatch: pytest.MonkeyPatch):
    to, fees = chain.market.account("treasury").address, _fees(chain)
    with RelayDouble() as relay:  # takes the bundle, never forwards it: it does not land
        rt = _bundle_runtime(monkeypatch, relay, BUNDLE_BLOCKS="2")
        nonce0 = int(chain.rpc.call("eth_getTransactionCount", rt.sender.address, "pending"), 16)
        latest = int(chain.rpc.call("eth_blockNumber"), 16)
        first = rt.sender.send_many([Tx(to, "0x", 21_000, fees), Tx(to, "0x", 21_000, fees)], submitter=rt.submitter)
        assert [s.nonce for s in first] == [nonce0, nonce0 + 1]
        assert [b.block for b in relay.bundles] == [latest + 1, latest + 2]  # BUNDLE_BLOCKS=2
        again = rt.sender.send(to, "0x", 21_000, fees)  # the public route, as the approvals use it
    assert again.nonce == nonce0
    receipt = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", again.tx_hash), 10, "its receipt")
    assert receipt["status"] == "0x1"


def test_a_bundle_no_relay_takes_is_a_refusal_and_moves_no_nonce(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch):
    to, fees = chain.market.account("treasury").address, _fees(chain)
    with RelayDouble(refuse_with="bundle rejected") as relay:
        rt = _bundle_runtime(monkeypatch, relay)
        nonce0 = int(chain.rpc.call("eth_getTransactionCount", rt.sender.address, "pending"), 16)
        intents: list[list[tuple[str, int]]] = []
        (refused,) = rt.sender.send_many([Tx(to, "0x", 21_000, fees)], intents.append, submitter=rt.submitter)
        assert isinstance(refused, RpcError)
        assert "bundle rejected" in str(refused)
        assert [n for _, n in intents[0]] == [nonce0]  # the intent was recorded before sending, as on the public route
        assert rt.sender.send(to, "0x", 21_000, fees).nonce == nonce0


def test_the_public_route_sends_as_before_and_ignores_what_goes_ahead(chain: Devnet, env: dict,
                                                                       monkeypatch: pytest.MonkeyPatch):
    rt = runtime_with(monkeypatch, SUBMIT_ROUTE="public")
    assert isinstance(rt.submitter, PublicSubmitter)
    nonce0 = int(chain.rpc.call("eth_getTransactionCount", rt.sender.address, "pending"), 16)
    to, fees = chain.market.account("treasury").address, Fees(max_fee=100 * GWEI, tip=GWEI)
    txs = [Tx(to, "0x", 21_000, fees), Tx(to, "0x", 10**12, fees), Tx(to, "0x", 21_000, fees)]  # gas above any block

    results = rt.sender.send_many(txs, submitter=rt.submitter, ahead=["0x02"])

    assert isinstance(results[1], RpcError)
    assert [(r.nonce, r.bundle) for r in (results[0], results[2])] == [(nonce0, None), (nonce0 + 2, None)]
    receipt = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", results[2].tx_hash), 10, "its receipt")
    assert receipt["status"] == "0x1"  # the hole at nonce0 + 1 was filled
    assert rt.sender.send(to, "0x", 21_000, fees).nonce == nonce0 + 3
