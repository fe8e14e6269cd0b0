"""What the liquidator holds of each asset, known on the lane without a read: one balance batch, read
again by a background thread every `every` seconds, and counted down by each send in between.

It only lets a plan skip its verifying simulation (execution.trusted): a wrong figure (another process
spent the same tokens) costs one reverted transaction, after which plans are verified again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
INVENTORY_EVERY_SECS = 10.0
INVENTORY_MAX_AGE_SECS = 30.0  # older (the node unreachable meanwhile): not trusted


class Inventory:
    def __init__(self, read: Callable[[], dict[str, int]], max_age: float = INVENTORY_MAX_AGE_SECS):
        self._read, self._max_age = read, max_age
        self._held: dict[str, int] = {}
        self._at = float("-inf")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Read every balance now."""
        held = self._read()
        with self._lock:
            self._held, self._at = held, time.monotonic()

    def follow(self, every: float = INVENTORY_EVERY_SECS, still: Callable[[], bool] = lambda: True) -> None:
        """Read now, then in a daemon thread every `every` seconds while `still()` (once per process: a worker's
        child calls it after the fork, where threads are its own)."""
        self.refresh()
        if self._thread is not None and self._thread.is_alive():
            return

        def run() -> None:
            while True:
                time.sleep(every)
                if not still():
                    return
                try:
                    self.refresh()
                except Exception as exc:  # plans are verified by simulation until a read succeeds
                    log.debug("inventory read failed: %s", exc)

        self._thread = threading.Thread(target=run, name="inventory", daemon=True)
        self._thread.start()

    def covers(self, asset: str, amount: int) -> bool:
        """Whether a recent read, less what we sent since, holds `amount` of `asset`."""
        with self._lock:
            return time.monotonic() - self._at < self._max_age and self._held.get(asset, 0) >= amount

    def spend(self, asset: str, amount: int) -> None:
        with self._lock:
            self._held[asset] = self._held.get(asset, 0) - amount
