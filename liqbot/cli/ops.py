"""`liqbot producer` and `liqbot config`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from liqbot.errors import ConfigError

console = Console()
config_app = typer.Typer(help="Show or change the configuration.", invoke_without_command=True)

MarketOpt = Annotated[
    Path | None, typer.Option("--market", help="A devnet market file (same as MARKET_FILE): fills RPC, WS, provider, key.")
]
RUNTIME_FLAGS = {"ws-fast-path": "ws_fast_path"}


def _settings(market: Path | None):
    from liqbot.config import get_settings

    if market is not None:
        os.environ["MARKET_FILE"] = str(market)
        get_settings.cache_clear()
    return get_settings()


def producer(market: MarketOpt = None) -> None:
    """Run the WebSocket producer: backfill, subscribe, fast-path check, enqueue."""
    # It never signs (the workers do): no key needed. With one, it checks LIQUIDATOR_CONTRACT as they do.
    settings = _settings(market).require("rpc_url", "ws_url", "pool_addresses_provider", command="liqbot producer")
    from liqbot.config import LIQUIDATOR_KEY
    from liqbot.logs import setup_logging
    from liqbot.producer.listener import run_producer
    from liqbot.runtime import runtime

    setup_logging(settings.log_level)
    rt = runtime()
    if settings.is_set(LIQUIDATOR_KEY):
        rt.check_chain()
    run_producer(rt)


@config_app.callback()
def show(ctx: typer.Context, market: MarketOpt = None) -> None:
    """Print the effective configuration (secrets masked) and the runtime flags kept in Redis."""
    if ctx.invoked_subcommand:
        if market is not None:
            _settings(market)
        return
    settings = _settings(market)
    table = Table("setting", "value", box=None)
    for key, value in settings.redacted().items():
        table.add_row(key.upper(), "unset" if value is None else str(value))
    try:
        from liqbot.store.redis import State

        state = State(settings.redis_url, settings.redis_prefix)
        for flag, attr in RUNTIME_FLAGS.items():
            live = state.get_flag(attr)
            table.add_row(f"{flag} (live, Redis)", "unset: environment value applies" if live is None else str(live).lower())
    except Exception as exc:
        table.add_row("runtime flags", f"Redis unreachable: {exc}")
    console.print(table)


@config_app.command("set")
def set_flag(
    name: Annotated[str, typer.Argument(help="ws-fast-path")],
    value: Annotated[str, typer.Argument(help="true or false")],
) -> None:
    """Change a runtime flag for every running process (kept in Redis, followed within a second)."""
    if name not in RUNTIME_FLAGS:
        raise ConfigError(f"unknown runtime flag {name!r}; known: {', '.join(RUNTIME_FLAGS)}")
    if value.lower() not in ("true", "false", "on", "off", "1", "0"):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    from liqbot.config import get_settings
    from liqbot.store.redis import State

    settings = get_settings()
    on = value.lower() in ("true", "on", "1")
    State(settings.redis_url, settings.redis_prefix).set_flag(RUNTIME_FLAGS[name], on)
    console.print(f"{name} = {str(on).lower()}")
