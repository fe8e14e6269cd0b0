"""Deploy a complete Aave v3 market onto a fresh anvil: v3.0 from the `@aave/core-v3` artifacts, or v3.6
compiled from `@aave-dao/aave-v3-origin` (v36.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache

from eth_account import Account as EthAccount

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import artifacts, dex, v36
from liqbot.devnet.anvil import CHAIN_ID, MNEMONIC
from liqbot.devnet.market import DEFAULT_RESERVES, RATE_STRATEGIES, Account, Market, Reserve, ReserveSpec
from liqbot.devnet.txs import TxSender, create_address
from liqbot.errors import DevnetError

ROLES = ("deployer", "liquidity", "liquidator", "treasury", "user4", "user5", "user6", "user7", "user8", "user9")
ZERO = "0x0000000000000000000000000000000000000000"
LIQUIDITY_USD = 1_000_000_000  # what the liquidity account supplies of every reserve, in USD
LIQUIDATOR_USD = 100_000_000  # the liquidator's inventory of every asset, in USD
FLASHLOAN_PREMIUM_BPS = 9  # as Aave's Ethereum market

AAVE_VERSIONS = ("3.0", "3.6")
DEFAULT_AAVE = "3.6"  # for `devnet up`, Devnet.start, the demo, bench and the test session

# Deploy order; each library is linked against those before it (FlashLoanLogic links BorrowLogic).
_LIBRARIES = {
    "3.0": ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic", "FlashLoanLogic",
            "ConfiguratorLogic"),
    "3.6": ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "PoolLogic", "FlashLoanLogic", "ConfiguratorLogic"),
}


def aave_artifact(version: str) -> Callable[[str], artifacts.Artifact]:
    if version == "3.0":
        return artifacts.aave
    if version == "3.6":
        return v36.artifact
    raise DevnetError(f"unknown Aave version {version!r}; choose one of {', '.join(AAVE_VERSIONS)}")


@cache
def devnet_accounts() -> dict[str, Account]:
    """anvil's funded accounts (from its default mnemonic); their keys are public and devnet-only."""
    EthAccount.enable_unaudited_hdwallet_features()
    out = {}
    for i, role in enumerate(ROLES):
        acct = EthAccount.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out[role] = Account(role, acct.address, "0x" + bytes(acct.key).hex())
    return out


def token_amount(spec: ReserveSpec, usd: int) -> int:
    return usd * 10**8 * 10**spec.decimals // spec.price


def deploy_market(
    rpc_url: str, ws_url: str, reserves: Sequence[ReserveSpec] = DEFAULT_RESERVES, anvil_pid: int | None = None,
    local_url: str | None = None, aave_version: str = DEFAULT_AAVE,
) -> Market:
    """Deploy Aave `aave_version` through `local_url` (default `rpc_url`); the market file records
    `rpc_url` / `ws_url`. v3.0 comes from core-v3; v3.6 differs where its constructors and reserve
    input do (one rate strategy per Pool, no stable debt, implementations locked at construction)."""
    art = aave_artifact(aave_version)
    v36_market = aave_version == "3.6"
    if v36_market:
        v36.compile_all()  # before the clock starts: the first run compiles
    started = time.monotonic()
    rpc = Rpc(local_url or rpc_url)
    accounts = devnet_accounts()
    me = accounts["deployer"].address
    tx = TxSender(rpc)
    deploy_block = int(rpc.call("eth_blockNumber"), 16) + 1

    provider = tx.deploy(me, art("PoolAddressesProvider"), "Aave Devnet Market", me)
    tx.call(me, provider, aave.SET_ACL_ADMIN, me)
    acl = tx.deploy(me, art("ACLManager"), provider)
    tx.call(me, provider, aave.SET_ACL_MANAGER, acl)
    for fn in (aave.ADD_POOL_ADMIN, aave.ADD_RISK_ADMIN, aave.ADD_EMERGENCY_ADMIN, aave.ADD_ASSET_LISTING_ADMIN):
        tx.call(me, acl, fn, me)

    libraries: dict[str, str] = {}
    for name in _LIBRARIES[aave_version]:
        libraries[name] = tx.deploy(me, art(name), libraries=libraries)

    if v36_market:
        strategy = tx.deploy(me, art("DefaultReserveInterestRateStrategyV2"), provider)
        pool_impl = tx.deploy(me, art("Pool"), provider, strategy, libraries=libraries)
    else:
        pool_impl = tx.deploy(me, art("Pool"), provider, libraries=libraries)
        tx.call(me, pool_impl, aave.INITIALIZE, provider)
    tx.call(me, provider, aave.SET_POOL_IMPL, pool_impl)
    configurator_impl = tx.deploy(me, art("PoolConfigurator"), libraries=libraries)
    if not v36_market:
        tx.call(me, configurator_impl, aave.INITIALIZE, provider)
    tx.call(me, provider, aave.SET_POOL_CONFIGURATOR_IMPL, configurator_impl)
    # The provider creates both proxies itself, as its first and second contract creations.
    pool, configurator = create_address(provider, 1), create_address(provider, 2)

    data_provider = tx.deploy(me, art("AaveProtocolDataProvider"), provider)
    tx.call(me, provider, aave.SET_POOL_DATA_PROVIDER, data_provider)

    aggregator = artifacts.ours("SettableAggregator")
    tokens = [tx.deploy(me, art("MintableERC20"), s.symbol, s.symbol, s.decimals) for s in reserves]
    feeds = [tx.deploy(me, aggregator, s.price, 8, f"{s.symbol} / USD") for s in reserves]
    oracle = tx.deploy(me, art("AaveOracle"), provider, tokens, feeds, ZERO, ZERO, 10**8)
    tx.call(me, provider, aave.SET_PRICE_ORACLE, oracle)

    treasury = accounts["treasury"].address
    if v36_market:
        a_token_impl = tx.deploy(me, art("AToken"), pool, ZERO, treasury)
        variable_impl = tx.deploy(me, art("VariableDebtToken"), pool, ZERO)
        impls = {"ATokenImpl": a_token_impl, "VariableDebtTokenImpl": variable_impl, "InterestRateStrategy": strategy}
    else:
        a_token_impl = tx.deploy(me, art("AToken"), pool)
        stable_impl = tx.deploy(me, art("StableDebtToken"), pool)
        variable_impl = tx.deploy(me, art("VariableDebtToken"), pool)
        strategies = {v: tx.deploy(me, art("DefaultReserveInterestRateStrategy"), provider, *p)
                      for v, p in RATE_STRATEGIES.items()}
        impls = {"ATokenImpl": a_token_impl, "StableDebtTokenImpl": stable_impl, "VariableDebtTokenImpl": variable_impl,
                 "VolatileRateStrategy": strategies[True], "StableRateStrategy": strategies[False]}
    tx.settle()

    for spec, token in zip(reserves, tokens, strict=True):
        s = spec.symbol
        names = (f"Aave Devnet {s}", f"a{s}", f"Aave Devnet Variable Debt {s}", f"variableDebt{s}")
        if v36_market:
            init = (a_token_impl, variable_impl, token, *names, b"", v36.rate_data(RATE_STRATEGIES[spec.volatile]))
            tx.call(me, configurator, v36.INIT_RESERVES, [init], gas=8_000_000, label=f"initReserves {s}")
        else:
            init = (a_token_impl, stable_impl, variable_impl, spec.decimals, strategies[spec.volatile], token, treasury,
                    ZERO, *names, f"Aave Devnet Stable Debt {s}", f"stableDebt{s}", b"")
            tx.call(me, configurator, aave.INIT_RESERVES, [init], gas=8_000_000, label=f"initReserves {s}")
        tx.call(me, configurator, aave.CONFIGURE_RESERVE_AS_COLLATERAL, token, spec.ltv,
                spec.liquidation_threshold, spec.liquidation_bonus)
        tx.call(me, configurator, aave.SET_RESERVE_BORROWING, token, True)
        tx.call(me, configurator, aave.SET_RESERVE_FACTOR, token, spec.reserve_factor)
        tx.call(me, configurator, aave.SET_LIQUIDATION_PROTOCOL_FEE, token, spec.protocol_fee)
        tx.call(me, configurator, aave.SET_RESERVE_FLASH_LOANING, token, True)  # initReserves leaves it off
    _set_flashloan_premium(tx, me, configurator, aave_version)
    _fund(tx, me, accounts, reserves, tokens, pool)

    reserve_info = {}
    for spec, token, feed in zip(reserves, tokens, feeds, strict=True):
        a_tok, stable_tok, var_tok = aave.GET_RESERVE_TOKENS_ADDRESSES.decode(
            rpc.eth_call(data_provider, aave.GET_RESERVE_TOKENS_ADDRESSES.calldata(token)))
        reserve_info[spec.symbol] = Reserve(spec.symbol, token, spec.decimals, feed, a_tok, var_tok, stable_tok)

    dex_tokens = [dex.DexToken(s.symbol, t, s.decimals, s.price) for s, t in zip(reserves, tokens, strict=True)]
    dex_contracts, pools = dex.deploy_dex(tx, me, accounts["liquidity"].address, dex_tokens)

    contracts = {
        "PoolAddressesProvider": provider, "ACLManager": acl, "Pool": pool, "PoolImpl": pool_impl,
        "PoolConfigurator": configurator, "PoolConfiguratorImpl": configurator_impl,
        "AaveProtocolDataProvider": data_provider, "AaveOracle": oracle, **impls, **dex_contracts,
    }
    rpc.close()
    return Market(
        chain_id=CHAIN_ID, rpc_url=rpc_url, ws_url=ws_url, deploy_block=deploy_block, contracts=contracts,
        reserves=reserve_info, accounts=accounts, anvil_pid=anvil_pid,
        deployed_in_secs=round(time.monotonic() - started, 3), libraries=libraries, aave_version=aave_version,
        pools=pools,
    )


def _set_flashloan_premium(tx: TxSender, me: str, configurator: str, aave_version: str) -> None:
    """9 bps, as mainnet markets charge. v3.0 splits the premium between suppliers and the treasury, so
    the treasury share is set to all of it: what v3.4+ (one `updateFlashloanPremium`) hardcodes, and the
    borrower pays the same 9 bps either way."""
    if aave_version == "3.0":
        tx.call(me, configurator, aave.UPDATE_FLASHLOAN_PREMIUM_TOTAL, FLASHLOAN_PREMIUM_BPS)
        tx.call(me, configurator, aave.UPDATE_FLASHLOAN_PREMIUM_TO_PROTOCOL, 10_000)
    else:
        tx.call(me, configurator, aave.UPDATE_FLASHLOAN_PREMIUM, FLASHLOAN_PREMIUM_BPS)


def _fund(tx: TxSender, me: str, accounts: dict[str, Account], reserves: Sequence[ReserveSpec],
          tokens: list[str], pool: str) -> None:
    """Deep liquidity in every reserve, and an inventory of every asset for the liquidator."""
    liquidity, liquidator = accounts["liquidity"].address, accounts["liquidator"].address
    for spec, token in zip(reserves, tokens, strict=True):
        tx.call(me, token, aave.MINT_TO, liquidity, token_amount(spec, LIQUIDITY_USD))
        tx.call(me, token, aave.MINT_TO, liquidator, token_amount(spec, LIQUIDATOR_USD))
    tx.settle()
    for spec, token in zip(reserves, tokens, strict=True):
        tx.call(liquidity, token, aave.APPROVE, pool, aave.UINT256_MAX)
        tx.call(liquidity, pool, aave.SUPPLY, token, token_amount(spec, LIQUIDITY_USD), liquidity, 0)
    tx.settle()
