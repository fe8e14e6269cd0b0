"""The local devnet: anvil running a complete Aave v3 market, for tests, the demo and benchmarks.

    with Devnet.start() as dn:          # anvil on a free port + a fresh market
        seed_borrowers(dn.market, 50)
        snap = dn.snapshot(); ...; dn.revert(snap)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from liqbot.chain.rpc import Rpc
from liqbot.devnet.anvil import Anvil, free_port
from liqbot.devnet.deploy import deploy_market
from liqbot.devnet.market import DEFAULT_RESERVES, Market, ReserveSpec
from liqbot.devnet.prices import PriceMove, move_price
from liqbot.devnet.seed import SeedResult, Shape, seed_borrowers
from liqbot.errors import DevnetError

__all__ = [
    "DEFAULT_RESERVES", "Devnet", "Market", "PriceMove", "ReserveSpec", "SeedResult", "Shape", "move_price", "seed_borrowers",
]


@dataclass
class Devnet:
    anvil: Anvil
    market: Market
    rpc: Rpc
    started_in_secs: float

    @classmethod
    def start(
        cls, port: int | None = None, block_time: float | None = None, log_path: Path | None = None,
        reserves: Sequence[ReserveSpec] = DEFAULT_RESERVES, host: str = "127.0.0.1", advertise: str | None = None,
    ) -> Devnet:
        t0 = time.monotonic()
        anvil = Anvil(port or free_port(), block_time=block_time, host=host, advertise=advertise, log_path=log_path).start()
        try:
            pid = anvil.process.pid if anvil.process else None
            market = deploy_market(anvil.http_url, anvil.ws_url, reserves, anvil_pid=pid,
                                   local_url=f"http://127.0.0.1:{anvil.port}")
        except BaseException:
            anvil.stop()
            raise
        return cls(anvil, market, Rpc(f"http://127.0.0.1:{anvil.port}"), round(time.monotonic() - t0, 3))

    def snapshot(self) -> str:
        return self.rpc.call("evm_snapshot")

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc.call("evm_revert", snapshot_id):
            raise DevnetError(f"evm_revert({snapshot_id}) failed: unknown snapshot")

    def mine(self, blocks: int = 1) -> None:
        self.rpc.call("anvil_mine", hex(blocks))

    def increase_time(self, seconds: int) -> None:
        self.rpc.call("evm_increaseTime", seconds)
        self.mine()

    def stop(self) -> None:
        self.rpc.close()
        self.anvil.stop()

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
