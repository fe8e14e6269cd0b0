"""Start and stop a local anvil node in its own process group."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from liqbot.chain.rpc import Rpc
from liqbot.devnet.artifacts import anvil_binary
from liqbot.errors import DevnetError, RpcError

# anvil's own default mnemonic; the market file lists the keys it yields (devnet only).
MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337
PR_SET_PDEATHSIG = 1


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    port: int
    block_time: float | None = None
    host: str = "127.0.0.1"
    advertise: str | None = None  # the host name other machines / containers reach it by
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    _own_log: bool = field(default=False, repr=False)

    @property
    def _public(self) -> str:
        return self.advertise or ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host)

    @property
    def http_url(self) -> str:
        return f"http://{self._public}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._public}:{self.port}"

    def start(self, timeout: float = 10.0) -> Anvil:
        if not port_is_free(self.port, self.host):
            raise DevnetError(f"port {self.port} is already in use on {self.host}; pick another with --port")
        cmd = [
            str(anvil_binary()), "--host", self.host, "--port", str(self.port),
            "--mnemonic", MNEMONIC, "--accounts", "10", "--balance", "1000000",
            "--chain-id", str(CHAIN_ID),
        ]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
            os.close(fd)
            self.log_path, self._own_log = Path(name), True
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_dies_with_us())  # noqa: PLW1509 (one prctl, no lock taken)
        rpc = Rpc(f"http://127.0.0.1:{self.port}" if self.host in ("0.0.0.0", "::") else self.http_url, timeout=1.0, retries=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    tail = self.log_path.read_text(errors="replace").strip()[-500:]
                    raise DevnetError(f"anvil exited with code {self.process.returncode}: {tail}")
                try:
                    rpc.call("eth_chainId")
                    return self
                except (OSError, RpcError, ValueError):  # requests' errors are OSErrors
                    pass
                if time.monotonic() > deadline:
                    raise DevnetError(f"anvil did not answer on port {self.port} within {timeout}s")
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise
        finally:
            rpc.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            stop_group(self.process.pid)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                stop_group(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
        if self._own_log and self.log_path:
            self.log_path.unlink(missing_ok=True)


def _dies_with_us() -> Callable[[], None] | None:
    """anvil runs in its own process group, so a signal to ours does not reach it: have the kernel
    send it SIGTERM when we die, even by SIGKILL, mid-deploy included (Linux). Only from the main
    thread: the kernel follows the thread that started it, not the process."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return in_child


def block_secs(secs: float) -> int:
    """anvil's RPC mines at whole-second intervals; 0 would stop mining altogether."""
    if secs != int(secs) or secs < 1:
        raise DevnetError(f"block time {secs}: a whole number of seconds, at least 1")
    return int(secs)


def set_block_time(rpc: Rpc, secs: float | None) -> None:
    """Mine a block every `secs` seconds from now on, or on each transaction (automine) for None."""
    if secs is None:
        rpc.call("evm_setAutomine", True)
    else:
        rpc.call("evm_setIntervalMining", block_secs(secs))


@contextmanager
def interval_mining(rpc: Rpc, secs: float) -> Iterator[None]:
    """A running automine chain mines every `secs` seconds inside, so sent transactions wait in the
    pool as on a real network; automine again after (which mines whatever is still pending)."""
    set_block_time(rpc, secs)
    try:
        yield
    finally:
        set_block_time(rpc, None)


def stop_group(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal a process group we started (never by name); False when it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
