"""Alembic migrations for the catalog tables, run by `storage.store.open_store`."""
