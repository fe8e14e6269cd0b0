"""What a pending transaction will do to the market's prices, learned by simulating it, not by decoding it:
one feed type or a hundred, an oracle source swap or an adapter, the AaveOracle answers after it as it will."""

from __future__ import annotations

from collections.abc import Sequence

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.domain.plan import PendingUpdate


def prices_after(rpc: Rpc, update: PendingUpdate, oracle: str, assets: Sequence[str]) -> dict[str, int] | None:
    """The oracle's price of every asset once `update` is mined: [the update, getAssetsPrices] in one
    eth_simulateV1 on the latest block. None when the update reverts there (replaced, or already mined)."""
    calls = [update.call(), {"to": oracle, "input": aave.GET_ASSETS_PRICES.calldata(list(assets))}]
    done, prices = rpc.call("eth_simulateV1", {"blockStateCalls": [{"calls": calls}]}, "latest")[0]["calls"]
    if int(done["status"], 16) != 1 or int(prices["status"], 16) != 1:
        return None
    return dict(zip(assets, aave.GET_ASSETS_PRICES.decode(prices["returnData"]), strict=True))
