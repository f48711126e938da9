"""Alembic migrations of the SQL store on SQLite and PostgreSQL, and the ``wasteml db`` CLI."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from wasteml_server.adapters.storage import Database, current_revision, head_revision, migrate
from wasteml_server.adapters.storage.models import Base, PredictionAudit
from wasteml_server.adapters.storage.schema import alembic_config
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError
from wasteml_tools.storage_cli import app

TABLES = {"model_versions", "prediction_audit", "solver_jobs", "plans"}


def test_fresh_sqlite_file_is_migrated_and_parent_created(tmp_path):
    """migrate() creates the SQLite file's parent directories and every table at head."""
    path = tmp_path / "nested" / "var" / "wasteml.db"
    url = f"sqlite:///{path}"
    assert current_revision(url) is None
    assert migrate(url) == head_revision()
    assert path.is_file()
    engine = sa.create_engine(url)
    try:
        assert TABLES <= set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_migrate_is_idempotent_and_reports_head(empty_url):
    """Running migrate twice leaves the database at head without error, on each back-end."""
    assert migrate(empty_url) == head_revision()
    assert migrate(empty_url) == head_revision()
    assert current_revision(empty_url) == head_revision()


def test_models_match_migrations(db_url):
    """After upgrade head, autogenerate finds no difference between the models and the schema."""
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        db.dispose()
    assert diffs == []


def test_downgrade_to_base_and_up_again(db_url):
    """The initial revision's downgrade drops every table and upgrade recreates them."""
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            config = alembic_config(db_url)
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert not TABLES & set(sa.inspect(db.engine).get_table_names())
    finally:
        db.dispose()
    assert current_revision(db_url) is None
    assert migrate(db_url) == head_revision()


def test_cli_upgrade_and_current(tmp_path, monkeypatch):
    """`wasteml db upgrade` migrates the configured database and `current` reports it up to date."""
    url = f"sqlite:///{tmp_path / 'cli' / 'wasteml.db'}"
    monkeypatch.setenv("WASTEML_DATABASE_URL", url)
    runner = CliRunner()
    before = runner.invoke(app, ["current"])
    assert before.exit_code == 0, before.output
    assert "(none)" in before.output and "needs" in before.output
    up = runner.invoke(app, ["upgrade"])
    assert up.exit_code == 0, up.output
    assert f"revision {head_revision()}" in up.output
    after = runner.invoke(app, ["current"])
    assert after.exit_code == 0, after.output
    assert "up to date" in after.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_postgres_is_unavailable_quickly():
    """A PostgreSQL URL with nothing listening fails fast with UnavailableError('database')."""
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nothing"
    start = time.monotonic()
    with pytest.raises(UnavailableError) as info:
        migrate(url)
    assert info.value.dependency == "database"
    assert time.monotonic() - start < 5.0
    db = Database(url, connect_timeout_s=2)
    try:
        with pytest.raises(UnavailableError):
            db.ping()
    finally:
        db.dispose()


def test_cli_reports_unreachable_database(monkeypatch):
    """`wasteml db current` on an unreachable database exits 1 with a one-line error, no traceback."""
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    monkeypatch.setenv(
        "WASTEML_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x"
    )
    result = CliRunner().invoke(app, ["current"])
    assert result.exit_code == 1
    assert "database unavailable" in result.output
    assert "Traceback" not in result.output


def test_malformed_url_names_the_field():
    """A malformed database URL raises InvalidArgumentError naming database_url."""
    with pytest.raises(InvalidArgumentError) as info:
        migrate("definitely not a url")
    assert info.value.field == "database_url"


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    """Every SQLite connection of a Database has WAL, the configured busy timeout and foreign keys on."""
    db = Database(f"sqlite:///{tmp_path / 'w.db'}", busy_timeout_s=2.5)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_naive_timestamps_are_refused(db):
    """Writing a naive datetime into a UTC timestamp column fails instead of guessing its zone."""
    row = PredictionAudit(
        created_at=dt.datetime(2026, 11, 21, 12, 0),  # no tzinfo
        rpc_method="/wasteml.v1.Forecasting/ForecastDemand",
        model_name="demand",
        model_version=1,
        request_hash="0" * 64,
        output={"yhat": [1.0]},
        latency_ms=1.0,
    )
    with pytest.raises(sa.exc.StatementError) as info, db.session() as session:
        session.add(row)
    assert isinstance(info.value.orig, ValueError)
    with db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(PredictionAudit)) == 0
