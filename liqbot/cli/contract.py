"""`liqbot contract deploy`: our FlashLiquidator for the configured market, signed by the liquidator key."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from eth_utils import is_address, to_checksum_address
from rich.console import Console

from liqbot.chain.rpc import Rpc
from liqbot.cli.ops import MarketOpt, _settings
from liqbot.errors import ConfigError, LiqbotError, RpcError

contract_app = typer.Typer(help="Our on-chain liquidator contract.", no_args_is_help=True)
console = Console()
NAME = "FlashLiquidator"


@contract_app.command()
def deploy(
    market: MarketOpt = None,
    router: Annotated[str | None, typer.Option(
        "--router", help="Uniswap v3 SwapRouter that sells the seized collateral (default: the market file's).")] = None,
) -> None:
    """Deploy FlashLiquidator (owner: the liquidator key) and record it where the settings read LIQUIDATOR_CONTRACT:
    the market file when one is used, else print the export line."""
    from liqbot.config import LIQUIDATOR_CONTRACT_KEY, LIQUIDATOR_KEY, MarketFile
    from liqbot.devnet import artifacts
    from liqbot.devnet.txs import constructor_data
    from liqbot.runtime import checked_liquidator

    settings = _settings(market).require("rpc_url", "pool_addresses_provider", LIQUIDATOR_KEY,
                                         command="liqbot contract deploy")
    assert settings.rpc_url is not None
    market_file = settings.market_file
    known = MarketFile.read(market_file, "MARKET_FILE").get("contracts", "SwapRouter", default=None) if market_file else None
    router = _router(router or known, market_file)
    key = settings.private_key()
    artifact = artifacts.ours(NAME)
    rpc = Rpc(settings.rpc_url, timeout=settings.rpc_timeout_secs)
    try:
        data = constructor_data(artifact, [settings.pool_addresses_provider, router])
        address, gas_used = _deploy_signed(rpc, key, data, settings.max_priority_fee_wei, settings.max_gas_price_wei,
                                           settings.receipt_timeout_secs)
        checked_liquidator(rpc, settings.model_copy(update={"liquidator_contract": address}))  # what start-up will check
    finally:
        rpc.close()
    console.print(f"{NAME} deployed at [bold]{address}[/] ({artifact.deployed_size:,} bytes of code, "
                  f"{gas_used:,} gas); router {router}, owner {Account.from_key(key).address}")
    if market_file is not None:
        _record(market_file, LIQUIDATOR_CONTRACT_KEY, address)
        console.print(f"written to {market_file} (contracts.{LIQUIDATOR_CONTRACT_KEY}): LIQUIDATOR_CONTRACT follows it")
        if os.environ.get("LIQUIDATOR_CONTRACT"):
            console.print("[yellow]LIQUIDATOR_CONTRACT is set in the environment and wins over the market file: "
                          f"export LIQUIDATOR_CONTRACT={address}[/]")
    else:
        print(f"export LIQUIDATOR_CONTRACT={address}")


def _router(router: str | None, market_file: Path | None) -> str:
    if not router:
        where = f"{market_file} has no contracts.SwapRouter" if market_file else "no market file is used"
        raise ConfigError(f"no Uniswap v3 router: {where}; pass --router ADDRESS (the SwapRouter the contract sells "
                          "seized collateral through)")
    if not is_address(router) or int(router, 16) == 0:
        raise ConfigError(f"--router: {router!r} is not a non-zero 0x-address")
    return to_checksum_address(router)


def _deploy_signed(rpc: Rpc, key: str, data: str, tip: int, max_fee_cap: int, timeout: float) -> tuple[str, int]:
    """One EIP-1559 contract creation signed locally (real nodes hold no unlocked account); waits for it."""
    me = Account.from_key(key)
    block, nonce, chain_id = rpc.batch([("eth_getBlockByNumber", ["latest", False]),
                                        ("eth_getTransactionCount", [me.address, "pending"]), ("eth_chainId", [])])
    try:
        gas = int(rpc.call("eth_estimateGas", {"from": me.address, "data": data}), 16)
    except RpcError as exc:
        raise LiqbotError(f"{NAME} deploy would fail: {exc}") from None
    base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
    signed = me.sign_transaction({"chainId": int(chain_id, 16), "nonce": int(nonce, 16), "to": None, "data": data,
                                  "gas": gas * 12 // 10, "value": 0, "maxFeePerGas": min(2 * base_fee + tip, max_fee_cap),
                                  "maxPriorityFeePerGas": min(tip, max_fee_cap), "type": 2})
    tx_hash = rpc.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    console.print(f"sent {tx_hash}, waiting for it to be mined")
    deadline = time.monotonic() + timeout
    while (receipt := rpc.call("eth_getTransactionReceipt", tx_hash)) is None:
        if time.monotonic() > deadline:
            raise LiqbotError(f"{NAME} deploy {tx_hash} not mined within {timeout:.0f}s; check it before deploying again")
        time.sleep(0.5)
    if int(receipt["status"], 16) != 1:
        raise LiqbotError(f"{NAME} deploy {tx_hash} reverted")
    return to_checksum_address(receipt["contractAddress"]), int(receipt["gasUsed"], 16)


def _record(market_file: Path, key: str, address: str) -> None:
    """Into the market file's contracts, every other field kept; written whole, then renamed."""
    from liqbot.config import MarketFile

    mf = MarketFile.read(market_file, "MARKET_FILE")
    contracts = mf.get("contracts")
    if not isinstance(contracts, dict):
        raise mf.missing("contracts")
    data = mf.data
    contracts[key] = address
    tmp = market_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(market_file)
