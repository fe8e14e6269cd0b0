"""The real `liqbot` and celery entry points, each with only the settings it needs (`env -i`-like: PATH, HOME and
those settings), against a Redis of the tests' own: read-only commands answer with REDIS_URL (and DATABASE_URL
for status), the others name what they miss, a market file of another shape is one line, and nothing prints a
traceback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
import redis

from liqbot.devnet.anvil import free_port, stop_group
from liqbot.domain.breaker import BreakerConfig
from liqbot.store.breaker import Breaker

REPO = Path(__file__).resolve().parents[2]
LIQBOT = [str(Path(sys.executable).with_name("liqbot"))] if Path(sys.executable).with_name("liqbot").exists() \
    else [sys.executable, "-m", "liqbot"]
CELERY = [sys.executable, "-m", "celery", "-A", "liqbot"]
KEY_VARS = "LIQUIDATOR_PRIVATE_KEY or LIQUIDATOR_KEY_FILE"
EXPECTED_FILE = "(expected a market file written by liqbot devnet up)"


@pytest.fixture
def url(redis_url: str) -> str:
    """A database of the test server no other test uses, emptied."""
    own = redis_url.rsplit("/", 1)[0] + "/7"
    with closing(redis.Redis.from_url(own)) as r:
        r.flushdb()
    return own


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    # COLUMNS: rich would wrap lines at 80 columns without a terminal
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "COLUMNS": "200", **settings}


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def _errors(res: subprocess.CompletedProcess) -> list[str]:
    """stderr's lines, less celery's warning about running as root."""
    lines = res.stderr.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("liqbot: ", "error: "))), len(lines))
    return [line.removeprefix("liqbot: ").removeprefix("error: ") for line in lines[start:]]


@pytest.mark.parametrize("command", [
    ["breaker", "status"], ["breaker", "status", "--json"], ["breaker", "reset"], ["config"],
    ["config", "set", "ws-fast-path", "false"], ["devnet", "down"],
])
def test_read_only_commands_answer_with_only_redis(url: str, tmp_path: Path, command: list[str]):
    res = _run([*LIQBOT, *command], _env(tmp_path, REDIS_URL=url), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    if command == ["config"]:
        assert "RPC_URL" in res.stdout
        assert "unset" in res.stdout


def test_status_answers_with_redis_and_the_database(url: str, tmp_path: Path):
    env = _env(tmp_path, REDIS_URL=url, DATABASE_URL=f"sqlite:///{tmp_path / 'status.sqlite'}")
    res = _run([*LIQBOT, "status"], env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "head: unknown (RPC_URL unset)" in res.stdout
    assert "breaker: closed" in res.stdout
    env["DATABASE_URL"] = "sqlite:////nonexistent/dir/status.sqlite"
    res = _run([*LIQBOT, "status"], env, cwd=tmp_path)
    assert res.returncode == 1
    assert _errors(res) == ["DATABASE_URL: cannot open sqlite:////nonexistent/dir/status.sqlite: unable to open database file"]


def test_commands_that_need_more_name_the_variables_and_themselves(url: str, tmp_path: Path):
    env = _env(tmp_path, REDIS_URL=url)
    res = _run([*LIQBOT, "producer"], env, cwd=tmp_path)
    assert res.returncode == 1
    assert [line.split(":")[0] for line in _errors(res)] == ["RPC_URL", "WS_URL", "POOL_ADDRESSES_PROVIDER"]
    assert all("required by liqbot producer; expected " in line for line in _errors(res))

    res = _run([*LIQBOT, "contract", "deploy", "--router", "0x" + "11" * 20], env, cwd=tmp_path)
    assert res.returncode == 1
    assert [line.split(":")[0] for line in _errors(res)] == ["RPC_URL", "POOL_ADDRESSES_PROVIDER", KEY_VARS]

    res = _run([*CELERY, "worker", "-Q", "default", "--without-gossip", "--without-mingle"], env, cwd=REPO)
    assert res.returncode == 2
    assert [line.split(":")[0] for line in _errors(res)] == ["RPC_URL", "POOL_ADDRESSES_PROVIDER", KEY_VARS]
    assert all("required by celery worker; expected " in line for line in _errors(res))


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)


def _wait(predicate, what: str, procs: list[subprocess.Popen], logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            text = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
            pytest.fail(f"{what}: {'a process exited' if dead else 'timed out'}\n{text}")
        time.sleep(0.3)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_beat_and_flower_run_with_only_redis(url: str, tmp_path: Path):
    """Beat only sends task messages (the workers need the chain to run them); Flower only reads Redis."""
    env = _env(tmp_path, REDIS_URL=url, SCAN_INTERVAL_SECS="1")
    port = free_port()
    logs = [tmp_path / "beat.log", tmp_path / "flower.log"]
    procs = [_start([*CELERY, "beat", "-s", str(tmp_path / "beat-schedule")], env, logs[0]),
             _start([*CELERY, "flower", f"--port={port}", "--address=127.0.0.1"], env, logs[1])]
    try:
        with closing(redis.Redis.from_url(url)) as r:
            _wait(lambda: r.llen("default") > 0, "beat sends its schedule", procs, logs)
        _wait(lambda: _http_ok(f"http://127.0.0.1:{port}/"), "flower answers", procs, logs)
    finally:
        for p in procs:
            stop_group(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_group(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
    text = "".join(log.read_text(errors="replace") for log in logs)
    assert "Traceback" not in text


MARKET = {"rpc_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1", "deploy_block": 0,
          "contracts": {"PoolAddressesProvider": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
          "accounts": {"liquidator": {"private_key": "0x" + "ab" * 32}}}
SHAPES = {
    "no rpc_url": ({k: v for k, v in MARKET.items() if k != "rpc_url"}, 'no "rpc_url"'),
    "no ws_url": ({k: v for k, v in MARKET.items() if k != "ws_url"}, 'no "ws_url"'),
    "no provider": ({**MARKET, "contracts": {}}, 'no "contracts.PoolAddressesProvider"'),
    "no key": ({**MARKET, "accounts": {"liquidator": {}}}, 'no "accounts.liquidator.private_key"'),
    "not JSON": ("rpc_url = 'http://127.0.0.1:1'\n", "not JSON"),
    "a JSON list": ([MARKET], "a JSON list, not an object"),
    "missing": (None, "not found"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_market_file_of_another_shape_is_one_line(url: str, tmp_path: Path, shape: str):
    content, says = SHAPES[shape]
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    res = _run([*LIQBOT, "status"], _env(tmp_path, REDIS_URL=url, MARKET_FILE=str(path)), cwd=tmp_path)
    assert res.returncode == 1
    (line,) = _errors(res)
    assert line.startswith(f"MARKET_FILE {path}: {says} ")
    assert line.endswith("expected a market file written by liqbot devnet up)")


@pytest.mark.parametrize("process", [["worker", "-Q", "priority", "--without-gossip", "--without-mingle"], ["beat"]])
def test_celery_processes_say_the_same_in_one_line_and_exit_2(url: str, tmp_path: Path, process: list[str]):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({k: v for k, v in MARKET.items() if k != "rpc_url"}))
    if process == ["beat"]:
        process = [*process, "-s", str(tmp_path / "beat-schedule")]
    res = _run([*CELERY, *process], _env(tmp_path, REDIS_URL=url, MARKET_FILE=str(path)), cwd=REPO)
    assert res.returncode == 2
    assert _errors(res) == [f'MARKET_FILE {path}: no "rpc_url" {EXPECTED_FILE}']


def test_breaker_reset_is_recorded_when_the_database_opens_and_done_anyway(url: str, tmp_path: Path):
    db = tmp_path / "liqbot.sqlite"
    env = _env(tmp_path, REDIS_URL=url, DATABASE_URL=f"sqlite:///{db}")
    with closing(redis.Redis.from_url(url, decode_responses=True)) as r:
        breaker = Breaker(r, "liqbot:breaker", BreakerConfig(200, 60, 1, 30))

        breaker.result(False, "test failure")
        assert breaker.state().state == "open"
        res = _run([*LIQBOT, "breaker", "reset"], env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "breaker closed"
        assert breaker.state().state == "closed"
        with closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT old_state, new_state, cause FROM breaker_events").fetchall()
        assert rows == [("open", "closed", "reset by operator")]

        breaker.result(False, "test failure")
        env["DATABASE_URL"] = "sqlite:////nonexistent/dir/liqbot.sqlite"
        res = _run([*LIQBOT, "breaker", "reset"], env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().startswith("breaker closed (not recorded in the database: DATABASE_URL: cannot open")
        assert breaker.state().state == "closed"
