"""Applying the Alembic migrations in ``migrations/`` to a store URL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text

import migrations
from bot.store.store import make_engine

# The PostgreSQL advisory lock taken around migrations (any fixed 64-bit number: "chime" in ASCII).
MIGRATION_LOCK_KEY = 0x6368696D65


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # ConfigParser treats % as interpolation; URLs may contain it (escaped passwords).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    _migrate(command.upgrade, url, revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` removes the schema)."""
    _migrate(command.downgrade, url, revision)


def _migrate(step: Callable[[Config, str], None], url: str, revision: str) -> None:
    try:
        with migration_lock(url):
            step(alembic_config(url), revision)
    except CommandError as e:  # an unknown revision, or more steps back than there are
        known = ", ".join(["base", *revisions()])
        raise ValueError(
            f"cannot migrate to revision {revision!r}: {e} (revisions: {known}; or -N for N back)"
        ) from None


@contextlib.contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock: processes starting together migrate one after another.

    The second one waits, then finds the schema at head and has nothing to do. SQLite needs
    none: its file lock already lets one writer in at a time.
    """
    if not url.startswith("postgresql"):
        yield
        return
    engine = make_engine(url)
    try:
        # Its own connection, outside any transaction: the lock lasts until unlocked or closed.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def revisions() -> list[str]:
    """Every revision in ``migrations/``, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or "base"
