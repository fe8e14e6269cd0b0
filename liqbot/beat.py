"""celery beat with a leader lease: several beats may run (on several machines); only the holder of
the lease in Redis sends the schedule, and a standby takes over within the lease's TTL."""

from __future__ import annotations

import logging

from celery.beat import PersistentScheduler

from liqbot.store.lease import Lease

log = logging.getLogger(__name__)
LEASE_TTL_SECS = 5.0


class LeasedScheduler(PersistentScheduler):
    _lease: Lease | None = None
    _leading = False

    def _get_lease(self) -> Lease:
        if self._lease is None:
            from liqbot.runtime import runtime

            state = runtime().state
            self._lease = Lease(state.r, state.key("beat", "leader"), LEASE_TTL_SECS)
        return self._lease

    def tick(self, *args, **kwargs) -> float:
        lease = self._get_lease()
        leading = lease.hold()
        if leading != self._leading:
            self._leading = leading
            log.warning("beat %s (%s)", "is now the active scheduler" if leading else "is on standby",
                        lease.owner if leading else f"leader {lease.holder()}")
        if not leading:
            return 1.0
        return min(super().tick(*args, **kwargs), LEASE_TTL_SECS / 5)

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
        super().close()
