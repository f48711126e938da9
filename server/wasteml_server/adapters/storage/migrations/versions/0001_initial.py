"""Initial schema: model registry, prediction audit, solver jobs, plans.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 15:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here on purpose (not imported from models.py): a revision must keep describing
# the schema as it was when it was written, whatever the models become later.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JOB_STATUS = sa.Enum(
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    name="job_status",
    native_enum=False,
    create_constraint=True,
    length=16,
)


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "model_versions",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source_package", sa.String(128), nullable=True),
        sa.Column("source_version", sa.String(64), nullable=True),
        sa.Column("file_hashes", JSON, nullable=False),
        sa.Column("export_settings", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("training_data_hash", sa.String(64), nullable=True),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("artifact_path", sa.String(1024), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )

    op.create_table(
        "prediction_audit",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("rpc_method", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("output", JSON, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_audit"),
    )
    op.create_index("ix_prediction_audit_created_at", "prediction_audit", ["created_at"])
    op.create_index(
        "ix_prediction_audit_model_name_model_version",
        "prediction_audit",
        ["model_name", "model_version"],
    )

    op.create_table(
        "solver_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", JOB_STATUS, nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("problem", sa.LargeBinary(), nullable=False),
        sa.Column("time_limit_s", sa.Float(), nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("best_objective", sa.Float(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_solver_jobs"),
    )
    op.create_index("ix_solver_jobs_status", "solver_jobs", ["status"])
    op.create_index("ix_solver_jobs_submitted_at", "solver_jobs", ["submitted_at"])

    op.create_table(
        "plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=False),
        sa.Column("model_versions", JSON, nullable=False),
        sa.Column("totals", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
    )
    op.create_index("ix_plans_service_date", "plans", ["service_date"])


def downgrade() -> None:
    """Drop everything ``upgrade`` created."""
    op.drop_index("ix_plans_service_date", table_name="plans")
    op.drop_table("plans")
    op.drop_index("ix_solver_jobs_submitted_at", table_name="solver_jobs")
    op.drop_index("ix_solver_jobs_status", table_name="solver_jobs")
    op.drop_table("solver_jobs")
    op.drop_index("ix_prediction_audit_model_name_model_version", table_name="prediction_audit")
    op.drop_index("ix_prediction_audit_created_at", table_name="prediction_audit")
    op.drop_table("prediction_audit")
    op.drop_table("model_versions")
