"""Alembic migration environment of the SQL store (run through ``wasteml_server.adapters.storage.migrate``)."""
