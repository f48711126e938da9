"""Prediction audit writer on SQLite and PostgreSQL: batched async writes, drop-and-count when full."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from wasteml_server.adapters.storage import AUDIT_DROPPED, AuditWriter, Database
from wasteml_server.adapters.storage.models import PredictionAudit
from wasteml_server.core.audit import request_hash

METHOD = "/wasteml.v1.Forecasting/PredictFillLevel"


def _dropped(reason: str) -> float:
    """Current value of wasteml_audit_dropped_total{reason=...} as Prometheus exposes it."""
    AUDIT_DROPPED.labels(reason=reason)  # make the child exist before the first drop
    value = REGISTRY.get_sample_value("wasteml_audit_dropped_total", {"reason": reason})
    assert value is not None
    return value


def _rows(db: Database) -> list[PredictionAudit]:
    with db.session() as session:
        return list(session.scalars(sa.select(PredictionAudit).order_by(PredictionAudit.id)))


def _entry(i: int) -> dict:
    return {
        "rpc_method": METHOD,
        "model_name": "fill_level",
        "model_version": 2,
        "request_hash": request_hash(f"request {i}".encode()),
        "output": {
            "fill": [0.25 + i / 1000],
            "time_to_full_s": 86400.0,
            "top": [["days_since", 0.12]],
        },
        "latency_ms": 3.5 + i,
    }


async def test_records_are_written_in_batches_on_flush(db):
    """Recorded entries are all written, field for field, in batches no larger than batch_size."""
    writer = AuditWriter(db, queue_size=1000, batch_size=7)
    await writer.start()
    try:
        before = dt.datetime.now(dt.UTC)
        assert all(writer.record(**_entry(i)) for i in range(40))
        await writer.flush()
        assert writer.pending == 0
        rows = await asyncio.to_thread(_rows, db)
    finally:
        await writer.aclose()
    assert len(rows) == 40 and writer.written == 40 and writer.dropped == 0
    for i, row in enumerate(rows):
        expected = _entry(i)
        assert row.request_hash == expected["request_hash"]
        assert row.output == expected["output"]
        assert row.latency_ms == expected["latency_ms"]
        assert (row.rpc_method, row.model_name, row.model_version) == (METHOD, "fill_level", 2)
        assert row.created_at >= before - dt.timedelta(seconds=1)
        assert row.created_at.utcoffset() == dt.timedelta(0)


async def test_full_queue_drops_and_counts_without_waiting(db):
    """With the queue full, record() returns False at once and increments wasteml_audit_dropped_total."""
    writer = AuditWriter(db, queue_size=5, batch_size=100)  # not started: nothing drains the queue
    full_before = _dropped("queue_full")
    start = time.perf_counter()
    accepted = [writer.record(**_entry(i)) for i in range(12)]
    elapsed = time.perf_counter() - start
    assert accepted == [True] * 5 + [False] * 7
    assert _dropped("queue_full") - full_before == 7
    assert writer.dropped == 7 and writer.pending == 5
    assert elapsed < 0.5  # never waits for space (a generous bound for a loaded CI box)
    await writer.start()
    await writer.aclose()  # drains what was queued before stopping
    rows = await asyncio.to_thread(_rows, db)
    assert [r.request_hash for r in rows] == [_entry(i)["request_hash"] for i in range(5)]
    assert writer.record(**_entry(99)) is False  # closed


async def test_invalid_entries_are_dropped_not_raised(db):
    """Malformed entries (bad hash, NaN output) are dropped and counted, the rest written."""
    writer = AuditWriter(db)
    invalid_before = _dropped("invalid")
    await writer.start()
    try:
        assert writer.record(**{**_entry(0), "request_hash": "not-a-hash"}) is False
        # a NaN output passes record() and is caught by the writer thread
        assert writer.record(**{**_entry(1), "output": {"fill": float("nan")}}) is True
        assert writer.record(**_entry(2)) is True
        await writer.flush()
    finally:
        await writer.aclose()
    assert _dropped("invalid") - invalid_before == 2
    rows = await asyncio.to_thread(_rows, db)
    assert [r.request_hash for r in rows] == [_entry(2)["request_hash"]]


async def test_unreachable_database_drops_batches_and_keeps_running(tmp_path):
    """When the database is unreachable, batches are dropped as db_error and record() keeps returning at once."""
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing", connect_timeout_s=2)
    writer = AuditWriter(db, batch_size=3)
    errors_before = _dropped("db_error")
    await writer.start()
    try:
        assert all(writer.record(**_entry(i)) for i in range(6))
        await asyncio.wait_for(writer.flush(), 30)
        assert writer.record(**_entry(7)) is True
        await asyncio.wait_for(writer.flush(), 30)
    finally:
        await writer.aclose()
        db.dispose()
    assert _dropped("db_error") - errors_before == 7
    assert writer.written == 0


async def test_records_from_worker_threads_are_written(db):
    """Entries recorded from worker threads (asyncio.to_thread) reach the table like loop ones."""
    writer = AuditWriter(db)
    await writer.start()
    try:

        def record_many(offset: int) -> list[bool]:
            return [writer.record(**_entry(offset + i)) for i in range(10)]

        results = await asyncio.gather(*(asyncio.to_thread(record_many, k * 10) for k in range(3)))
        await asyncio.sleep(0)  # let the handed-over entries land on the queue
        await writer.flush()
    finally:
        await writer.aclose()
    assert all(all(r) for r in results)
    rows = await asyncio.to_thread(_rows, db)
    assert sorted(r.request_hash for r in rows) == sorted(
        _entry(i)["request_hash"] for i in range(30)
    )
