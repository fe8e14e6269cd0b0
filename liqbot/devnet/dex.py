"""A real Uniswap v3 on the devnet, so a flash liquidation can sell the seized collateral for the debt.

Every pair of reserves gets a pool (fee 0.3%) at the oracle price with deep full-range liquidity from
the `liquidity` account; `move_dex` keeps the pools on the oracle when a price moves, or every simulated
profit would be measured against a stale DEX price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Function
from liqbot.chain.liquidator import LIQUIDITY
from liqbot.chain.rpc import Rpc
from liqbot.devnet import artifacts
from liqbot.devnet.txs import TxSender
from liqbot.domain.uniswap import amount_in_to_reach, sort_tokens, sqrt_price_x96

FEE = 3000  # 0.3%, tick spacing 60
TICK_LOWER, TICK_UPPER = -887220, 887220  # full range for tick spacing 60
DEPTH_USD = 100_000_000  # per side per pool: a 300k USD swap moves the price about 0.6%
POOL_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"  # periphery PoolAddress
DEADLINE = 2**63  # the devnet's clock is not the point of these swaps
ZERO = "0x0000000000000000000000000000000000000000"  # no token descriptor: positions need no tokenURI
CONTRACTS = ("UniswapV3Factory", "SwapRouter", "QuoterV2", "NonfungiblePositionManager")

# UniswapV3Pool (the factory's getPool and the pool's liquidity(): chain/liquidator.py)
SLOT0 = Function("slot0()", "uint160,int24,uint16,uint16,uint16,uint8,bool")  # sqrtPriceX96, tick, ...
TOKEN0 = Function("token0()", "address")
TOKEN1 = Function("token1()", "address")
# NonfungiblePositionManager
CREATE_AND_INITIALIZE_POOL = Function("createAndInitializePoolIfNecessary(address,address,uint24,uint160)", "address")
# MintParams: token0, token1, fee, tickLower, tickUpper, amount0Desired, amount1Desired, amount0Min, amount1Min,
# recipient, deadline -> tokenId, liquidity, amount0, amount1
MINT_POSITION = Function(
    "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))",
    "uint256,uint128,uint256,uint256",
)
# SwapRouter. ExactInputSingleParams: tokenIn, tokenOut, fee, recipient, deadline, amountIn, amountOutMinimum,
# sqrtPriceLimitX96 (0: none) -> amountOut
EXACT_INPUT_SINGLE = Function("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))", "uint256")
# QuoterV2 (not a view; call it with eth_call). QuoteExactInputSingleParams: tokenIn, tokenOut, amountIn, fee,
# sqrtPriceLimitX96 -> amountOut, sqrtPriceX96After, initializedTicksCrossed, gasEstimate
QUOTE_EXACT_INPUT_SINGLE = Function(
    "quoteExactInputSingle((address,address,uint256,uint24,uint160))", "uint256,uint160,uint32,uint256"
)

POOL_CREATE_GAS = 6_000_000  # the pool's CREATE2 deployment is ~4.5M
MINT_POSITION_GAS = 1_000_000
SWAP_GAS = 1_000_000


@dataclass(frozen=True)
class DexToken:
    symbol: str
    address: str
    decimals: int
    price: int  # USD, 8 decimals (the oracle's unit)


def pool_address(factory: str, token_a: str, token_b: str, fee: int = FEE) -> str:
    """The CREATE2 address the factory gives the pool (PoolAddress.computeAddress)."""
    token0, token1 = sort_tokens(token_a, token_b)
    salt = keccak(encode(["address", "address", "uint24"], [token0, token1, fee]))
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + bytes.fromhex(POOL_INIT_CODE_HASH[2:]))
    return to_checksum_address(raw[12:])


def pair_key(a: str, b: str) -> str:
    return f"{a}/{b}"


def deploy_dex(tx: TxSender, deployer: str, liquidity: str, tokens: Sequence[DexToken]) -> tuple[dict[str, str], dict[str, str]]:
    """Deploy the factory and periphery, one pool per pair of `tokens` at their prices, and DEPTH_USD per
    side of full-range liquidity owned by `liquidity`; returns (contracts, pools keyed "SYM0/SYM1" in the
    order of `tokens`). The first token stands in for WETH9: nothing here ever sends ETH."""
    weth = tokens[0].address
    factory = tx.deploy(deployer, artifacts.uniswap("UniswapV3Factory"))
    router = tx.deploy(deployer, artifacts.uniswap("SwapRouter"), factory, weth)
    quoter = tx.deploy(deployer, artifacts.uniswap("QuoterV2"), factory, weth)
    manager = tx.deploy(deployer, artifacts.uniswap("NonfungiblePositionManager"), factory, weth, ZERO)
    contracts = {"UniswapV3Factory": factory, "SwapRouter": router, "QuoterV2": quoter, "NonfungiblePositionManager": manager}

    pools: dict[str, str] = {}
    positions = []
    for a, b in combinations(tokens, 2):
        t0, t1 = (a, b) if sort_tokens(a.address, b.address)[0] == a.address else (b, a)
        sqrt_price = sqrt_price_x96(t0.price, t1.price, t0.decimals, t1.decimals)
        tx.call(deployer, manager, CREATE_AND_INITIALIZE_POOL, t0.address, t1.address, FEE, sqrt_price,
                gas=POOL_CREATE_GAS, label=f"create pool {a.symbol}/{b.symbol}")
        pools[pair_key(a.symbol, b.symbol)] = pool_address(factory, a.address, b.address)
        positions.append((t0, t1, _usd_amount(t0, DEPTH_USD), _usd_amount(t1, DEPTH_USD)))
    tx.settle()  # the pools exist before the liquidity account mints into them

    pairs_per_token = len(tokens) - 1
    for t in tokens:
        tx.call(liquidity, t.address, aave.MINT_TO, liquidity, _usd_amount(t, DEPTH_USD) * pairs_per_token)
        tx.call(liquidity, t.address, aave.APPROVE, manager, aave.UINT256_MAX)
        tx.call(liquidity, t.address, aave.APPROVE, router, aave.UINT256_MAX)  # for move_dex
    for t0, t1, amount0, amount1 in positions:
        params = (t0.address, t1.address, FEE, TICK_LOWER, TICK_UPPER, amount0, amount1, 0, 0, liquidity, DEADLINE)
        tx.call(liquidity, manager, MINT_POSITION, params, gas=MINT_POSITION_GAS, label=f"mint position {t0.symbol}/{t1.symbol}")
    tx.settle()
    return contracts, pools


def _usd_amount(token: DexToken, usd: int) -> int:
    return usd * 10**8 * 10**token.decimals // token.price


def move_dex(rpc: Rpc, tx: TxSender, liquidity: str, router: str, pools: Mapping[str, str],
             tokens: Mapping[str, DexToken], symbol: str) -> int:
    """Queue, from `liquidity`, one swap per pool holding `symbol` that ends at the ratio of the prices in
    `tokens` (the oracle's after the move): exactInputSingle with the target as sqrtPriceLimitX96, which
    stops there and pulls only what it used. amountIn is twice the pool math's need, minted just before
    (MintableERC20.mint is open to anyone), so a pool is never left short of its target. Returns the
    number of swaps queued; the caller settles."""
    queued = 0
    for key, pool in pools.items():
        a, b = key.split("/")
        if symbol not in (a, b):
            continue
        t0, t1 = sorted((tokens[a], tokens[b]), key=lambda t: int(t.address, 16))
        target = sqrt_price_x96(t0.price, t1.price, t0.decimals, t1.decimals)
        sqrt_now = SLOT0.decode(rpc.eth_call(pool, SLOT0.calldata()))[0]
        active = LIQUIDITY.decode(rpc.eth_call(pool, LIQUIDITY.calldata()))
        zero_for_one, need = amount_in_to_reach(active, sqrt_now, target, FEE)
        if need == 0:
            continue
        token_in, token_out = (t0, t1) if zero_for_one else (t1, t0)
        amount_in = 2 * need + 1
        tx.call(liquidity, token_in.address, aave.MINT_TO, liquidity, amount_in)
        params = (token_in.address, token_out.address, FEE, liquidity, DEADLINE, amount_in, 0, target)
        tx.call(liquidity, router, EXACT_INPUT_SINGLE, params, gas=SWAP_GAS, label=f"move pool {key}")
        queued += 1
    return queued
