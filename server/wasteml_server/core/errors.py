"""Transport-free domain errors and the one table that maps them to gRPC status codes.

Domain modules (search, routing, forecasting, planning, storage, triton) raise these and
nothing transport-specific. The servicers never build status codes by hand: the
``grpc_status_for`` table below is applied by the error-mapping layer in
``wasteml_server.grpc_errors`` (status code + ``google.rpc.Status`` details).

Status code meanings follow the gRPC spec (https://grpc.github.io/grpc/core/md_doc_statuscodes.html):
``INVALID_ARGUMENT`` for bad input regardless of system state, ``FAILED_PRECONDITION`` for
input that is valid but not in the current state, ``UNAVAILABLE`` for a transient
dependency outage (clients may retry), ``RESOURCE_EXHAUSTED`` for full queues and rate limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, as ``google.rpc.BadRequest.FieldViolation``.

    Attributes:
        field: dotted path of the field in the request message, e.g. ``"filters.geo_radius.radius_m"``
            or ``"stops[3].time_windows[0]"``.
        description: why the value is rejected, in words a caller can act on.
    """

    field: str
    description: str


class WastemlError(Exception):
    """Base of every domain error. ``message`` is safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(WastemlError, ValueError):
    """Bad input: one or more fields are invalid (``INVALID_ARGUMENT``).

    It is a ``ValueError`` too, so plain domain code and tests can catch it as such.

    Args:
        field: the dotted field path of the first violation.
        description: why the field is rejected.
        more: further violations of the same request, if several were found at once.
    """

    def __init__(self, field: str, description: str, *more: FieldViolation) -> None:
        self.violations: tuple[FieldViolation, ...] = (FieldViolation(field, description), *more)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @property
    def field(self) -> str:
        """The field path of the first violation."""
        return self.violations[0].field


class NotFoundError(WastemlError):
    """An id that does not exist (``NOT_FOUND``): a job, model, version, plan or document."""


class AlreadyExistsError(WastemlError):
    """A create for an id that exists and may not be overwritten (``ALREADY_EXISTS``)."""


class FailedPreconditionError(WastemlError):
    """Valid input that the system's current state refuses (``FAILED_PRECONDITION``),
    e.g. cancelling a job that has already finished, or searching before a collection exists."""


class UnavailableError(WastemlError):
    """A dependency (Triton, Milvus, SQL, the solver pool) is down or not ready (``UNAVAILABLE``).

    Clients may retry with backoff.

    Args:
        dependency: short name of the dependency, e.g. ``"triton"`` or ``"milvus"``.
        message: what failed.
    """

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} unavailable: {message}")
        self.dependency = dependency


class ResourceExhaustedError(WastemlError):
    """A bounded queue is full or a rate limit is hit (``RESOURCE_EXHAUSTED``)."""


class DeadlineExceededError(WastemlError):
    """The caller's deadline or a configured time limit ran out (``DEADLINE_EXCEEDED``)."""


class CancelledError(WastemlError):
    """The work was cancelled by the caller or by a ``Cancel*`` RPC (``CANCELLED``)."""


class UnauthenticatedError(WastemlError):
    """Missing or wrong bearer token (``UNAUTHENTICATED``)."""


class InfeasibleProblemError(WastemlError):
    """A well-formed problem that has no feasible solution (``FAILED_PRECONDITION``).

    The message explains why, e.g. which stop's time window cannot be reached from any depot.
    """


#: The one table from domain errors to gRPC status codes; first matching class wins,
#: so subclasses must come before their bases.
STATUS_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (InfeasibleProblemError, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (CancelledError, grpc.StatusCode.CANCELLED),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
)


def grpc_status_for(error: BaseException) -> grpc.StatusCode:
    """Status code for ``error`` by ``STATUS_TABLE``; ``INTERNAL`` for anything unmapped.

    Unmapped exceptions are bugs: the caller gets ``INTERNAL`` with a generic message and the
    traceback goes to the server log only.
    """
    for cls, code in STATUS_TABLE:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL
