"""liqbot: an Aave v3 liquidation bot with a latency-first priority lane."""

__version__ = "0.1.0"
