"""Take the README's Flower screenshots during a demo crash, in headless Chromium.

    .venv/bin/python docs/screenshots.py [--out docs] [--borrowers 300] [--duration 90]

Runs `liqbot demo` (its own Redis, devnet, workers, beat, producer and Flower), reads Flower's address and
password from its output, then watches Flower's API while the demo crashes prices:
- docs/flower-broker.png: the Broker page, taken once the crash has started (a liquidation task has
  succeeded) while a queue holds waiting tasks (depths read before and after the shot; a shot with the
  queues empty on either side is taken again), taken again if both lanes are seen waiting within 40 s;
- docs/flower-tasks.png: the Tasks page searched for liqbot.check_and_liquidate with a "sent ..." result,
  once five have succeeded;
- docs/flower-workers.png: the Workers page (the dashboard), with each worker's processed count.
The demo is stopped (SIGTERM: it stops everything it started) once all three are taken, or at --duration.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
LANE_TASK = "liqbot.check_and_liquidate"
SENT_ON_TASKS_PAGE = 5  # liquidation tasks with a "sent" result before the Tasks page is taken
FLOWER_LINE = re.compile(r"Flower: (http://\S+)\s+\(user (\S+), password (\S+)\)")
SHOTS = {"broker": ("/broker", "flower-broker.png", "1280,720"),
         # Flower puts `name=` into its search box: the lane's tasks whose result says "sent" (the others of
         # a group, liquidated with it, say "grouped")
         "tasks": (f"/tasks?name={LANE_TASK}%20result:sent", "flower-tasks.png", "1800,720"),
         "workers": ("/workers", "flower-workers.png", "1600,600")}


def chromium(profile: Path, url: str, out: Path, size: str, budget_ms: int) -> None:
    """One headless screenshot with the flags that work on these machines (see testing-here.md)."""
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                    f"--window-size={size}", f"--screenshot={out}", url],
                   capture_output=True, timeout=120, check=True)


class Flower:
    def __init__(self, url: str, user: str, password: str):
        self.url, self.auth = url.rstrip("/"), (user, password)
        host = self.url.split("://", 1)[1]
        self.page_base = f"http://{user}:{password}@{host}"  # basic auth for Chromium, in the address

    def get(self, path: str) -> dict | None:
        try:
            res = requests.get(self.url + path, auth=self.auth, timeout=5)
        except requests.RequestException:
            return None
        return res.json() if res.status_code == 200 else None

    def depths(self) -> dict[str, int]:
        data = self.get("/api/queues/length") or {}
        return {q["name"]: q["messages"] for q in data.get("active_queues", [])}

    def sent_tasks(self) -> int:
        tasks = self.get(f"/api/tasks?taskname={LANE_TASK}&state=SUCCESS") or {}
        return sum(str(t.get("result", "")).strip("'\"").startswith("sent") for t in tasks.values())

    def processed(self) -> dict[str, int]:
        data = self.get("/workers?json=1") or {"data": []}
        return {w["hostname"]: w.get("task-received", 0) for w in data["data"]}


def take(out: Path, borrowers: int, duration: float) -> dict[str, Path]:
    if shutil.which("chromium") is None:
        sys.exit("docs/screenshots.py needs Debian's chromium (apt-get install chromium)")
    demo = subprocess.Popen([sys.executable, "-m", "liqbot", "demo", "--borrowers", str(borrowers),
                             "--duration", str(duration)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:  # the demo's output: Flower's address and password, then its live table
        assert demo.stdout is not None
        for line in demo.stdout:
            if m := FLOWER_LINE.search(line):
                found.update(url=m.group(1), user=m.group(2), password=m.group(3))
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    taken: dict[str, Path] = {}
    both = False
    profile = Path(tempfile.mkdtemp(prefix="liqbot-shots-"))
    try:
        if not ready.wait(300):
            raise SystemExit("the demo did not start Flower within 300 s")
        flower = Flower(found["url"], found["user"], found["password"])
        print(f"demo up, Flower at {flower.url}; waiting for the crash")
        deadline = time.monotonic() + duration
        both_until = None  # a Broker shot with both lanes waiting is worth waiting for, until then
        while demo.poll() is None and time.monotonic() < deadline:
            sent = flower.sent_tasks()  # before the first, the queues hold the producer's start-up bookkeeping
            if sent and both_until is None:
                both_until = time.monotonic() + 40
            depths = flower.depths()
            if sent and any(depths.values()) and ("broker" not in taken or (not both and all(depths.values()))):
                shot(flower, profile, out, "broker", 500, taken, check=lambda: any(flower.depths().values()))
                both = "broker" in taken and all(depths.values())
            if "tasks" not in taken and sent >= SENT_ON_TASKS_PAGE:
                shot(flower, profile, out, "tasks", 8000, taken)
                shot(flower, profile, out, "workers", 4000, taken)
            if len(taken) == len(SHOTS) and (both or time.monotonic() > both_until):
                break
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)  # the demo's own handler stops every process it started
            try:
                demo.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
    return taken


def shot(flower: Flower, profile: Path, out: Path, name: str, budget_ms: int, taken: dict[str, Path],
         check=None) -> None:
    path, filename, size = SHOTS[name]
    target = out / filename
    out.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    chromium(profile, flower.page_base + path, target, size, budget_ms)
    if not target.exists():
        raise SystemExit(f"chromium wrote no {target}")
    if check is None or check():
        taken[name] = target
        print(f"took {target} ({name}: depths {flower.depths()}, processed {flower.processed()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--borrowers", type=int, default=300)
    parser.add_argument("--duration", type=float, default=90)
    args = parser.parse_args()
    taken = take(args.out, args.borrowers, args.duration)
    missing = set(SHOTS) - set(taken)
    if missing:
        sys.exit(f"not taken: {', '.join(sorted(missing))} (the demo ended first; try a longer --duration)")


if __name__ == "__main__":
    main()
