"""Programmatic Alembic: upgrade a database to the newest schema, report its revision.

The migration scripts live inside the package (``wasteml_server/storage/migrations``), so no
``alembic.ini`` is needed anywhere; the server calls :func:`migrate` at start.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from wasteml_server.adapters.storage.db import Database, map_database_errors

#: Directory holding ``env.py``, ``script.py.mako`` and ``versions/``.
MIGRATIONS_DIR: Path = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no ini file).

    Args:
        database_url: SQLAlchemy URL handed to ``env.py`` through ``config.attributes`` (not
            through the ini interpolation, so ``%`` in passwords needs no escaping).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    """The newest revision id among the packaged migrations, e.g. ``"0001"``."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS_DIR}")
    return head


def migrate(database_url: str, revision: str = "head") -> str | None:
    """Run ``alembic upgrade <revision>`` on ``database_url`` and return the resulting revision.

    SQLite files get their parent directory created first. Safe to call on every start: an
    up-to-date database is left alone; on PostgreSQL concurrent callers serialize on an advisory
    lock.

    Args:
        database_url: SQLAlchemy URL (``sqlite:///var/wasteml.db``, ``postgresql+psycopg://...``).
        revision: target revision, ``"head"`` by default.

    Returns:
        The database's revision after the upgrade.

    Raises:
        InvalidArgumentError: ``database_url`` is malformed.
        UnavailableError: the database cannot be reached.
    """
    db = Database(database_url)
    try:
        with map_database_errors(), db.engine.begin() as connection:
            config = alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision_of(db)
    finally:
        db.dispose()


def current_revision(database_url: str) -> str | None:
    """The Alembic revision a database is at, or None if it was never migrated.

    Raises:
        InvalidArgumentError: ``database_url`` is malformed.
        UnavailableError: the database cannot be reached.
    """
    db = Database(database_url)
    try:
        return current_revision_of(db)
    finally:
        db.dispose()


def current_revision_of(db: Database) -> str | None:
    """The Alembic revision of an open :class:`Database`, or None if it was never migrated.

    Raises:
        UnavailableError: the database cannot be reached.
    """
    with map_database_errors(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
