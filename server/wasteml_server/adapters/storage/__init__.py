"""The SQL store: model registry, prediction audit, solver jobs and plans.

SQLAlchemy 2 models (``models``), Alembic migrations packaged in ``migrations/`` and run by
:func:`migrate`, and a small blocking data-access layer (async callers use
``asyncio.to_thread``), plus the asynchronous :class:`AuditWriter`.

Typical start-up::

    settings = Settings()
    migrate(settings.database_url)
    db = Database.from_settings(settings)
    JobStore(db).recover_after_restart()
"""

from wasteml_server.adapters.storage.audit import AUDIT_DROPPED, AuditWriter
from wasteml_server.adapters.storage.db import Database
from wasteml_server.adapters.storage.jobs import JobStore
from wasteml_server.adapters.storage.plans import PlanRecord, PlanStore
from wasteml_server.adapters.storage.registry import ModelRegistry, RegisteredModel
from wasteml_server.adapters.storage.schema import current_revision, head_revision, migrate

__all__ = [
    "AUDIT_DROPPED",
    "AuditWriter",
    "Database",
    "JobStore",
    "ModelRegistry",
    "PlanRecord",
    "PlanStore",
    "RegisteredModel",
    "current_revision",
    "head_revision",
    "migrate",
]
