"""Our flash-loan liquidator contract (liqbot/contracts/FlashLiquidator.sol) and the Uniswap v3 routes it
sells collateral through: calldata, route finding, and the start-up check of a deployed instance."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc
from liqbot.errors import ConfigError, RpcError

_ADDR = "address"

# FlashLiquidator
LIQUIDATE = Function("liquidate(address,address,address,uint256,bytes,uint256)", "uint256")
SWEEP = Function("sweep(address,address)")
EXECUTE_OPERATION = Function("executeOperation(address,uint256,uint256,address,bytes)", "bool")
LIQBOT_LIQUIDATOR = Function("LIQBOT_LIQUIDATOR()", "uint256")
POOL = Function("POOL()", _ADDR)
ADDRESSES_PROVIDER = Function("ADDRESSES_PROVIDER()", _ADDR)
ROUTER = Function("ROUTER()", _ADDR)
OWNER = Function("owner()", _ADDR)
VERSION = 1  # what LIQBOT_LIQUIDATOR() returns for the entry points above

# Uniswap v3: SwapRouter, UniswapV3Factory, UniswapV3Pool
FACTORY = Function("factory()", _ADDR)
GET_POOL = Function("getPool(address,address,uint24)", _ADDR)
LIQUIDITY = Function("liquidity()", "uint128")
FEE_TIERS = (100, 500, 3000, 10_000)

_VAR = "LIQUIDATOR_CONTRACT"


def encode_path(tokens: Sequence[str], fees: Sequence[int]) -> bytes:
    """Uniswap v3's packed path: token, then (fee: uint24, token) per hop."""
    if len(tokens) != len(fees) + 1 or not fees:
        raise ValueError(f"a path needs one fee per hop: {len(tokens)} tokens, {len(fees)} fees")
    out = bytes.fromhex(tokens[0][2:])
    for fee, token in zip(fees, tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + bytes.fromhex(token[2:])
    return out


def liquidate_calldata(collateral: str, debt: str, user: str, debt_to_cover: int, path: bytes, min_profit: int) -> str:
    """`liquidate(...)` for the owner to send (or eth_call: it returns the profit)."""
    return LIQUIDATE.calldata(collateral, debt, user, debt_to_cover, path, min_profit)


def find_path(rpc: Rpc, factory: str, collateral: str, debt: str, hubs: Sequence[str] = ()) -> bytes | None:
    """A route selling `collateral` for `debt`: a direct pool if there is one, else through the first of `hubs`
    (e.g. the market's WETH or USDC) pooled with both. Per hop, the fee tier whose pool has the most
    in-range liquidity. Two batched round trips; None when no route exists, b"" for the same asset."""
    if collateral.lower() == debt.lower():
        return b""
    hubs = [h for h in hubs if h.lower() not in (collateral.lower(), debt.lower())]
    pairs = [(collateral, debt)] + [p for h in hubs for p in ((collateral, h), (h, debt))]
    found = rpc.batch([("eth_call", [{"to": factory, "data": GET_POOL.calldata(a, b, fee)}, "latest"])
                       for a, b in pairs for fee in FEE_TIERS])
    pools = [(pairs[i // len(FEE_TIERS)], FEE_TIERS[i % len(FEE_TIERS)], GET_POOL.decode(raw)) for i, raw in enumerate(found)]
    pools = [p for p in pools if int(p[2], 16) != 0]
    liquidity = rpc.batch([("eth_call", [{"to": pool, "data": LIQUIDITY.calldata()}, "latest"]) for _, _, pool in pools])
    best: dict[tuple[str, str], tuple[int, int]] = {}  # pair -> (liquidity, fee)
    for (pair, fee, _), raw in zip(pools, liquidity, strict=True):
        have = LIQUIDITY.decode(raw)
        if have > 0 and have > best.get(pair, (0, 0))[0]:
            best[pair] = (have, fee)
    if (collateral, debt) in best:
        return encode_path([collateral, debt], [best[collateral, debt][1]])
    for hub in hubs:
        if (collateral, hub) in best and (hub, debt) in best:
            return encode_path([collateral, hub, debt], [best[collateral, hub][1], best[hub, debt][1]])
    return None


def check_liquidator(rpc: Rpc, address: str, pool: str, owner: str) -> int:
    """Refuse to start against anything but our contract, bound to this market's Pool and owned by the
    account that will call it (anyone else's `liquidate` reverts). Returns its version."""
    if rpc.call("eth_getCode", address, "latest") in ("0x", "0x0", ""):
        raise ConfigError(f"{_VAR}: no contract at {address}; expected the address `liqbot contract deploy` printed")
    try:
        version = LIQBOT_LIQUIDATOR.decode(rpc.eth_call(address, LIQBOT_LIQUIDATOR.calldata()))
    except (RpcError, DecodingError):
        raise ConfigError(f"{_VAR}: {address} is a contract but not liqbot's FlashLiquidator (no LIQBOT_LIQUIDATOR()); "
                          "expected the address `liqbot contract deploy` printed") from None
    if version != VERSION:
        raise ConfigError(f"{_VAR}: {address} is FlashLiquidator version {version}; this liqbot expects version {VERSION} "
                          "(deploy it again with `liqbot contract deploy`)")
    raws = rpc.batch([("eth_call", [{"to": address, "data": fn.calldata()}, "latest"]) for fn in (POOL, OWNER)])
    bound, owned_by = POOL.decode(raws[0]), OWNER.decode(raws[1])
    if bound.lower() != pool.lower():
        raise ConfigError(f"{_VAR}: {address} liquidates on Pool {bound}; "
                          f"expected this market's Pool {to_checksum_address(pool)}")
    if owned_by.lower() != owner.lower():
        raise ConfigError(f"{_VAR}: {address} is owned by {owned_by}; expected the liquidator account "
                          f"{to_checksum_address(owner)} (only its owner may call it)")
    return version

