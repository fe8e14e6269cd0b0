"""`liqbot db upgrade|current|revision`: the store's schema. Needs only DATABASE_URL."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.console import Console

db_app = typer.Typer(help="The store's schema: upgrade it, or show its revision.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

DatabaseUrl = typer.Option("sqlite:///liqbot.sqlite", "--database-url", envvar="DATABASE_URL", show_envvar=True,
                           help="The store's SQLAlchemy URL (the same variable every liqbot process reads).")


@db_app.command("upgrade")
def upgrade_cmd(database_url: str = DatabaseUrl) -> None:
    """Bring the schema to the newest revision (every liqbot process also does this at start-up)."""
    from liqbot.store.db import plain_engine
    from liqbot.store.migrations import upgrade

    engine = plain_engine(database_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = _shown(database_url)
    if before == after:
        console.print(f"{where}: already at {after} (head)")
    else:
        console.print(f"{where}: {before or 'empty'} -> {after} (head)")


@db_app.command()
def current(database_url: str = DatabaseUrl) -> None:
    """The schema revision the database is at, and whether that is the newest (head); changes nothing."""
    from sqlalchemy.engine import make_url

    from liqbot.store.db import plain_engine
    from liqbot.store.migrations import HEAD, status

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(url.database).exists():
        console.print(f"{_shown(database_url)}: no database yet (head is {HEAD}; any liqbot process creates it)")
        return
    engine = plain_engine(database_url)
    try:
        recorded, matches = status(engine)
    finally:
        engine.dispose()
    if recorded == HEAD:
        state = f"{recorded} (head)"
    elif recorded is not None and recorded > HEAD:
        state = f"{recorded}, newer than this liqbot's head {HEAD}: upgraded by a newer liqbot"
    elif recorded is not None:
        state = f"{recorded}, not at head {HEAD}: `liqbot db upgrade` upgrades it"
    elif matches is not None:
        state = f"no revision recorded (created before migrations); its tables match {matches}; head is {HEAD}"
    else:
        state = f"empty (head is {HEAD})"
    console.print(f"{_shown(database_url)}: {state}")


@db_app.command()
def revision(message: str = typer.Argument(..., help="What the models changed, e.g. 'attempts.bundle_hash'.")) -> None:
    """Development: draft the next revision from the models' difference with the schema at head."""
    from alembic import command

    from liqbot.store.db import plain_engine
    from liqbot.store.migrations import HEAD, SCRIPT_LOCATION, alembic_config, upgrade

    rev_id = f"{int(HEAD) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        engine = plain_engine(f"sqlite:///{Path(tmp) / 'head.sqlite'}")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                command.revision(alembic_config(conn), message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    console.print(f"drafted {rev_id} in {SCRIPT_LOCATION}/versions: read it and adjust it before you commit it")


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
