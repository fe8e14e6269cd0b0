"""Market state in memory: bootstrap at a pinned block (loader), exact account data from it (state)."""

from liqbot.mirror.loader import load_mirror
from liqbot.mirror.state import Mirror

__all__ = ["Mirror", "load_mirror"]
