"""The one table from domain errors to gRPC status codes, and the rich status sent for them.

Status code meanings follow the gRPC spec (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
The error interceptor (``transport.interceptors.ErrorInterceptor``) applies it to every call:
the servicers never build status codes by hand.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from wasteml_server.core.errors import (
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InfeasibleProblemError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    WastemlError,
)

#: Domain error -> status code; first matching class wins, so subclasses come before their bases.
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
    (InternalError, grpc.StatusCode.INTERNAL),
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


def status_for_error(error: WastemlError) -> status_pb2.Status:
    """The ``google.rpc.Status`` sent for a domain error (not for ``InternalError``, whose
    message stays in the server log).

    INVALID_ARGUMENT carries a ``google.rpc.BadRequest`` with one field violation per bad
    field; UNAVAILABLE carries ``google.rpc.ErrorInfo`` naming the dependency.
    """
    code = grpc_status_for(error)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    if isinstance(error, InvalidArgumentError):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    elif isinstance(error, UnavailableError):
        packed = any_pb2.Any()
        packed.Pack(
            error_details_pb2.ErrorInfo(
                reason="DEPENDENCY_UNAVAILABLE", domain="wasteml", metadata={"dependency": error.dependency}
            )
        )
        status.details.append(packed)
    return status
