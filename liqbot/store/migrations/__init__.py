"""Schema migrations (Alembic): every process brings the database to HEAD at start-up; `liqbot db upgrade` too.

The revisions live in versions/ and run on the connection we hand Alembic (env.py); no alembic.ini.
Each is named `<revision>_<slug>.py` with a four-digit revision, so HEAD, the newest, is read from the
file names: a process whose database is already there pays one `SELECT version_num` and never imports
Alembic (about 130 ms). tests/integration/test_migrations.py holds HEAD equal to Alembic's own head and
the models (liqbot.store.db) equal to what the revisions build: a model change needs a revision, which
`liqbot db revision "what changed"` drafts from the difference.

Several processes start together (workers, beat, producer): one upgrades while the others wait on a lock
(PostgreSQL: an advisory lock; SQLite: flock on `<database file>.migrate.lock`) and then find the
version already at HEAD. On SQLite the whole upgrade runs in one `BEGIN IMMEDIATE` transaction with
foreign keys off (batch mode copies tables; dropping a parent must not cascade), so a failed upgrade
leaves the database as it was; PostgreSQL's DDL is transactional anyway.

A database created by `create_all` before migrations existed has no version table: its tables tell
which revision it is (legacy.py), it is stamped there, then upgraded.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from liqbot.errors import LiqbotError

SCRIPT_LOCATION = str(Path(__file__).parent)
HEAD = max(p.name[:4] for p in Path(SCRIPT_LOCATION, "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
PG_LOCK_KEY = 0x6C6971626F74  # "liqbot": the advisory lock every migrating process takes
log = logging.getLogger(__name__)


class SchemaError(LiqbotError):
    """The database's schema is one this liqbot cannot bring to HEAD (unknown revision or tables)."""


def stored_revision(conn: Connection) -> str | None:
    """The version the database records; None when it records none (new, or from before migrations)."""
    try:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (OperationalError, ProgrammingError):  # no such table
        conn.rollback()
        return None
    if len(rows) > 1:
        raise SchemaError(f"the database records several schema versions {sorted(rows)}; liqbot's history has no branches")
    return rows[0] if rows else None


def ensure_head(engine: Engine) -> None:
    """At start-up: nothing but one query when the database is at HEAD, else upgrade it (see upgrade)."""
    with engine.connect() as conn:
        if stored_revision(conn) == HEAD:
            return
    before, after = upgrade(engine)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "nothing", after)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to HEAD under the migration lock; (revision before, HEAD). Before is None for a new
    database; for one from before migrations, the revision its tables matched (stamped, then upgraded)."""
    with _exclusive(engine) as conn:
        _begin(conn)
        try:
            # read again inside the transaction: another process may have upgraded while we waited
            before = stored_revision(conn) if inspect(conn).has_table("alembic_version") else None
            if before != HEAD:
                before = _to_head(conn, before)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            _end(conn)
    return before, HEAD


def _to_head(conn: Connection, recorded: str | None) -> str | None:
    from alembic import command

    config = alembic_config(conn)
    before = recorded
    if recorded is None:
        before = _legacy_revision(conn)
        if before is not None:
            command.stamp(config, before)
    elif recorded not in _known_revisions(config):
        raise SchemaError(f"the database is at schema revision {recorded!r}, which this liqbot does not know "
                          f"(newest here: {HEAD}): was it upgraded by a newer liqbot?")
    command.upgrade(config, "head")
    return before


def status(engine: Engine) -> tuple[str | None, str | None]:
    """(recorded revision, revision the tables match when none is recorded), reading only."""
    with engine.connect() as conn:
        rev = stored_revision(conn)
        return (rev, None) if rev is not None else (None, _legacy_revision(conn))


def alembic_config(conn: Connection | None = None) -> Any:
    """Alembic's configuration, built here (no alembic.ini); env.py runs on `conn`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = conn
    return config


def _known_revisions(config: Any) -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _legacy_revision(conn: Connection) -> str | None:
    from liqbot.store.migrations.legacy import legacy_revision

    try:
        return legacy_revision(conn)
    except ValueError as exc:
        raise SchemaError(f"the database has no schema version and its tables match no liqbot schema: {exc}") from exc


def _begin(conn: Connection) -> None:
    """Open the transaction the whole upgrade runs in (Alembic joins it and leaves the commit to us)."""
    if conn.dialect.name == "sqlite":
        # pysqlite opens transactions only before DML, so DDL would commit one statement at a time: begin
        # explicitly. Foreign keys off first (the pragma is ignored inside a transaction).
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _end(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.commit()


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection of the one process allowed to migrate; the others wait here."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                try:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                    conn.commit()
                except Exception:
                    conn.invalidate()  # never hand a connection that may still hold the lock back to the pool
                    raise
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        with engine.connect() as conn:  # in memory: nobody else can see it; other dialects: unsupported
            yield conn
        return
    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
