"""Workers and beat started exactly as the README starts them (no `-l`) show the lane's ⚡ lines, and
LOG_LEVEL alone sets every process's level."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from liqbot.devnet import Devnet, move_price
from liqbot.devnet.stack import Stack
from liqbot.store.db import User, session_factory
from tests.helpers import open_position, wait_until

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def readme_celery_commands() -> list[list[str]]:
    """`celery -A liqbot worker|beat ...` as the README's "Running the pipeline" block writes them."""
    lines = re.findall(r"^(celery -A liqbot (?:worker|beat)\b[^#\n]*)", (REPO / "README.md").read_text(), re.M)
    return [shlex.split(line) for line in lines]


def test_readme_and_compose_leave_the_level_to_log_level():
    commands = readme_celery_commands()
    assert [c[3] for c in commands] == ["worker", "worker", "beat"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for service in compose.values():
        argv = service.get("command") or []
        assert not {"-l", "--loglevel"} & set(argv), argv
        assert not any(a.startswith("--loglevel=") for a in argv), argv


def test_readme_workers_and_beat_show_the_lanes_lines(chain: Devnet, env: dict, stack: Stack, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LOG_LEVEL")  # the default, as the README's reader has it
    del stack.env["LOG_LEVEL"]
    stack.cwd = tmp_path  # beat's schedule file lands in the working directory
    stack.env["PYTHONPATH"] = str(REPO)  # celeryconfig.py, found from the checkout as the README runs it
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    procs = {}
    for argv in readme_celery_commands():
        name = argv[3] + ("-" + argv[argv.index("-Q") + 1] if "-Q" in argv else "")
        procs[name] = stack.celery(name, *argv[3:])
    for name in ("worker-priority", "worker-default"):
        stack.wait_for(lambda p=procs[name]: " ready." in p.text(), name, 60, procs[name])
    producer = stack.producer()

    def stored() -> bool:
        with session_factory(env["DATABASE_URL"])() as s:
            return user in set(s.scalars(select(User.address)))

    wait_until(stored, 60, "the borrower backfilled")
    move = move_price(chain.market, "WETH", pct=-10)
    lane = procs["worker-priority"]
    wait_until(lambda: f"liquidation sent user={user}" in lane.text(), 60, "the liquidation in the lane's log")

    assert re.search(rf"⚡ queued user={user} block=\d+ path=fast detect->enqueue=[\d.]+ms", producer.text())
    assert re.search(rf"⚡ started user={user} block={move.block} path=fast detect->start=[\d.]+ms "
                     r"enqueue->start=[\d.]+ms", lane.text())
    assert re.search(rf"⚡ liquidation sent user={user} block={move.block} path=fast detect->send=[\d.]+ms", lane.text())
    assert re.search(r"INFO ForkPoolWorker-\d+ liqbot\.", procs["worker-default"].text())  # bookkeeping's pool too
    assert "INFO MainProcess celery.beat: Scheduler: Sending due task" in procs["beat"].text()


LEVEL_PROBE = """
import json, logging, os
from liqbot.celery import app
app.log.setup(loglevel="{flag}")
print(json.dumps([logging.getLevelName(logging.getLogger().level), os.environ["FLOWER_LOGGING"]]))
"""


@pytest.mark.parametrize(("log_level", "flag", "expected"), [
    (None, "WARNING", ["INFO", "info"]),  # celery's own default for -l
    ("WARNING", "DEBUG", ["WARNING", "warning"]),
    ("debug", "ERROR", ["DEBUG", "debug"]),
])
def test_log_level_wins_over_celerys_flag(env: dict, log_level: str | None, flag: str, expected: list[str]):
    child = {k: v for k, v in {**os.environ, **env}.items() if k not in ("LOG_LEVEL", "FLOWER_LOGGING")}
    if log_level:
        child["LOG_LEVEL"] = log_level
    res = subprocess.run([sys.executable, "-c", LEVEL_PROBE.format(flag=flag)], capture_output=True, text=True,
                         env=child, cwd=REPO, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == expected


def test_a_bad_log_level_is_refused_with_its_name(env: dict):
    res = subprocess.run([sys.executable, "-m", "celery", "-A", "liqbot", "beat"], capture_output=True, text=True,
                         env={**os.environ, **env, "LOG_LEVEL": "LOUD"}, cwd=REPO, timeout=60, check=False)
    assert res.returncode == 2
    assert "LOG_LEVEL: not a log level; expected DEBUG, INFO, WARNING, ERROR or CRITICAL" in res.stderr
