"""Shared fixtures: store URLs on SQLite and PostgreSQL, and a migrated store on each."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade

POSTGRES_URL = os.environ.get("CHIME_TEST_POSTGRES_URL")


def _pg_admin_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards.

    Skips when CHIME_TEST_POSTGRES_URL is unset (CI sets it whenever a server answers,
    so there these tests run).
    """
    if not POSTGRES_URL:
        pytest.skip("CHIME_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"chime_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_admin_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_pg_admin_url(POSTGRES_URL)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "chime.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store migrated to head, once on SQLite and once on PostgreSQL; closed afterwards."""
    upgrade(store_url)
    s = Store(store_url)
    yield s
    s.close()
