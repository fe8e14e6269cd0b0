"""Logging, configured once per process from LOG_LEVEL. Priority-lane lines start with ⚡."""

from __future__ import annotations

import logging
import sys

FAST = "⚡"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str = "INFO") -> None:
    """Idempotent: Celery may ask again in a forked pool process, which already has the handler."""
    root = logging.getLogger()
    if getattr(root, "_liqbot", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "websockets", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._liqbot = True  # type: ignore[attr-defined]
