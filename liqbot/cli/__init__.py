"""The `liqbot` command."""

from __future__ import annotations

import sys

import redis
import typer
from rich.console import Console

from liqbot.cli.breaker import breaker_app
from liqbot.cli.contract import contract_app
from liqbot.cli.db import db_app
from liqbot.cli.devnet import devnet_app
from liqbot.cli.ops import config_app, producer
from liqbot.cli.status import status
from liqbot.errors import LiqbotError

app = typer.Typer(help="liqbot: an Aave v3 liquidation bot with a latency-first priority lane.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(devnet_app, name="devnet")
app.add_typer(config_app, name="config")
app.add_typer(breaker_app, name="breaker")
app.add_typer(contract_app, name="contract")
app.add_typer(db_app, name="db")
app.command()(producer)
app.command()(status)


@app.command()
def demo(
    borrowers: int = typer.Option(200, min=1, help="How many borrowers to seed."),
    duration: float = typer.Option(0, min=0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    flower_port: int = typer.Option(0, min=0, max=65535, help="Flower's port (0: a free one)."),
    block_time: int = typer.Option(2, min=0, max=60, help="Seconds per block once seeded (0: a block per "
                                                          "transaction); with blocks, pending price updates are back-run."),
) -> None:
    """The whole stack on a fresh devnet: seed borrowers, crash prices, watch liquidations land."""
    from liqbot.demo import run_demo

    run_demo(borrowers, duration or None, flower_port or None, block_time)

err = Console(stderr=True)


def main() -> None:
    """Entry point: our own errors become one clear line and exit code 1, never a traceback."""
    try:
        app()
    except LiqbotError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (redis.RedisError, OSError) as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
