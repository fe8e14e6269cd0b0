"""The `liqbot` command."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from liqbot.cli.breaker import breaker_app
from liqbot.cli.devnet import devnet_app
from liqbot.cli.ops import config_app, producer
from liqbot.cli.status import status
from liqbot.errors import LiqbotError

app = typer.Typer(help="liqbot: an Aave v3 liquidation bot with a latency-first priority lane.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(devnet_app, name="devnet")
app.add_typer(config_app, name="config")
app.add_typer(breaker_app, name="breaker")
app.command()(producer)
app.command()(status)

err = Console(stderr=True)


def main() -> None:
    """Entry point: our own errors become one clear line and exit code 1, never a traceback."""
    try:
        app()
    except LiqbotError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
