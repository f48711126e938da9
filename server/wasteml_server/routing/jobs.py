"""Routing jobs as the domain knows them: the one job-state enum, the persisted snapshot, and the
port through which jobs are persisted (implemented in ``adapters/storage``).

State machine (``JobStatus``)::

    QUEUED --mark_running--> RUNNING --finish--> SUCCEEDED
       |                        |------fail----> FAILED
       |------fail / cancel-----+-----cancel---> CANCELLED

The solver pool's job handles and the SQL store use the same enum. A job failed by a server
restart is FAILED with :data:`RESTART_FAILURE_REASON`; the contract shows it as INTERRUPTED.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

from wasteml_server.routing.solution import Solution

#: ``failure_reason`` of jobs found unfinished at start (shown as ``JOB_STATUS_INTERRUPTED``).
RESTART_FAILURE_REASON = "failed by server restart"


class JobStatus(enum.StrEnum):
    """Life cycle of a solver job: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED.

    A QUEUED job may also go straight to FAILED or CANCELLED. The last three are terminal.
    """

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    """Finished with a Solution (whatever its status)."""
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELLED (no further transition)."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobRecord:
    """Snapshot of one persisted solver job.

    Attributes:
        id: job id (UUID).
        status: current state.
        failure_reason: why it FAILED or was CANCELLED (None otherwise or if not given).
        engine: engine label (``"ortools"``, ``"pyvrp"``, ``"portfolio"``).
        problem: the caller's request as stored (opaque bytes); None in listings made without
            payloads.
        time_limit_s: solve time limit, seconds.
        submitted_at / started_at / finished_at: aware UTC instants (None until reached).
        best_objective: best objective so far (cost units), None before the first solution.
        result: the solution in the contract's wire format (``wasteml.v1.Solution`` bytes)
            once SUCCEEDED; None otherwise or when listed without payloads.
    """

    id: uuid.UUID
    status: JobStatus
    failure_reason: str | None
    engine: str
    problem: bytes | None
    time_limit_s: float
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    best_objective: float | None
    result: bytes | None

    @property
    def elapsed_s(self) -> float | None:
        """Seconds between start and finish (or now, while running); None if never started."""
        if self.started_at is None:
            return None
        end = self.finished_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()

    @property
    def interrupted(self) -> bool:
        """True for a job failed by a server restart (not by its own fault)."""
        return self.status is JobStatus.FAILED and self.failure_reason == RESTART_FAILURE_REASON


class JobRepository(Protocol):
    """Where jobs persist (``adapters.storage.JobStore``). Blocking; call from a worker thread.

    Transitions that lose a race (the job already ended) raise ``FailedPreconditionError``;
    unknown ids ``NotFoundError``; a store that is down ``UnavailableError``.
    """

    def create(self, engine: str, problem: bytes, time_limit_s: float, *,
               job_id: uuid.UUID | str | None = None) -> JobRecord:
        """A new QUEUED job (``AlreadyExistsError`` for a taken ``job_id``)."""
        ...

    def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job now."""
        ...

    def mark_running(self, job_id: uuid.UUID | str) -> JobRecord:
        """QUEUED -> RUNNING."""
        ...

    def update_progress(self, job_id: uuid.UUID | str, best_objective: float) -> JobRecord:
        """The best objective of a RUNNING job."""
        ...

    def finish(self, job_id: uuid.UUID | str, solution: Solution, *,
               best_objective: float | None = None) -> JobRecord:
        """RUNNING -> SUCCEEDED with the solution."""
        ...

    def fail(self, job_id: uuid.UUID | str, reason: str) -> JobRecord:
        """QUEUED/RUNNING -> FAILED."""
        ...

    def cancel(self, job_id: uuid.UUID | str, reason: str | None = None) -> JobRecord:
        """QUEUED/RUNNING -> CANCELLED."""
        ...

    def recover_after_restart(self) -> list[JobRecord]:
        """Mark every QUEUED/RUNNING job FAILED by restart; returns them."""
        ...
