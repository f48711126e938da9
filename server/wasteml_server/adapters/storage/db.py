"""Engine, sessions and error mapping of the SQL store.

Access is synchronous SQLAlchemy; async callers (servicers, the audit writer) run store calls
with ``asyncio.to_thread``. A database that cannot be reached at call time surfaces as
:class:`~wasteml_server.core.errors.UnavailableError` with dependency ``"database"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from wasteml_server.core.errors import InvalidArgumentError, UnavailableError

if TYPE_CHECKING:
    from wasteml_server.core.settings import Settings

logger = logging.getLogger(__name__)

#: DB-API failures that mean "the database is not reachable or not usable right now".
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,  # connection pool exhausted for pool_timeout seconds
)


def parse_database_url(database_url: str) -> URL:
    """Parse a SQLAlchemy URL, raising ``InvalidArgumentError("database_url", ...)`` if malformed."""
    try:
        return make_url(database_url)
    except exc.ArgumentError as err:
        raise InvalidArgumentError("database_url", f"not a SQLAlchemy URL: {err}") from None


def sqlite_file(url: URL) -> Path | None:
    """Filesystem path of a file-backed SQLite URL; None for in-memory SQLite or other back-ends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_parent(url: URL) -> None:
    """Create the parent directory of a file-backed SQLite database (no-op for other URLs)."""
    path = sqlite_file(url)
    if path is not None and path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def map_database_errors() -> Iterator[None]:
    """Translate connection-level DB-API errors into ``UnavailableError("database", ...)``.

    Integrity errors and programming errors pass through unchanged (they are bugs or races the
    caller handles). The client-facing message names only the error class; details are logged.
    """
    try:
        yield
    except _UNAVAILABLE_ERRORS as err:
        logger.warning("SQL store unavailable: %s", err)
        raise UnavailableError(
            "database", f"SQL store not reachable ({type(err).__name__})"
        ) from err


class Database:
    """An engine and a session factory for one database URL.

    SQLite (the local default) is opened with WAL journaling, a busy timeout and foreign keys
    on, and its parent directory is created; server databases (PostgreSQL via
    ``postgresql+psycopg://``) get ``pool_pre_ping`` and a bounded connect timeout.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///var/wasteml.db`` or
            ``postgresql+psycopg://user@127.0.0.1:5432/wasteml``.
        connect_timeout_s: bound on opening a server connection and on waiting for a pooled
            connection, seconds (> 0).
        busy_timeout_s: how long SQLite waits for a competing writer's lock, seconds (> 0).
        pool_size: connections kept open to a server database (>= 1).
        echo: log every SQL statement (debugging).

    Raises:
        InvalidArgumentError: on a malformed URL or a non-positive timeout/pool size.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        busy_timeout_s: float = 5.0,
        pool_size: int = 5,
        echo: bool = False,
    ) -> None:
        if not connect_timeout_s > 0:
            raise InvalidArgumentError("connect_timeout_s", "must be > 0 seconds")
        if not busy_timeout_s > 0:
            raise InvalidArgumentError("busy_timeout_s", "must be > 0 seconds")
        if pool_size < 1:
            raise InvalidArgumentError("pool_size", "must be >= 1")
        self.url: URL = parse_database_url(url)
        self.backend: str = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.backend == "sqlite":
            ensure_sqlite_parent(self.url)
            kwargs["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
        else:
            kwargs.update(
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=connect_timeout_s,
            )
            if self.backend == "postgresql":
                # libpq: whole seconds, at least 2 (it treats 1 as 2).
                kwargs["connect_args"] = {"connect_timeout": max(2, round(connect_timeout_s))}
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
            raise InvalidArgumentError("database_url", f"cannot use this URL: {err}") from None
        if self.backend == "sqlite":
            busy_ms = round(busy_timeout_s * 1000)
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_ms))
        self.sessionmaker: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """A ``Database`` for ``settings.database_url`` with the configured timeouts."""
        return cls(
            settings.database_url,
            connect_timeout_s=settings.database_connect_timeout_s,
            busy_timeout_s=settings.sqlite_busy_timeout_s,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on normal exit, rolled back on error.

        Raises:
            UnavailableError: the database cannot be reached (dependency ``"database"``).
        """
        with map_database_errors(), self.sessionmaker() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Run ``SELECT 1``.

        Raises:
            UnavailableError: the database cannot be reached.
        """
        with map_database_errors(), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection (call on shutdown; the object may be reused after)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _sqlite_pragmas(busy_ms: int) -> Any:
    """A ``connect`` listener setting WAL, busy timeout, foreign keys and synchronous=NORMAL."""

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return on_connect
