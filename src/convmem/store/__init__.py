"""Storage backends behind one contract (`Store`). SQLite is the default; PostgreSQL when one file is not enough."""

from __future__ import annotations

from convmem.store.base import Store, TurnRow, text_hash


def open_store(location: str) -> Store:
    """Open the backend a location names: `postgresql://...` or a SQLite file path (`:memory:` works too)."""
    if location.startswith(("postgresql://", "postgres://")):
        from convmem.store.postgres import PostgresStore

        return PostgresStore(location)
    from convmem.store.sqlite import SQLiteStore

    return SQLiteStore(location)


__all__ = ["Store", "TurnRow", "open_store", "text_hash"]
