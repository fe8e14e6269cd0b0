"""Alembic's environment: always run on the connection liqbot hands over (liqbot.store.migrations)."""

from __future__ import annotations

from typing import Any

from alembic import context

from liqbot.store.db import Base, Uint256


def render_item(kind: str, obj: Any, autogen: Any) -> str | bool:
    """Drafted revisions name our Uint256 as migrations must: liqbot.store.db.Uint256()."""
    if kind == "type" and isinstance(obj, Uint256):
        autogen.imports.add("import liqbot.store.db")
        return "liqbot.store.db.Uint256()"
    return False


context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table instead
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
