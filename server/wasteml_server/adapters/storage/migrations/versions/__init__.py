"""Alembic revisions of the SQL store, one file per revision, applied in order."""
