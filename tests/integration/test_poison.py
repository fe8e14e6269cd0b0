"""A poison message never stops a lane: raw garbage pushed with redis-py onto the queues (and their
priority lists, and the workers' broadcast channel) of real `celery worker` processes is set aside on
the dead-letter list, every process stays up, and the next liquidations go through."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid

import pytest
import redis

from liqbot.chain.reader import account_data
from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.runtime import Runtime
from liqbot.store.redis import PRIORITY_SEP
from liqbot.tasks import liquidate
from tests.helpers import liquidations, open_position, wait_until
from tests.integration.test_pipeline_e2e import _crash_and_check, _users_in_db

GARBAGE = (b"\xff\xfe", b"not json", b"[1,2]", b"{}")
LISTS = ("priority", "default", f"priority{PRIORITY_SEP}3")  # kombu polls a queue's priority lists too
PIDBOX = "/0.celery.pidbox"  # the workers' broadcast channel (remote control), db 0


def _template(r: redis.Redis) -> dict:
    """A real check_and_liquidate message, as the producer publishes it (taken off the queue before any
    worker runs)."""
    liquidate.check_and_liquidate.apply_async(args=["0x" + "11" * 20, 1, time.time(), "scan"], queue="priority")
    return json.loads(r.rpop("priority"))


def _envelope(template: dict, queue: str, body: bytes) -> bytes:
    """A well-formed envelope for `queue` (fresh ids) whose task body is `body`."""
    env = json.loads(json.dumps(template))
    env["body"] = base64.b64encode(body).decode()
    env["headers"]["id"] = env["headers"]["root_id"] = str(uuid.uuid4())
    env["properties"]["delivery_tag"] = str(uuid.uuid4())
    env["properties"]["delivery_info"]["routing_key"] = queue
    return json.dumps(env).encode()


def _poison(r: redis.Redis, template: dict) -> list[tuple[str, bytes]]:
    """Push garbage onto every list and the broadcast channel; returns (queue, payload) of what must end up
    on the dead-letter list."""
    truncated = json.dumps(template).encode()[:150]
    expected = []
    for key in LISTS:
        for payload in (*GARBAGE, truncated):
            r.lpush(key, payload)
            expected.append((key.split(PRIORITY_SEP)[0], payload))
    for queue in ("priority", "default"):
        # Celery's consumer rejects a body that is not JSON by itself (and keeps no copy); a JSON body of the
        # wrong shape would end the worker without liqbot.consumer.
        r.lpush(queue, _envelope(template, queue, b"not json"))
        shaped = _envelope(template, queue, b"[1]")
        r.lpush(queue, shaped)
        expected.append((queue, shaped))
    wait_until(r.pubsub_numpat, 10, "a worker listening to broadcasts")  # a moment after ' ready.'
    received = r.publish(PIDBOX, b"{}")
    assert received >= 1
    expected += [("celery.pidbox", b"{}")] * received
    return expected


def _dead_letters(r: redis.Redis) -> list[dict]:
    return [json.loads(e) for e in r.lrange("liqbot:deadletter", 0, -1)]


def _set_aside(r: redis.Redis, expected: list[tuple[str, bytes]]) -> list[dict]:
    from liqbot.broker import raw_of

    entries = wait_until(lambda: (d := _dead_letters(r)) and len(d) >= len(expected) and d, 30,
                         f"{len(expected)} dead letters")
    assert sorted((e["queue"], raw_of(e)) for e in entries) == sorted(expected)
    return entries


def test_garbage_on_both_lanes_is_set_aside_and_both_lanes_liquidate(chain: Devnet, env: dict, stack: Stack, rt: Runtime):
    r = redis.Redis.from_url(env["REDIS_URL"])
    template = _template(r)
    worker = stack.worker("lanes", ("worker", "-Q", "priority,default", "-c", "1", "--prefetch-multiplier=1"))
    expected = _poison(r, template)
    entries = _set_aside(r, expected)
    assert {e["list"] for e in entries} >= set(LISTS)
    assert all(e["problem"] and e["size"] > 0 for e in entries)

    # Both lanes still consume: one liquidation sent to each.
    users = [open_position(chain, who) for who in ("user4", "user5")]
    move = move_price(chain.market, "WETH", pct=-10)
    assert all(a.liquidatable for a in account_data(chain.rpc, chain.market.pool, users).values())
    for user, queue, path in ((users[0], "priority", "scan"), (users[1], "default", "fallback")):
        liquidate.check_and_liquidate.apply_async(args=[user, move.block, time.time(), path], queue=queue)
    wait_until(lambda: {e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)} >= set(users), 60,
               "a liquidation from each lane")
    assert worker.alive()
    log = worker.text()
    assert "Unrecoverable error" not in log
    assert "poison message on priority (2 bytes): b'\\xff\\xfe'" in log
    assert "poison message on default (8 bytes): b'not json'" in log
    assert "Can't decode message body" in log  # Celery's own handling of a body that is not JSON

    count, newest = rt.state.dead_letters(1)
    assert count == len(expected)
    res = subprocess.run([sys.executable, "-m", "liqbot", "status"], capture_output=True, text=True, env={**stack.env},
                         cwd=stack.cwd, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert f"dead letters: {count} (newest: {newest[0]['queue']} " in res.stdout

    from liqbot.metrics import LiqbotCollector

    metric = next(m for m in LiqbotCollector().collect() if m.name == "liqbot_dead_letters")
    assert metric.samples[0].value == count


@pytest.mark.e2e
def test_garbage_on_a_running_stack_stops_no_process_and_the_crash_is_liquidated(chain: Devnet, env: dict, stack: Stack):
    borrowers = [p.address for p in seed_borrowers(chain.market, 50, seed=24).borrowers]
    r = redis.Redis.from_url(env["REDIS_URL"])
    template = _template(r)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer()
    wait_until(lambda: _users_in_db(env) >= 50, 60, "backfilled borrowers in the store")

    _set_aside(r, _poison(r, template))
    time.sleep(1)  # what a poison message did to a worker would show by now
    assert {name: p.alive() for name, p in stack.procs.items()} == dict.fromkeys(stack.procs, True)

    liquidatable, _ = _crash_and_check(chain, env, borrowers)
    assert liquidatable
    assert {name: p.alive() for name, p in stack.procs.items()} == dict.fromkeys(stack.procs, True)
    for name in ("priority", "default"):
        assert "Unrecoverable error" not in stack.procs[name].text()
