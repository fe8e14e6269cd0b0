"""Move devnet prices the two ways a real feed changes: a new answer, or a new source."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import artifacts, dex
from liqbot.devnet.market import Market
from liqbot.devnet.txs import TxSender
from liqbot.errors import DevnetError

FEED_DECIMALS = 8


@dataclass(frozen=True)
class PriceMove:
    symbol: str
    old: int  # feed answer, 8 decimals
    new: int
    feed: str
    block: int | None  # None when sent without waiting (`wait=False`): still pending
    tx_hash: str = ""  # the oracle change's transaction

    @property
    def pct(self) -> float:  # display only
        return (self.new - self.old) * 100 / self.old


def new_answer(old: int, *, pct: str | float | None = None, usd: str | float | None = None) -> int:
    """The feed answer (8 decimals) for a move by `pct` percent or to `usd`; refuses a result <= 0."""
    if (pct is None) == (usd is None):
        raise DevnetError("give exactly one of --pct or --usd")
    try:
        if usd is not None:
            answer = int(Decimal(str(usd)) * 10**FEED_DECIMALS)
        else:
            answer = int(Decimal(old) * (100 + Decimal(str(pct))) / 100)
    except InvalidOperation:
        raise DevnetError(f"not a number: {usd if usd is not None else pct!r}") from None
    if answer <= 0:
        raise DevnetError(f"the new price must be above 0 (got {Decimal(answer) / 10**FEED_DECIMALS} USD)")
    return answer


def move_price(
    market: Market, symbol: str, *, pct: str | float | None = None, usd: str | float | None = None,
    swap_source: bool = False, wait: bool = True,
) -> PriceMove:
    """Set the feed behind `symbol` (AnswerUpdated), or with `swap_source` point the oracle at a new
    feed (AssetSourceUpdated), as a governance source change would; then swap the devnet's Uniswap pools
    holding `symbol` to the new oracle ratios, as arbitrage would. `block` is the oracle change's block."""
    reserve = market.reserve(symbol)
    rpc = Rpc(market.rpc_url)
    try:
        oracle = market.contracts["AaveOracle"]
        feed = aave.GET_SOURCE_OF_ASSET.decode(rpc.eth_call(oracle, aave.GET_SOURCE_OF_ASSET.calldata(reserve.address)))
        old = aave.LATEST_ANSWER.decode(rpc.eth_call(feed, aave.LATEST_ANSWER.calldata()))
        answer = new_answer(old, pct=pct, usd=usd)
        owner = market.account("deployer").address
        tx = TxSender(rpc)
        if swap_source:
            feed = tx.deploy(owner, artifacts.ours("SettableAggregator"), answer, FEED_DECIMALS, f"{reserve.symbol} / USD")
            tx.call(owner, oracle, aave.SET_ASSET_SOURCES, [reserve.address], [feed])
        else:
            tx.call(owner, feed, aave.SET_ANSWER, answer)
        oracle_txs = 2 if swap_source else 1
        sent = tx.sent_hashes()[oracle_txs - 1]
        if not wait:  # `--no-wait`: the update stays pending for whoever watches the mempool
            return PriceMove(reserve.symbol, old, answer, feed, None, sent)
        _queue_dex_move(rpc, tx, market, reserve.symbol, answer)  # same settle: no extra block under interval mining
        receipts = tx.settle()
        return PriceMove(reserve.symbol, old, answer, feed, int(receipts[oracle_txs - 1]["blockNumber"], 16), sent)
    finally:
        rpc.close()


def _queue_dex_move(rpc: Rpc, tx: TxSender, market: Market, symbol: str, answer: int) -> None:
    """Queue the swaps that bring every pool holding `symbol` to the oracle's new ratios; a market file
    from before the devnet had a DEX has no pools and is left alone."""
    if not market.pools:
        return
    reserves = list(market.reserves.values())
    prices = aave.GET_ASSETS_PRICES.decode(rpc.eth_call(
        market.contracts["AaveOracle"], aave.GET_ASSETS_PRICES.calldata([r.address for r in reserves])))
    tokens = {r.symbol: dex.DexToken(r.symbol, r.address, r.decimals, answer if r.symbol == symbol else price)
              for r, price in zip(reserves, prices, strict=True)}
    dex.move_dex(rpc, tx, market.account("liquidity").address, market.contracts["SwapRouter"], market.pools, tokens, symbol)
