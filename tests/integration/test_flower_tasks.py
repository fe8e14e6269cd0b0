"""Flower shows the work: with task events on, a liquidation on the devnet is on Flower's Tasks page with
its result and runtime, and counted for the priority worker."""

from __future__ import annotations

import time

import pytest
import requests

from liqbot.devnet import Devnet
from liqbot.devnet.anvil import free_port
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.execution import Outcome
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from liqbot.tasks.liquidate import result_text
from liqbot.tasks.routing import Detection, route_liquidation
from tests.helpers import make_liquidatable_borrower, wait_until

pytestmark = pytest.mark.e2e
AUTH = ("ops", "s3cret")
LANE_TASK = "liqbot.check_and_liquidate"


def test_flower_lists_a_liquidation_with_its_result_and_runtime(chain: Devnet, rt: Runtime, stack: Stack):
    user = make_liquidatable_borrower(chain)
    block = int(chain.rpc.call("eth_blockNumber"), 16)
    stack.env["TASK_EVENTS"] = "true"
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    port = free_port()
    flower = stack.celery("flower", "flower", f"--port={port}", "--address=127.0.0.1", f"--basic-auth={':'.join(AUTH)}")
    base = f"http://127.0.0.1:{port}"
    # Flower sees only what happens after it subscribed: wait for both workers' heartbeat events.
    wait_until(lambda: {"priority", "default"} <= _workers_seen(base), 60, "both workers' events in Flower", interval=0.5)

    route_liquidation(Detection(user, block, time.time(), "fast"))

    def sent():
        with rt.sessions() as s:
            return [a for a in attempts_for(s, user) if a.tx_hash]

    attempt = wait_until(sent, 60, "the liquidation", interval=0.1)[0]
    task = wait_until(lambda: _succeeded(base, attempt.task_id), 30, "the task's success in Flower", interval=0.5)
    assert task["name"] == LANE_TASK
    assert task["worker"].startswith("priority@")
    result = task["result"].strip("'\"")  # the task-succeeded event carries the return value's repr
    assert result.startswith(f"sent {attempt.tx_hash[:10]}… profit "), result
    assert result.split(" profit ")[1].split()[1].rstrip(",") == "USD", result
    assert isinstance(task["runtime"], float)
    assert task["runtime"] > 0

    # The Tasks page shows the Result column (FLOWER_TASKS_COLUMNS, set by liqbot.celery) next to Runtime...
    page = requests.get(f"{base}/tasks", auth=AUTH, timeout=10).text
    assert 'data-column="result"' in page
    assert 'data-column="runtime"' in page
    # ...and the Workers page counts it for the priority worker.
    counts = wait_until(lambda: _worker(base, "priority").get("task-succeeded"), 15, "the priority worker's count")
    assert counts >= 1
    assert flower.alive()


def test_a_task_result_is_one_short_line_without_urls():
    sent = Outcome("sent", "", {"tx_hash": "0x" + "ab" * 32, "expected_profit_base": 1_234_567_890, "route": "flash"})
    sent.group = 3
    assert result_text(sent) == "sent 0xabababab… profit 12.35 USD by flash loan, group of 3"
    assert result_text(Outcome("skipped", "unprofitable")) == "skipped: unprofitable"
    assert result_text(Outcome("grouped")) == "grouped: liquidated in the group of another task"
    assert result_text(Outcome("dry_run")) == "dry run"
    failed = result_text(Outcome("failed", "RpcError: https://node.example/v3/SECRETKEY timed out " + "x" * 300))
    assert "SECRETKEY" not in failed
    assert failed.startswith("failed: RpcError: <url> timed out")
    assert len(failed) <= 160


def _json(url: str) -> dict | list | None:
    try:
        res = requests.get(url, auth=AUTH, timeout=5)
    except requests.RequestException:
        return None
    return res.json() if res.status_code == 200 else None


def _workers_seen(base: str) -> set[str]:
    data = _json(f"{base}/workers?json=1") or {"data": []}
    return {w["hostname"].split("@")[0] for w in data["data"] if w.get("status")}


def _worker(base: str, name: str) -> dict:
    data = _json(f"{base}/workers?json=1") or {"data": []}
    return next((w for w in data["data"] if w["hostname"].startswith(f"{name}@")), {})


def _succeeded(base: str, task_id: str) -> dict | None:
    tasks = _json(f"{base}/api/tasks?taskname={LANE_TASK}&state=SUCCESS") or {}
    return tasks.get(task_id)
