"""Run the whole liqbot stack as real processes (redis-server, celery workers, beat, the producer),
each in its own process group with its log in one folder. Tests, the demo and the benchmark use it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from liqbot.devnet.anvil import free_port, stop_group
from liqbot.errors import DevnetError

PRIORITY_WORKER = ("worker", "-Q", "priority", "-c", "1", "--prefetch-multiplier=1")
DEFAULT_WORKER = ("worker", "-Q", "default")
LANE_FLAGS = ("--without-gossip", "--without-mingle")  # the level is LOG_LEVEL, as for every process


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    offset: int = 0  # where this run's lines start: a name started again appends to its log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        """This run's log (never the lines of an earlier process of the same name: its ' ready.' is not ours)."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    cwd: Path = field(default_factory=lambda: Path(__file__).resolve().parents[2])

    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None, nice: int = 0) -> Proc:
        log = self.workdir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            popen = subprocess.Popen(["nice", "-n", str(nice), *argv] if nice else argv, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.cwd, start_new_session=True, env={**os.environ, **self.env, **(extra_env or {})})
        proc = Proc(name, popen, log, offset)
        self.procs[name] = proc
        return proc

    def redis(self, name: str = "redis", port: int | None = None, password: str | None = None) -> str:
        """A redis-server of our own (no persistence); `port` restarts one where it was."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise DevnetError("redis-server is not installed (apt-get install redis-server)")
        port = port or free_port()
        extra = ["--requirepass", password] if password else []
        self.start(name, [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra])
        url = f"redis://{':' + password + '@' if password else ''}127.0.0.1:{port}/0"
        self.wait_for(lambda: _redis_ping(url), f"{name} on port {port}", 10)
        self.env["REDIS_URL"] = url
        return url

    def celery(self, name: str, *args: str, extra_env: dict[str, str] | None = None, nice: int = 0) -> Proc:
        return self.start(name, [sys.executable, "-m", "celery", "-A", "liqbot", *args], extra_env, nice)

    def worker(self, name: str, lane: tuple[str, ...], *more: str, wait: bool = True,
               extra_env: dict[str, str] | None = None, nice: int = 0) -> Proc:
        """`nice` sets a worker's CPU priority (bookkeeping +10, the lane -5): on a small machine the lane
        must not wait for a timeslice behind bookkeeping."""
        proc = self.celery(name, *lane, *LANE_FLAGS, "-n", f"{name}@%h", *more, extra_env=extra_env, nice=nice)
        if wait:
            self.wait_for(lambda: " ready." in proc.text(), f"worker {name}", 60, proc)
        return proc

    def beat(self, name: str = "beat") -> Proc:
        schedule = self.workdir / "celerybeat-schedule"
        return self.celery(name, "beat", "-s", str(schedule), "--pidfile=")

    def producer(self, name: str = "producer", wait: bool = True, extra_env: dict[str, str] | None = None) -> Proc:
        proc = self.start(name, [sys.executable, "-m", "liqbot", "producer"], extra_env)
        if wait:
            self.wait_for(lambda: "producer live" in proc.text(), "producer", 60, proc)
        return proc

    def wait_for(self, predicate, what: str, timeout: float, proc: Proc | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if proc is not None and not proc.alive():
                raise DevnetError(f"{what} exited with code {proc.popen.returncode}:\n{proc.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise DevnetError(f"{what} not ready within {timeout}s" + (f":\n{proc.text()[-3000:]}" if proc else ""))
            time.sleep(0.05)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or not proc.alive():
            return
        stop_group(proc.popen.pid, sig)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(5)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def _redis_ping(url: str) -> bool:
    import redis

    from liqbot.store.redis import client

    try:
        return bool(client(url).ping())
    except redis.RedisError:
        return False
