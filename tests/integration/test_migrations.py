"""Schema migrations on SQLite and PostgreSQL: an operator's history survives every upgrade.

The previous schema is frozen here as liqbot created it on 2026-11-24 (db7c585's models, create_all,
no version table); the baseline revision must build exactly that, and head exactly today's models.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from liqbot.domain.units import UINT256_MAX
from liqbot.store.db import Attempt, Base, BreakerEvent, Capture, Cursor, Position, Uint256, User, make_engine, plain_engine
from liqbot.store.migrations import HEAD, SCRIPT_LOCATION, SchemaError, alembic_config, status, upgrade
from tests.helpers import postgres_database

ROOT = Path(__file__).resolve().parents[2]
HUGE = 123_456_789 * 10**60  # far beyond 64 bits: NUMERIC(78,0) or 78 digits of text

# The schema of 2026-11-24 (git show db7c585:liqbot/store/db.py), as its create_all built it.
PREVIOUS = MetaData()
Table("users", PREVIOUS,
      Column("address", String(42), primary_key=True),
      Column("health_factor", BigInteger, nullable=False),
      Column("collateral_base", BigInteger, nullable=False),
      Column("debt_base", BigInteger, nullable=False),
      Column("updated_block", BigInteger, nullable=False),
      Column("updated_at", Float, nullable=False),
      Index("ix_users_hf_debt", "health_factor", "debt_base"))
Table("positions", PREVIOUS,
      Column("user", String(42), ForeignKey("users.address", ondelete="CASCADE"), primary_key=True),
      Column("asset", String(42), primary_key=True),
      Column("collateral", Uint256, nullable=False),
      Column("debt", Uint256, nullable=False),
      Column("collateral_enabled", Boolean, nullable=False),
      Index("ix_positions_asset", "asset"))
Table("attempts", PREVIOUS,
      Column("id", Integer, primary_key=True, autoincrement=True),
      Column("user", String(42), nullable=False, index=True),
      Column("path", String(16), nullable=False),
      Column("task_id", String(64)),
      Column("detected_block", BigInteger, nullable=False),
      Column("detected_at", Float, nullable=False),
      Column("enqueued_at", Float),
      Column("started_at", Float),
      Column("sent_at", Float),
      Column("tx_hash", String(66), unique=True),
      Column("collateral_asset", String(42)),
      Column("debt_asset", String(42)),
      Column("debt_to_cover", Uint256),
      Column("outcome", String(24), nullable=False),
      Column("reason", String(200)),
      Column("latency_ms", Float),
      Column("gas_used", BigInteger),
      Column("mined_block", BigInteger),
      Column("nonce", BigInteger),
      Column("max_fee", Uint256),
      Column("tip", Uint256),
      Column("collateral_price", Uint256),
      Column("debt_price", Uint256),
      Column("expected_profit_base", BigInteger),
      Column("realised_profit_base", BigInteger),
      Column("debt_repaid", Uint256),
      Column("collateral_seized", Uint256))
Table("breaker_events", PREVIOUS,
      Column("id", Integer, primary_key=True, autoincrement=True),
      Column("at", Float, nullable=False),
      Column("old_state", String(16), nullable=False),
      Column("new_state", String(16), nullable=False),
      Column("cause", String(200), nullable=False))
Table("cursors", PREVIOUS,
      Column("name", String(64), primary_key=True),
      Column("block", BigInteger, nullable=False))

ROWS = {
    "users": [
        {"address": "0xA", "health_factor": 95 * 10**16, "collateral_base": 10**12, "debt_base": 9 * 10**11,
         "updated_block": 41, "updated_at": 1700000000.25},
        {"address": "0xB", "health_factor": 2**63 - 1, "collateral_base": 0, "debt_base": 0, "updated_block": 7,
         "updated_at": 0.0},
    ],
    "positions": [
        {"user": "0xA", "asset": "0xWETH", "collateral": HUGE, "debt": 0, "collateral_enabled": True},
        {"user": "0xA", "asset": "0xUSDC", "collateral": 0, "debt": UINT256_MAX, "collateral_enabled": False},
    ],
    "attempts": [
        {"user": "0xA", "path": "fast", "task_id": "t-1", "detected_block": 40, "detected_at": 1.5,
         "enqueued_at": 1.6, "started_at": 1.7, "sent_at": 1.8, "tx_hash": "0x" + "1" * 64, "collateral_asset": "0xWETH",
         "debt_asset": "0xUSDC", "debt_to_cover": UINT256_MAX, "outcome": "mined", "reason": None, "latency_ms": 12.5,
         "gas_used": 321_000, "mined_block": 41, "nonce": 3, "max_fee": 30 * 10**9, "tip": 2 * 10**9,
         "collateral_price": 2000 * 10**8, "debt_price": 10**8, "expected_profit_base": 5 * 10**8,
         "realised_profit_base": 4 * 10**8, "debt_repaid": HUGE, "collateral_seized": HUGE + 1},
        {"user": "0xB", "path": "scan", "task_id": None, "detected_block": 40, "detected_at": 2.0,
         "enqueued_at": None, "started_at": None, "sent_at": None, "tx_hash": None, "collateral_asset": None,
         "debt_asset": None, "debt_to_cover": None, "outcome": "skipped", "reason": "no longer liquidatable",
         "latency_ms": None, "gas_used": None, "mined_block": None, "nonce": None, "max_fee": None, "tip": None,
         "collateral_price": None, "debt_price": None, "expected_profit_base": None, "realised_profit_base": None,
         "debt_repaid": None, "collateral_seized": None},
    ],
    "breaker_events": [{"at": 3.25, "old_state": "closed", "new_state": "open", "cause": "3 reverts in a row"}],
    "cursors": [{"name": "producer", "block": 41}],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'liqbot.sqlite'}"
        return
    yield from postgres_database("liqbot_mig")


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines a test opens, disposed at its end (before its PostgreSQL database is dropped)."""
    opened: list[Engine] = []
    yield opened
    for engine in opened:
        engine.dispose()


def _engine(engines: list[Engine], url: str, at_head: bool = False) -> Engine:
    engine = make_engine(url) if at_head else plain_engine(url)
    engines.append(engine)
    return engine


def _alembic(engine: Engine, *args: str, cmd: str = "upgrade") -> None:
    with engine.begin() as conn:
        getattr(command, cmd)(alembic_config(conn), *args)


def _diff(engine: Engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _insert_previous_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        for name, rows in ROWS.items():
            conn.execute(PREVIOUS.tables[name].insert(), rows)


def test_head_is_alembics_head_and_the_history_is_one_line():
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]
    revisions = list(script.walk_revisions())
    assert [r.revision for r in reversed(revisions)] == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    for rev in revisions:  # HEAD is read from the file names: each must start with its revision
        assert Path(rev.path).name.startswith(f"{rev.revision}_"), rev.path
    assert (Path(SCRIPT_LOCATION) / "script.py.mako").exists()


def test_revisions_build_exactly_the_previous_schema_and_todays_models(url: str, engines: list[Engine]):
    """A model change without a revision fails here: head must equal Base.metadata on both databases."""
    engine = _engine(engines, url)
    _alembic(engine, "0001")
    assert _diff(engine, PREVIOUS) == []
    _alembic(engine, "head")
    assert _diff(engine, Base.metadata) == []
    _alembic(engine, "0001", cmd="downgrade")  # the way back exists too
    assert _diff(engine, PREVIOUS) == []


@pytest.mark.parametrize("made_by", ["create_all", "baseline_revision"])
def test_upgrade_keeps_every_row_of_the_previous_schema(url: str, engines: list[Engine], made_by: str):
    old = _engine(engines, url)
    if made_by == "create_all":  # what liqbot did before migrations: no version table
        PREVIOUS.create_all(old)
        assert status(old) == (None, "0001")
    else:
        _alembic(old, "0001")
        assert status(old) == ("0001", None)
    _insert_previous_rows(old)
    old.dispose()

    engine = _engine(engines, url, at_head=True)  # start-up: stamps (when unversioned) and upgrades
    assert _versions(engine) == [HEAD]
    assert _diff(engine, Base.metadata) == []
    with Session(engine) as s:
        users = {u.address: u for u in s.scalars(select(User))}
        assert {a: {c: getattr(u, c) for c in ROWS["users"][0]} for a, u in users.items()} == {
            r["address"]: r for r in ROWS["users"]}
        positions = {(p.user, p.asset): p for p in s.scalars(select(Position))}
        assert {k: {c: getattr(p, c) for c in ROWS["positions"][0]} for k, p in positions.items()} == {
            (r["user"], r["asset"]): r for r in ROWS["positions"]}
        attempts = s.scalars(select(Attempt).order_by(Attempt.id)).all()
        assert [{c: getattr(a, c) for c in ROWS["attempts"][0]} for a in attempts] == ROWS["attempts"]
        assert [(a.rival_tx, a.route) for a in attempts] == [(None, None), (None, None)]  # the new columns
        assert {u.first_seen_block for u in users.values()} == {r["updated_block"] for r in ROWS["users"]}  # 0005
        events = s.scalars(select(BreakerEvent)).all()
        assert [{c: getattr(e, c) for c in ROWS["breaker_events"][0]} for e in events] == ROWS["breaker_events"]
        assert [(c.name, c.block) for c in s.scalars(select(Cursor))] == [("producer", 41)]
        assert s.scalars(select(Capture)).all() == []
    with Session(engine) as s, s.begin():  # the new schema takes new rows; ids continue after the old ones
        s.add(Attempt(user="0xA", path="update", detected_at=4.0, outcome="sent", route="flash", rival_tx="0x" + "2" * 64))
        s.add(Capture(tx_hash="0x" + "3" * 64, log_index=0, block=42, block_timestamp=1700000012, user="0xA",
                      liquidator="0xL", collateral_asset="0xWETH", debt_asset="0xUSDC", debt_covered=HUGE,
                      collateral_seized=UINT256_MAX, bonus_base=10**8, ours=True, attempt_id=1))
    with Session(engine) as s:
        assert s.scalar(select(Attempt.id).where(Attempt.route == "flash")) == 3
        assert s.scalar(select(Capture.collateral_seized)) == UINT256_MAX
    with Session(engine) as s, s.begin():  # foreign keys are enforced again after the upgrade (SQLite turns them off)
        s.delete(s.get(User, "0xA"))
    with Session(engine) as s:
        assert s.scalars(select(Position)).all() == []


@pytest.mark.parametrize("rev", ["0002", "0003", "0004"])
def test_an_unversioned_database_of_each_later_schema_is_stamped_and_upgraded(url: str, engines: list[Engine], rev: str):
    old = _engine(engines, url)
    _alembic(old, rev)  # exactly what that release's create_all built (test above: head == models; 0001 == PREVIOUS)
    with old.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO cursors (name, block) VALUES ('producer', 9)"))
    assert status(old) == (None, rev)
    assert upgrade(old) == (rev, HEAD)
    assert _versions(old) == [HEAD]
    assert _diff(old, Base.metadata) == []
    with old.connect() as conn:
        assert conn.execute(text("SELECT block FROM cursors")).scalar() == 9


def test_a_failed_upgrade_leaves_the_database_as_it_was(url: str, engines: list[Engine]):
    engine = _engine(engines, url)
    _alembic(engine, "0003")
    _insert_previous_rows(engine)
    with engine.begin() as conn:  # 0004 creates this index on captures: its CREATE INDEX fails after CREATE TABLE
        conn.execute(text("CREATE INDEX ix_captures_user ON users (address)"))
    with pytest.raises(Exception, match="ix_captures_user"):
        upgrade(engine)
    assert _versions(engine) == ["0003"]
    assert "captures" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM positions")).scalar() == 2


def test_unknown_schemas_are_refused_not_guessed(tmp_path: Path, engines: list[Engine]):
    partial = _engine(engines, f"sqlite:///{tmp_path / 'partial.sqlite'}")
    PREVIOUS.tables["users"].create(partial)
    with pytest.raises(SchemaError, match="match no liqbot schema"):
        upgrade(partial)
    newer = _engine(engines, f"sqlite:///{tmp_path / 'newer.sqlite'}", at_head=True)
    with newer.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    with pytest.raises(SchemaError, match="newer liqbot"):
        make_engine(f"sqlite:///{tmp_path / 'newer.sqlite'}").dispose()


def _python(code: str, env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_processes_starting_together_upgrade_once(url: str, tmp_path: Path, engines: list[Engine]):
    """Workers, beat and the producer start at once on a new database: one upgrades, the others wait and find it done."""
    code = """
        import sys, time
        from pathlib import Path
        from liqbot.store.db import plain_engine
        from liqbot.store.migrations import upgrade
        engine = plain_engine(sys.argv[1])
        Path(sys.argv[2]).touch()
        while not Path(sys.argv[3]).exists():
            time.sleep(0.005)
        print(upgrade(engine)[0])
    """
    go = tmp_path / "go"
    procs = [_python(code, {**os.environ}, ROOT, url, str(tmp_path / f"ready{i}"), str(go)) for i in range(4)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "processes not ready"
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    assert sorted(out.strip() for out, _ in results) == sorted(["None", HEAD, HEAD, HEAD])
    engine = _engine(engines, url)
    assert _versions(engine) == [HEAD]
    assert _diff(engine, Base.metadata) == []


def test_start_up_at_head_does_not_load_alembic(url: str, tmp_path: Path, engines: list[Engine]):
    _engine(engines, url, at_head=True)
    code = """
        import sys
        from liqbot.store.db import make_engine
        make_engine(sys.argv[1]).dispose()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako")))
    """
    out, err = _python(code, {**os.environ}, ROOT, url).communicate(timeout=120)
    assert out.strip() == "[]", err[-2000:]


def test_cli_upgrade_and_current_need_only_the_database_url(url: str, tmp_path: Path, engines: list[Engine]):
    PREVIOUS.create_all(_engine(engines, url))  # an operator's database from before migrations
    _insert_previous_rows(engines[-1])
    engines[-1].dispose()
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": url}

    def liqbot(*args: str) -> str:
        res = subprocess.run([sys.executable, "-m", "liqbot", "db", *args], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    assert f"(created before migrations); its tables match 0001; head is {HEAD}" in liqbot("current")
    assert "alembic_version" not in inspect(_engine(engines, url)).get_table_names()  # current changes nothing
    assert f"0001 -> {HEAD} (head)" in liqbot("upgrade")
    assert f": {HEAD} (head)" in liqbot("current")
    assert f"already at {HEAD} (head)" in liqbot("upgrade")
    assert "upgrade" in liqbot("--help")
    with Session(_engine(engines, url)) as s:
        assert s.scalar(select(Position.collateral).where(Position.asset == "0xWETH")) == HUGE


def test_cli_current_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path):
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'none.sqlite'}"}
    res = subprocess.run([sys.executable, "-m", "liqbot", "db", "current"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert "no database yet" in res.stdout
    assert not (tmp_path / "none.sqlite").exists()
