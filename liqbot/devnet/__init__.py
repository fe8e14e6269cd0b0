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
from liqbot.devnet.anvil import Anvil, block_secs, free_port, interval_mining, set_block_time
from liqbot.devnet.deploy import AAVE_VERSIONS, DEFAULT_AAVE, deploy_market
from liqbot.devnet.market import DEFAULT_RESERVES, Market, ReserveSpec
from liqbot.devnet.prices import PriceMove, move_price
from liqbot.devnet.seed import SeedResult, Shape, seed_borrowers
from liqbot.errors import DevnetError

__all__ = [
    "AAVE_VERSIONS", "DEFAULT_AAVE", "DEFAULT_RESERVES", "Devnet", "Market", "PriceMove", "ReserveSpec", "SeedResult",
    "Shape", "interval_mining", "move_price", "seed_borrowers",
]


@dataclass
class Devnet:
    anvil: Anvil
    market: Market
    rpc: Rpc
    started_in_secs: float
    block_time: int | None = None  # None: automine

    @classmethod
    def start(
        cls, port: int | None = None, block_time: int | None = None, log_path: Path | None = None,
        reserves: Sequence[ReserveSpec] = DEFAULT_RESERVES, host: str = "127.0.0.1", advertise: str | None = None,
        aave_version: str = DEFAULT_AAVE,
    ) -> Devnet:
        """`block_time`: whole seconds per block once deployed; the deploy itself runs under automine, since
        under interval mining each of its transactions would wait for a block (and anvil drops some)."""
        t0 = time.monotonic()
        secs = block_secs(block_time) if block_time else None
        anvil = Anvil(port or free_port(), host=host, advertise=advertise, log_path=log_path).start()
        rpc = Rpc(f"http://127.0.0.1:{anvil.port}")
        try:
            pid = anvil.process.pid if anvil.process else None
            market = deploy_market(anvil.http_url, anvil.ws_url, reserves, anvil_pid=pid,
                                   local_url=f"http://127.0.0.1:{anvil.port}", aave_version=aave_version)
            if secs:
                set_block_time(rpc, secs)
        except BaseException:
            rpc.close()
            anvil.stop()
            raise
        return cls(anvil, market, rpc, round(time.monotonic() - t0, 3), secs)

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
