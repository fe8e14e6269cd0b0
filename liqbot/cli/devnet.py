"""`liqbot devnet ...`: a local Aave v3 market for development, tests and the demo."""

from __future__ import annotations

import json
import os
import signal
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from liqbot.devnet import AAVE_VERSIONS, DEFAULT_AAVE, Devnet, Market, move_price, seed_borrowers
from liqbot.devnet.anvil import stop_group
from liqbot.errors import DevnetError

AaveVersion = Enum("AaveVersion", {v: v for v in AAVE_VERSIONS}, type=str)
DEFAULT_AAVE_VERSION = AaveVersion(DEFAULT_AAVE)
devnet_app = typer.Typer(help="A local chain running the real Aave v3 contracts.", no_args_is_help=True)
console = Console()


def state_dir() -> Path:
    return Path(os.environ.get("LIQBOT_DEVNET_DIR", ".devnet"))


def _state_file() -> Path:
    return state_dir() / "state.json"


def last_market_file() -> Path:
    """The market file of the devnet `up` started last."""
    state = _state_file()
    if state.is_file():
        return Path(json.loads(state.read_text())["market"])
    default = state_dir() / "market.json"
    if default.is_file():
        return default
    raise DevnetError("no devnet is running here (start one with `liqbot devnet up`) and no --market was given")


MarketOpt = Annotated[Path | None, typer.Option("--market", help="Market file (default: the devnet `up` started last).")]


def _load(market: Path | None) -> Market:
    return Market.load(market or last_market_file())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@devnet_app.command()
def up(
    port: Annotated[int, typer.Option(help="Port for HTTP and WebSocket.", min=1, max=65535)] = 8545,
    block_time: Annotated[
        int | None, typer.Option("--block-time", help="Whole seconds per block once deployed (default: automine).", min=1)
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the market file.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 inside a container).")] = "127.0.0.1",
    advertise: Annotated[str | None, typer.Option(help="Host name written to the market file (e.g. devnet).")] = None,
    aave: Annotated[AaveVersion, typer.Option(
        "--aave", help="Aave version: 3.0 (core-v3) or 3.6 (compiled once, then cached).")] = DEFAULT_AAVE_VERSION,
) -> None:
    """Start anvil, deploy a complete Aave v3 market, write the market file, run until Ctrl-C."""
    out = (out or state_dir() / "market.json").resolve()
    state = _state_file()
    if state.is_file():
        prev = json.loads(state.read_text())
        if _alive(prev["up_pid"]):
            raise DevnetError(f"a devnet is already running (pid {prev['up_pid']}, {prev['rpc_url']}); "
                              "stop it with `liqbot devnet down`")
    log_path = out.parent / "anvil.log" if out.parent.is_dir() else None
    stop = {"now": False, "deploying": True}

    def _on_signal(signum: int, _frame: object) -> None:
        """During the deploy, unwind at once so that Devnet.start stops anvil; after it, leave the loop below."""
        deploying, stop["now"] = stop["deploying"] and not stop["now"], True
        if deploying:
            raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    dn = Devnet.start(port=port, block_time=block_time, log_path=log_path, host=host, advertise=advertise,
                      aave_version=aave.value)
    try:
        stop["deploying"] = False
        dn.market.save(out)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"up_pid": os.getpid(), "anvil_pid": dn.anvil.process.pid, "market": str(out),
                                     "rpc_url": dn.market.rpc_url, "block_time": dn.block_time}))
        _print_market(dn, out)
        if dn.block_time:
            console.print(f"interval mining: a block every {dn.block_time} s")
        while not stop["now"]:
            if dn.anvil.process.poll() is not None:
                raise DevnetError(f"anvil exited unexpectedly with code {dn.anvil.process.returncode}")
            time.sleep(0.2)
        console.print("stopping the devnet")
    finally:
        dn.stop()
        if state.is_file() and json.loads(state.read_text()).get("up_pid") == os.getpid():
            state.unlink()


def _print_market(dn: Devnet, out: Path) -> None:
    m = dn.market
    console.print(f"[bold green]Aave v{m.aave_version} devnet ready[/] in {dn.started_in_secs:.2f} s "
                  f"(deploy {m.deployed_in_secs:.2f} s) at {m.rpc_url} / {m.ws_url}, chain {m.chain_id}")
    table = Table("contract", "address", box=None)
    for name in ("PoolAddressesProvider", "Pool", "PoolConfigurator", "AaveOracle", "AaveProtocolDataProvider", "ACLManager"):
        table.add_row(name, m.contracts[name])
    for name in ("UniswapV3Factory", "SwapRouter", "QuoterV2"):
        if name in m.contracts:
            table.add_row(name, m.contracts[name])
    for r in m.reserves.values():
        table.add_row(f"{r.symbol} ({r.decimals} dec)", f"{r.address}  feed {r.aggregator}")
    console.print(table)
    if m.pools:
        console.print(f"Uniswap v3: {len(m.pools)} pools at fee 0.3% ({', '.join(m.pools)}), moved with the oracle")
    console.print(f"market file: {out}\nliquidator: {m.account('liquidator').address} (devnet key in the market file)")
    console.print("Ctrl-C or `liqbot devnet down` stops it.")


@devnet_app.command()
def down() -> None:
    """Stop the devnet that `up` started."""
    state = _state_file()
    if not state.is_file():
        console.print("no devnet is running")
        return
    info = json.loads(state.read_text())
    if _alive(info["up_pid"]):
        os.kill(info["up_pid"], signal.SIGTERM)
        for _ in range(50):
            if not _alive(info["up_pid"]):
                break
            time.sleep(0.1)
    stop_group(info["anvil_pid"], signal.SIGKILL)  # only if `up` could not stop it itself
    state.unlink(missing_ok=True)
    console.print(f"devnet at {info['rpc_url']} stopped")


@devnet_app.command()
def seed(
    borrowers: Annotated[int, typer.Option(help="How many borrowers.", min=1)],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same borrowers.")] = 1,
    market: MarketOpt = None,
) -> None:
    """Create borrowers with varied positions and health factors from about 1.02 to 3."""
    m = _load(market)
    t0 = time.monotonic()
    with Progress(TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("seed", total=borrowers)
        result = seed_borrowers(m, borrowers, seed=seed, progress=lambda k: bar.advance(task, k))
    hfs = sorted(result.health_factors.values())
    multi_c = sum(len(p.collateral) > 1 for p in result.borrowers)
    multi_d = sum(len(p.debt) > 1 for p in result.borrowers)
    console.print(f"seeded {borrowers} borrowers in {time.monotonic() - t0:.1f} s; health factor "
                  f"min {hfs[0] / 1e18:.3f}, median {hfs[len(hfs) // 2] / 1e18:.3f}, max {hfs[-1] / 1e18:.3f}; "
                  f"{multi_c} with several collaterals, {multi_d} with several debts")


@devnet_app.command()
def price(
    asset: Annotated[str, typer.Argument(help="Reserve symbol, e.g. WETH.")],
    pct: Annotated[str | None, typer.Option("--pct", help="Move by this many percent, e.g. -30.")] = None,
    usd: Annotated[str | None, typer.Option("--usd", help="Set to this USD price, e.g. 1850.5.")] = None,
    swap_source: Annotated[
        bool, typer.Option("--swap-source", help="Point the oracle at a new feed instead (AssetSourceUpdated).")
    ] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Send the update and return while it is pending "
                                                          "(the DEX is not moved: its swaps would wait behind it).")] = False,
    market: MarketOpt = None,
) -> None:
    """Move an asset's price feed; the feed emits AnswerUpdated."""
    move = move_price(_load(market), asset, pct=pct, usd=usd, swap_source=swap_source, wait=not no_wait)
    where = f"at block {move.block}" if move.block is not None else f"pending as {move.tx_hash}"
    console.print(f"{move.symbol}: {move.old / 1e8:,.2f} -> {move.new / 1e8:,.2f} USD ({move.pct:+.2f}%) "
                  f"{where}, feed {move.feed}")
