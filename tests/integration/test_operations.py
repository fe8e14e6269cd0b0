"""What an operator touches: the compose file, Flower in a real browser, the metrics, the demo."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from liqbot.config import Settings
from liqbot.devnet.anvil import free_port
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
KNOWN_ENV = {f.upper() for f in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_run_real_commands_with_known_settings(market_file: Path):
    compose = _compose()
    services = compose["services"]
    assert {"redis", "postgres", "devnet", "worker-priority", "worker-default", "beat", "producer", "flower"} <= set(services)
    assert services["worker-priority"]["command"][:8] == ["celery", "-A", "liqbot", "worker", "-Q", "priority", "-c", "1"]
    assert "--prefetch-multiplier=1" in services["worker-priority"]["command"]
    assert any(a.startswith("--basic-auth=") for a in services["flower"]["command"])
    for name, svc in services.items():
        assert "healthcheck" in svc or "<<" in str(svc) or name in {"worker-priority", "worker-default", "beat", "producer",
                                                                    "flower"}, name
        assert svc.get("restart") == "unless-stopped", f"{name} has no restart policy"
        env = svc.get("environment") or {}
        ours = {k for k in env if not k.startswith("POSTGRES_")}
        assert ours <= KNOWN_ENV, f"{name} sets variables the settings do not know: {ours - KNOWN_ENV}"
        command = svc.get("command")
        if not command or svc.get("image", "").split(":")[0] in ("redis", "postgres"):
            continue
        argv = [re.sub(r"\$\{[^}]*\}", "x", a) for a in command]
        program, args = argv[0], argv[1:]
        runner = [sys.executable, "-m", "celery"] if program == "celery" else [sys.executable, "-m", "liqbot"]
        env_run = {**os.environ, **{k: str(v) for k, v in env.items()}, "MARKET_FILE": str(market_file),
                   "REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "sqlite://"}
        res = subprocess.run([*runner, *args, "--help"], capture_output=True, text=True, env=env_run, cwd=ROOT,
                             timeout=60, check=False)
        assert res.returncode == 0, f"{name}: `{shlex.join(command)}` is refused: {res.stderr[-500:]}"


def test_every_cli_command_has_help():
    for cmd in ([], ["producer"], ["status"], ["demo"], ["config"], ["config", "set"], ["breaker"], ["breaker", "status"],
                ["breaker", "reset"], ["devnet"], ["devnet", "up"], ["devnet", "down"], ["devnet", "seed"], ["devnet", "price"],
                ["db"], ["db", "upgrade"], ["db", "current"], ["contract"], ["contract", "deploy"]):
        res = subprocess.run([sys.executable, "-m", "liqbot", *cmd, "--help"], capture_output=True, text=True, cwd=ROOT,
                             timeout=60, check=False)
        assert res.returncode == 0, (cmd, res.stderr)
        assert len(res.stdout.strip().splitlines()) > 3


def test_metrics_are_scraped(rt, env: dict):
    from liqbot.metrics import serve

    port = free_port()
    serve(port)
    rt.state.count("fallback")
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for name in ("liqbot_liquidations", "liqbot_skips", "liqbot_detection_to_send_ms", "liqbot_queue_depth",
                 "liqbot_breaker_state", "liqbot_priority_workers", "liqbot_producer_block_lag", "liqbot_routing"):
        assert name in text, name
    assert 'liqbot_queue_depth{queue="priority"} 0.0' in text
    assert 'liqbot_breaker_state{state="closed"} 1.0' in text
    assert 'liqbot_routing_total{event="fallback"} 1.0' in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_flower_shows_both_queues_and_workers_in_a_browser(env: dict, stack: Stack, tmp_path: Path):
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    port = free_port()
    flower = stack.celery("flower", "flower", f"--port={port}", "--address=127.0.0.1", "--basic-auth=ops:s3cret")
    wait_until(lambda: _up(port), 60, "flower")
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 401  # basic auth in front
    time.sleep(3)  # let Flower see both workers

    def page(path: str) -> str:
        res = subprocess.run(_chromium(tmp_path, "--dump-dom", f"http://ops:s3cret@127.0.0.1:{port}{path}"),
                             capture_output=True, text=True, timeout=90, check=False)
        return res.stdout

    workers = wait_until(lambda: (html := page("/workers")) and "priority@" in html and "default@" in html and html,
                         60, "both workers on Flower's workers page", interval=2)
    assert "priority@" in workers
    queues = page("/broker")
    assert "priority" in queues
    assert "default" in queues
    # The README's screenshots are taken during a demo crash instead: docs/screenshots.py.
    for path, name in (("/workers", "workers.png"), ("/broker", "broker.png")):
        shot = tmp_path / name
        subprocess.run(_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,720",
                                 f"http://ops:s3cret@127.0.0.1:{port}{path}"), capture_output=True, timeout=90, check=False)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert flower.alive()


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


def _chromium(tmp: Path, *args: str) -> list[str]:
    return ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp / 'chromium'}", "--virtual-time-budget=8000", *args]


def test_demo_liquidates_live_and_leaves_no_process(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "liqbot", "demo", "--duration", "30", "--borrowers", "60"],
                         capture_output=True, text=True, timeout=240, cwd=ROOT, check=False,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr[-2000:]
    sent = int(re.search(r"(\d+) liquidations sent", res.stdout).group(1))
    assert sent > 0
    assert "Flower: http://127.0.0.1:" in res.stdout
    workdir = re.search(r"logs in (\S+)\)", res.stdout).group(1)
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if workdir.encode() in (proc / "environ").read_bytes() or workdir.encode() in (proc / "cmdline").read_bytes():
                    leftovers.append(proc.name)
            except OSError:
                continue
    assert leftovers == [], f"processes left behind: {leftovers}"
