"""Databases created by `create_all` before migrations existed carry no version: which revision they are.

Each revision up to 0004 matches one schema liqbot once created; they differ in the tables present and
in the columns of `attempts` (the only table that grew). A database that matches none is refused rather
than guessed at.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

BASELINE_TABLES = frozenset({"users", "positions", "attempts", "breaker_events", "cursors"})
BASELINE_ATTEMPT_COLUMNS = frozenset({
    "id", "user", "path", "task_id", "detected_block", "detected_at", "enqueued_at", "started_at", "sent_at", "tx_hash",
    "collateral_asset", "debt_asset", "debt_to_cover", "outcome", "reason", "latency_ms", "gas_used", "mined_block", "nonce",
    "max_fee", "tip", "collateral_price", "debt_price", "expected_profit_base", "realised_profit_base", "debt_repaid",
    "collateral_seized",
})
# revision -> (tables, attempts columns) it adds to the one before
CHANGES = {
    "0001": (BASELINE_TABLES, BASELINE_ATTEMPT_COLUMNS),
    "0002": (frozenset(), frozenset({"rival_tx"})),
    "0003": (frozenset(), frozenset({"route"})),
    "0004": (frozenset({"captures"}), frozenset()),
}


def shapes() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Each pre-migration revision's whole shape: (liqbot tables, attempts columns)."""
    out, tables, columns = {}, frozenset[str](), frozenset[str]()
    for rev, (new_tables, new_columns) in CHANGES.items():
        tables, columns = tables | new_tables, columns | new_columns
        out[rev] = (tables, columns)
    return out


def legacy_revision(conn: Connection) -> str | None:
    """The revision an unversioned database matches; None when it holds none of our tables (a new database).

    Raises ValueError, naming what differs from the nearest revision, when the tables match no revision."""
    known = shapes()
    all_tables = known[max(known)][0]
    insp = inspect(conn)
    tables = set(insp.get_table_names()) & all_tables
    if not tables:
        return None
    columns = {c["name"] for c in insp.get_columns("attempts")} if "attempts" in tables else set()
    for rev, (want_tables, want_columns) in known.items():
        if tables == want_tables and columns == want_columns:
            return rev
    base_tables, base_columns = known["0001"]
    raise ValueError(f"no liqbot schema had tables {sorted(tables)} with attempts columns {sorted(columns)} (missing from "
                     f"the oldest: {sorted((base_tables - tables) | (base_columns - columns))}; unknown: "
                     f"{sorted(columns - known[max(known)][1])})")
