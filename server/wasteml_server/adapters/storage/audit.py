"""Asynchronous prediction audit: record every served prediction without slowing the reply.

``AuditWriter.record`` only validates cheaply and puts the entry on a bounded in-memory queue;
a background asyncio task takes whatever has accumulated (up to ``batch_size`` rows) and
inserts it in one statement on a worker thread (``asyncio.to_thread``). When the queue is full
the entry is dropped and counted, never waited for: the audit is best-effort by design, the
reply path is not. Drops are visible as the Prometheus counter
``wasteml_audit_dropped_total{reason}`` with reasons:

- ``queue_full``: the queue held ``queue_size`` entries (the database is slow or down);
- ``db_error``: a batch insert failed (database unreachable, ...); the batch is discarded;
- ``invalid``: the entry was malformed (a caller bug; logged);
- ``closed``: ``record`` was called after ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import Counter

from wasteml_server.adapters.storage.db import Database
from wasteml_server.adapters.storage.models import PredictionAudit, utcnow

if TYPE_CHECKING:
    from wasteml_server.core.settings import Settings

logger = logging.getLogger(__name__)

AUDIT_DROPPED = Counter(
    "wasteml_audit_dropped",
    "Prediction-audit entries dropped instead of written, by reason.",
    ["reason"],
)
AUDIT_WRITTEN = Counter(
    "wasteml_audit_written", "Prediction-audit entries written to the SQL store."
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class _Entry:
    row: dict[str, Any]


class AuditWriter:
    """Non-blocking writer of the ``prediction_audit`` table.

    Use from one event loop: ``await writer.start()`` at server start, ``writer.record(...)`` in
    handlers (returns at once), ``await writer.aclose()`` at shutdown (writes what is queued).

    Args:
        db: the database (migrated to head).
        queue_size: entries that may wait for the writer (>= 1); beyond this, drop and count.
        batch_size: most rows per insert statement (>= 1).
        drain_timeout_s: how long ``aclose`` waits for queued entries to be written, seconds.

    Raises:
        ValueError: a size or timeout is out of range.
    """

    def __init__(
        self,
        db: Database,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        drain_timeout_s: float = 10.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not drain_timeout_s >= 0:
            raise ValueError("drain_timeout_s must be >= 0 seconds")
        self.db = db
        self.batch_size = batch_size
        self.drain_timeout_s = drain_timeout_s
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._failing = False
        self.written = 0
        """Entries written by this writer."""
        self.dropped = 0
        """Entries dropped by this writer (all reasons; the counter has them by reason)."""

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> AuditWriter:
        """A writer with ``settings.audit_queue_size`` and ``settings.audit_batch_size``."""
        return cls(db, queue_size=settings.audit_queue_size, batch_size=settings.audit_batch_size)

    @property
    def pending(self) -> int:
        """Entries queued and not yet written."""
        return self._queue.qsize()

    def record(
        self,
        *,
        rpc_method: str,
        model_name: str,
        model_version: int,
        request_hash: str,
        output: Any,
        latency_ms: float,
    ) -> bool:
        """Queue one audit entry and return immediately.

        Safe to call from the writer's event loop or, once started, from worker threads (the
        entry is then handed to the loop with ``call_soon_threadsafe``).

        Args:
            rpc_method: full gRPC method, e.g. ``"/wasteml.v1.Forecasting/PredictFillLevel"``.
            model_name: model that produced the prediction.
            model_version: its version (>= 1).
            request_hash: lowercase hex sha256 of the request (see :func:`request_hash`).
            output: the prediction as a JSON-serializable value (no NaN/inf).
            latency_ms: time spent serving it, milliseconds (>= 0).

        Returns:
            True if queued (or handed to the loop from another thread); False if dropped
            (queue full, malformed entry, writer closed). Never raises and never waits.
        """
        if self._closed:
            self._drop("closed")
            return False
        problem = _problem(rpc_method, model_name, model_version, request_hash, latency_ms)
        if problem is not None:
            logger.warning("audit entry dropped, %s", problem)
            self._drop("invalid")
            return False
        entry = _Entry(
            {
                "created_at": utcnow(),
                "rpc_method": rpc_method,
                "model_name": model_name,
                "model_version": model_version,
                "request_hash": request_hash,
                "output": output,
                "latency_ms": float(latency_ms),
            }
        )
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _running_on(loop):
            # Called from a worker thread: hand over to the loop (asyncio.Queue is not
            # thread-safe). The outcome is counted there; report the entry as accepted.
            loop.call_soon_threadsafe(self._enqueue, entry)
            return True
        return self._enqueue(entry)

    def _enqueue(self, entry: _Entry) -> bool:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._drop("queue_full")
            return False
        return True

    async def start(self) -> None:
        """Start the background writer task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="audit-writer")

    async def flush(self) -> None:
        """Wait until every entry queued so far is written (or dropped on error).

        Raises:
            RuntimeError: the writer was not started.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("AuditWriter.flush() before start()")
        await self._queue.join()

    async def aclose(self) -> None:
        """Stop accepting entries, write what is queued (within ``drain_timeout_s``), stop."""
        self._closed = True
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._queue.join(), self.drain_timeout_s)
            except TimeoutError:
                logger.warning("audit writer: %d entries not written at shutdown", self.pending)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        left = self._queue.qsize()
        if left:
            for _ in range(left):
                self._queue.get_nowait()
                self._queue.task_done()
            self._drop("closed", left)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped += n
        AUDIT_DROPPED.labels(reason=reason).inc(n)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                written, invalid = await asyncio.to_thread(self._write, batch)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the audit must never take the server down
                self._drop("db_error", len(batch))
                if not self._failing:
                    logger.warning(
                        "audit writes failing, dropping batches until they succeed: %s", err
                    )
                    self._failing = True
            else:
                self.written += written
                AUDIT_WRITTEN.inc(written)
                if invalid:
                    self._drop("invalid", invalid)
                if self._failing:
                    logger.info("audit writes succeed again")
                    self._failing = False
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[_Entry]) -> tuple[int, int]:
        """Insert a batch in one statement (worker thread).

        Returns:
            (rows written, entries skipped because their output is not strict JSON).
        """
        rows = []
        for entry in batch:
            try:
                json.dumps(entry.row["output"], allow_nan=False)
            except (TypeError, ValueError) as err:
                logger.warning("audit entry dropped, output not JSON: %s", err)
                continue
            rows.append(entry.row)
        if rows:
            with self.db.session() as session:
                session.execute(sa.insert(PredictionAudit), rows)
        return len(rows), len(batch) - len(rows)


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    """True when called from inside ``loop`` on its own thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _problem(
    rpc_method: Any, model_name: Any, model_version: Any, request_hash: Any, latency_ms: Any
) -> str | None:
    """What is wrong with an entry's scalar fields, or None."""
    if not isinstance(rpc_method, str) or not 0 < len(rpc_method) <= 128:
        return "rpc_method must be a string of 1-128 characters"
    if not isinstance(model_name, str) or not 0 < len(model_name) <= 128:
        return "model_name must be a string of 1-128 characters"
    if isinstance(model_version, bool) or not isinstance(model_version, int) or model_version < 1:
        return "model_version must be an integer >= 1"
    if not isinstance(request_hash, str) or not _SHA256_RE.match(request_hash):
        return "request_hash must be a lowercase hex sha256"
    if (
        isinstance(latency_ms, bool)
        or not isinstance(latency_ms, int | float)
        or not (math.isfinite(latency_ms) and latency_ms >= 0)
    ):
        return "latency_ms must be a finite number >= 0"
    return None
