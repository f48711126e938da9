"""Alembic migration environment of the SQL store (run through ``wasteml_server.storage.migrate``)."""
