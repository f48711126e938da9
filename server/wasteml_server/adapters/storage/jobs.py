"""Persistent solver jobs (``RouteOptimizer.SubmitJob`` / ``GetJob`` / ``WatchJob`` / ``CancelJob``).

State machine (``JobStatus``)::

    QUEUED --mark_running--> RUNNING --finish--> SUCCEEDED
       |                        |------fail----> FAILED
       |------fail / cancel-----+-----cancel---> CANCELLED

Every transition is one conditional ``UPDATE ... WHERE status IN (...)``, so concurrent callers
(the pool's completion callback and a ``CancelJob``) cannot both win.

Restart policy (documented choice): a job that was QUEUED or RUNNING when the server stopped is
marked FAILED with reason ``"failed by server restart"`` by :meth:`JobStore.recover_after_restart`
at start, **not re-queued**. A time-limited solve restarted later would silently exceed the time
the client asked for, and the client may have moved on; the client can resubmit.
"""

from __future__ import annotations

import builtins
import math
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import defer

from wasteml_server.adapters.storage.db import Database
from wasteml_server.adapters.storage.models import SolverJob, utcnow
from wasteml_server.codecs.routing import solution_to_proto
from wasteml_server.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InternalError,
    NotFoundError,
)
from wasteml_server.routing.jobs import RESTART_FAILURE_REASON, JobRecord, JobStatus
from wasteml_server.routing.solution import Solution

#: Largest ``limit`` of :meth:`JobStore.list`.
MAX_LIST_LIMIT = 1000


def _record(row: SolverJob, *, with_payloads: bool = True) -> JobRecord:
    """Snapshot of an ORM row (``problem``/``result`` left None unless ``with_payloads``)."""
    return JobRecord(
        id=row.id,
        status=JobStatus(row.status),
        failure_reason=row.failure_reason,
        engine=row.engine,
        problem=row.problem if with_payloads else None,
        time_limit_s=row.time_limit_s,
        submitted_at=row.submitted_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        best_objective=row.best_objective,
        result=row.result if with_payloads else None,
    )


def _as_uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise InternalError(f"JobStore: job_id not a UUID: {job_id!r}") from None


def _check_objective(best_objective: float | None) -> None:
    if best_objective is not None and (
        isinstance(best_objective, bool)
        or not isinstance(best_objective, int | float)
        or not math.isfinite(best_objective)
    ):
        raise InternalError("JobStore: best_objective must be a finite number")


class JobStore:
    """Create, advance and read solver jobs in the SQL store.

    All methods are blocking; call them with ``asyncio.to_thread`` from async code. Every
    method that takes a ``job_id`` accepts a ``uuid.UUID`` or its string form.

    Args:
        db: the database (migrated to head).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        engine: str,
        problem: bytes,
        time_limit_s: float,
        *,
        job_id: uuid.UUID | str | None = None,
    ) -> JobRecord:
        """Persist a new QUEUED job.

        Args:
            engine: route engine name (1-32 characters).
            problem: serialized problem (protobuf bytes).
            time_limit_s: solve time limit, seconds (> 0).
            job_id: id to use; a new UUID4 when omitted.

        Raises:
            InternalError: a field is malformed.
            AlreadyExistsError: an explicit ``job_id`` already exists.
            UnavailableError: the database cannot be reached.
        """
        if not isinstance(engine, str) or not 0 < len(engine) <= 32:
            raise InternalError("JobStore: engine must be a non-empty string of at most 32 characters")
        if not isinstance(problem, bytes | bytearray | memoryview):
            raise InternalError("JobStore: problem must be bytes (a serialized problem)")
        if (
            isinstance(time_limit_s, bool)
            or not isinstance(time_limit_s, int | float)
            or not (math.isfinite(time_limit_s) and time_limit_s > 0)
        ):
            raise InternalError("JobStore: time_limit_s must be a finite number of seconds > 0")
        row = SolverJob(
            id=_as_uuid(job_id) if job_id is not None else uuid.uuid4(),
            status=JobStatus.QUEUED,
            engine=engine,
            problem=bytes(problem),
            time_limit_s=float(time_limit_s),
            submitted_at=utcnow(),
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return _record(row)
        except exc.IntegrityError:
            raise AlreadyExistsError(f"job {row.id} already exists") from None

    def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job with ``job_id``.

        Raises:
            InternalError: ``job_id`` is not a UUID.
            NotFoundError: no such job.
            UnavailableError: the database cannot be reached.
        """
        jid = _as_uuid(job_id)
        with self.db.session() as session:
            row = session.get(SolverJob, jid)
            if row is None:
                raise NotFoundError(f"job {jid} does not exist")
            return _record(row)

    def list(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        limit: int = 100,
        with_payloads: bool = False,
    ) -> builtins.list[JobRecord]:
        """Jobs, newest submission first.

        Args:
            status: only jobs in this state (or these states), as enum members or their names.
            limit: at most this many jobs (1..``MAX_LIST_LIMIT``).
            with_payloads: include ``problem`` and ``result`` bytes (left None otherwise).

        Raises:
            InternalError: ``limit`` out of range or an unknown status.
            UnavailableError: the database cannot be reached.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InternalError(f"JobStore: limit must be in 1..{MAX_LIST_LIMIT}")
        query = (
            sa.select(SolverJob).order_by(SolverJob.submitted_at.desc(), SolverJob.id).limit(limit)
        )
        if status is not None:
            raw = [status] if isinstance(status, str) else list(status)
            try:
                states = [JobStatus(s) for s in raw]
            except ValueError:
                raise InternalError(f"JobStore: unknown job status in {raw!r}; one of "
                                    f"{[s.value for s in JobStatus]}") from None
            query = query.where(SolverJob.status.in_(states))
        if not with_payloads:
            query = query.options(defer(SolverJob.problem), defer(SolverJob.result))
        with self.db.session() as session:
            return [
                _record(r, with_payloads=with_payloads) for r in session.scalars(query)
            ]

    def mark_running(self, job_id: uuid.UUID | str) -> JobRecord:
        """QUEUED -> RUNNING, setting ``started_at``.

        Raises:
            NotFoundError: no such job.
            FailedPreconditionError: the job is not QUEUED (e.g. cancelled while waiting).
            UnavailableError: the database cannot be reached.
        """
        return self._transition(
            job_id, (JobStatus.QUEUED,), {"status": JobStatus.RUNNING, "started_at": utcnow()}
        )

    def update_progress(self, job_id: uuid.UUID | str, best_objective: float) -> JobRecord:
        """Record the best objective found so far by a RUNNING job.

        Raises:
            InternalError: ``best_objective`` is not a finite number.
            NotFoundError: no such job.
            FailedPreconditionError: the job is not RUNNING.
            UnavailableError: the database cannot be reached.
        """
        _check_objective(best_objective)
        return self._transition(
            job_id, (JobStatus.RUNNING,), {"best_objective": float(best_objective)}
        )

    def finish(
        self, job_id: uuid.UUID | str, solution: Solution | bytes, *, best_objective: float | None = None
    ) -> JobRecord:
        """RUNNING -> SUCCEEDED with the solution, stored in the contract's wire format
        (``wasteml.v1.Solution`` bytes, so any replica and version reads it back as such).

        Args:
            job_id: the job.
            solution: the domain solution (encoded here), or its bytes already encoded.
            best_objective: the final objective; keeps the last progress value when None.

        Raises:
            InternalError: ``solution`` is neither or ``best_objective`` not finite.
            NotFoundError: no such job.
            FailedPreconditionError: the job is not RUNNING (e.g. it was cancelled meanwhile).
            UnavailableError: the database cannot be reached.
        """
        if isinstance(solution, Solution):
            result = solution_to_proto(solution).SerializeToString()
        elif isinstance(solution, bytes | bytearray | memoryview):
            result = bytes(solution)
        else:
            raise InternalError(f"JobStore.finish: solution must be a Solution or bytes, got {type(solution)}")
        _check_objective(best_objective)
        values: dict[str, Any] = {
            "status": JobStatus.SUCCEEDED,
            "result": result,
            "finished_at": utcnow(),
        }
        if best_objective is not None:
            values["best_objective"] = float(best_objective)
        return self._transition(job_id, (JobStatus.RUNNING,), values)

    def fail(self, job_id: uuid.UUID | str, reason: str) -> JobRecord:
        """QUEUED or RUNNING -> FAILED with ``reason``.

        Raises:
            InternalError: ``reason`` is empty.
            NotFoundError: no such job.
            FailedPreconditionError: the job already ended.
            UnavailableError: the database cannot be reached.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise InternalError("JobStore: reason must be a non-empty string")
        return self._transition(
            job_id,
            (JobStatus.QUEUED, JobStatus.RUNNING),
            {"status": JobStatus.FAILED, "failure_reason": reason, "finished_at": utcnow()},
        )

    def cancel(self, job_id: uuid.UUID | str, reason: str | None = None) -> JobRecord:
        """QUEUED or RUNNING -> CANCELLED (the pool stops the search separately).

        Raises:
            NotFoundError: no such job.
            FailedPreconditionError: the job already ended (cancelling a finished job).
            UnavailableError: the database cannot be reached.
        """
        return self._transition(
            job_id,
            (JobStatus.QUEUED, JobStatus.RUNNING),
            {"status": JobStatus.CANCELLED, "failure_reason": reason, "finished_at": utcnow()},
        )

    def recover_after_restart(self) -> builtins.list[JobRecord]:
        """Mark every QUEUED or RUNNING job FAILED with reason ``"failed by server restart"``.

        Call once at server start, before the solver pool accepts work. Jobs are not re-queued
        (see the module docstring for why).

        Returns:
            The jobs so marked (without payloads), oldest submission first.

        Raises:
            UnavailableError: the database cannot be reached.
        """
        unfinished = (JobStatus.QUEUED, JobStatus.RUNNING)
        with self.db.session() as session:
            # FOR UPDATE (PostgreSQL) keeps a concurrent transition from slipping in between.
            rows = builtins.list(
                session.scalars(
                    sa.select(SolverJob)
                    .where(SolverJob.status.in_(unfinished))
                    .options(defer(SolverJob.problem), defer(SolverJob.result))
                    .order_by(SolverJob.submitted_at, SolverJob.id)
                    .with_for_update()
                )
            )
            now = utcnow()
            for row in rows:
                row.status = JobStatus.FAILED
                row.failure_reason = RESTART_FAILURE_REASON
                row.finished_at = now
            session.flush()
            return [_record(r, with_payloads=False) for r in rows]

    def _transition(
        self, job_id: uuid.UUID | str, allowed: tuple[JobStatus, ...], values: dict[str, Any]
    ) -> JobRecord:
        jid = _as_uuid(job_id)
        with self.db.session() as session:
            updated = session.execute(
                sa.update(SolverJob)
                .where(SolverJob.id == jid, SolverJob.status.in_(allowed))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            row = session.get(SolverJob, jid, populate_existing=True)
            if row is None:
                raise NotFoundError(f"job {jid} does not exist")
            if updated.rowcount != 1:  # type: ignore[attr-defined]
                wanted = " or ".join(s.value for s in allowed)
                raise FailedPreconditionError(f"job {jid} is {row.status.value}, not {wanted}")
            return _record(row)
