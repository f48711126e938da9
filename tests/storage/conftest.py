"""Fixtures of the storage tests: a migrated SQLite file and, where reachable, a fresh PostgreSQL
database per test (created and dropped here), so every repository test runs on both back-ends.

PostgreSQL is looked for at ``WASTEML_TEST_POSTGRES_DSN`` (libpq DSN of a role that may create
databases; default ``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Without it the
PostgreSQL variants skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from wasteml_server.adapters.storage import Database, migrate

PG_DSN = os.environ.get("WASTEML_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

_pg_unavailable: str | None = None
_pg_checked = False


def postgres_skip_reason() -> str | None:
    """Why PostgreSQL tests cannot run here (None if they can); probed once per session."""
    global _pg_checked, _pg_unavailable
    if not _pg_checked:
        _pg_checked = True
        try:
            import psycopg
        except ImportError:
            _pg_unavailable = "psycopg is not installed (pip install 'wasteml[postgres]')"
        else:
            try:
                with psycopg.connect(PG_DSN, connect_timeout=3, autocommit=True) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error as err:
                _pg_unavailable = f"PostgreSQL not reachable at {PG_DSN}: {str(err).strip().splitlines()[0][:200]}"
    return _pg_unavailable


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, connect_timeout=3, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a new, empty PostgreSQL database, dropped after the test."""
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"wasteml_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_DSN).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _admin_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty (unmigrated) database: a fresh SQLite file, or a fresh PostgreSQL db."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'wasteml.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db_url(empty_url: str) -> str:
    """URL of a database migrated to head, on each back-end."""
    migrate(empty_url)
    return empty_url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An open ``Database`` on the migrated database, disposed after the test."""
    database = Database(db_url)
    try:
        yield database
    finally:
        database.dispose()
