"""Alembic environment: runs the revisions in ``versions/`` against one database.

Invoked by :func:`wasteml_server.adapters.storage.migrate` (no ``alembic.ini`` needed). The URL comes from
``config.attributes["database_url"]`` (or the ``sqlalchemy.url`` main option when the ``alembic``
command line is pointed at this directory). SQLite gets batch mode (``render_as_batch``) because
it cannot ``ALTER`` most things in place. On PostgreSQL a transaction-scoped advisory lock makes
concurrent starters (several server replicas) apply the migrations one after the other.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from wasteml_server.adapters.storage.models import Base

#: Arbitrary constant key of the PostgreSQL advisory lock held while migrating ("wasteml" in hex).
_PG_LOCK_KEY = 0x77617374656D6C

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    return str(url)


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = (
        connection.dialect.name
        if connection is not None
        else sa.make_url(url or "").get_backend_name()
    )
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of executing it (``alembic upgrade --sql``)."""
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply the revisions on a live connection (the given one, or a new engine's)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
