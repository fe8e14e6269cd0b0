"""Start and stop a local anvil node in its own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from liqbot.chain.rpc import Rpc
from liqbot.devnet.artifacts import anvil_binary
from liqbot.errors import DevnetError, RpcError

# anvil's own default mnemonic; the market file lists the keys it yields (devnet only).
MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337


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
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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


def stop_group(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal a process group we started (never by name); False when it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
