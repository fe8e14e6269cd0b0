"""`liqbot breaker status|reset`: Redis only (REDIS_URL and the breaker's own settings, which have defaults)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

breaker_app = typer.Typer(help="The shared circuit breaker.", no_args_is_help=True)
console = Console()


def _breaker():
    from liqbot.runtime import runtime

    return runtime().breaker


@breaker_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """State (closed / open / half_open), cause, failures, attempts in the window."""
    info = _breaker().status()
    if as_json:
        console.print_json(json.dumps(info))
        return
    colour = {"closed": "green", "open": "red", "half_open": "yellow"}[info["state"]]
    console.print(f"breaker [bold {colour}]{info['state']}[/]" + (f": {info['cause']}" if info["cause"] else ""))
    console.print(f"consecutive failures {info['consecutive_failures']}, attempts in window {info['attempts_in_window']}"
                  + (f", half-open in {info['half_open_in_secs']} s" if "half_open_in_secs" in info else ""))


@breaker_app.command()
def reset() -> None:
    """Close the breaker now (recorded as an operator reset: in Redis, and in the database when DATABASE_URL
    can be opened)."""
    from liqbot.runtime import runtime
    from liqbot.store.breaker import Breaker

    rt = runtime()
    shared = rt.breaker
    unrecorded: list[str] = []

    def record(old, new) -> None:  # the operator's reset is done in Redis whatever the database says
        try:
            rt._breaker_changed(old, new)
        except Exception as exc:
            unrecorded.append(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    Breaker(shared.r, shared.key, shared.cfg, record).reset()
    console.print("breaker closed" + (f" (not recorded in the database: {unrecorded[0]})" if unrecorded else ""))
