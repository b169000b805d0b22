"""Alembic environment: runs migrations on the connection `open_store` hands over.

`open_store` opens the transaction itself (on SQLite the driver would otherwise run DDL
outside of one) and passes the connection in `config.attributes["connection"]`, so every
migration of one start-up commits together or not at all.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from storage.catalog import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Run from the alembic command line with `-x url=...` (for developers writing migrations).
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("Name the database: alembic -x url=sqlite:///path/to/marketbot.db ...")
    engine = create_engine(url)
    with engine.begin() as own_connection:
        _run(own_connection)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("marketbot migrations run online only, from open_store().")
run_migrations_online()
