"""Alembic environment: runs migrations on the URL or connection that chime passes in."""

from __future__ import annotations

from alembic import context

from bot.store.models import Base
from bot.store.store import make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a live connection (given by chime, or made from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Rebuilding a table (SQLite's batch mode) drops the old one, and with foreign
                # keys on that would null or delete the rows that refer to it. The connection
                # is discarded afterwards (the engine is disposed), so nothing else runs so.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # noqa: ANN001
    # render_as_batch lets later revisions alter columns on SQLite.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
