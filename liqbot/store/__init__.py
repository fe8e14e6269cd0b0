"""Adapters to what persists: Redis (locks, flags, heartbeats, counters) and SQL (positions, attempts)."""
