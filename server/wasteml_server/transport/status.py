"""The one table from domain errors to gRPC status codes, and the rich status sent for them.

Status code meanings follow the gRPC spec (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
The error interceptor (``transport.interceptors.ErrorInterceptor``) applies it to every call:
the servicers never build status codes by hand.

Size: the status travels in the trailing metadata (``grpc-message``, percent-encoded, and
``grpc-status-details-bin``, base64), and a client refuses trailers over its metadata limit
(16 KiB by default in grpc-core) and reports RESOURCE_EXHAUSTED instead of the real code. So
whatever a domain error holds, the message is cut to ``MAX_MESSAGE_BYTES`` and the details to
``MAX_DETAILS_BYTES`` (field paths and descriptions cut, violations beyond the budget left out
and counted): at most about 3 KiB of ``grpc-message`` (every byte percent-encoded) plus 4 KiB
of base64 details. Domain code quotes input through ``core.errors.shown``; this is the safety net.
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
    FieldViolation,
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


#: Most UTF-8 bytes of a status message (``grpc-message`` and ``google.rpc.Status.message``).
MAX_MESSAGE_BYTES = 1024

#: Most serialized bytes of all details of one status together (before base64).
MAX_DETAILS_BYTES = 2048

#: Most UTF-8 bytes of one field path, and of one description, in a ``BadRequest`` violation.
MAX_FIELD_BYTES = 256
MAX_DESCRIPTION_BYTES = 512


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary), with a marker
    ``"… (N chars)"`` giving the original length when cut (the marker fits in ``limit``)."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return text
    marker = f"… ({len(text)} chars)"
    room = max(0, limit - len(marker.encode()))
    return raw[:room].decode("utf-8", errors="ignore") + marker


def _bad_request(violations: tuple[FieldViolation, ...], budget: int) -> error_details_pb2.BadRequest:
    """A BadRequest of the violations that fit in ``budget`` serialized bytes (each cut first);
    when some are left out, the last one kept says how many."""
    detail = error_details_pb2.BadRequest()
    for n, v in enumerate(violations):
        item = error_details_pb2.BadRequest.FieldViolation(
            field=bounded(v.field, MAX_FIELD_BYTES), description=bounded(v.description, MAX_DESCRIPTION_BYTES))
        # reserve room for the "(+N more)" note on the last one kept
        if n and detail.ByteSize() + item.ByteSize() + 48 > budget:
            last = detail.field_violations[-1]
            note = f" (+{len(violations) - n} more violations left out)"
            last.description = bounded(last.description, MAX_DESCRIPTION_BYTES - len(note)) + note
            break
        detail.field_violations.append(item)
    return detail


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
    field (as many as fit in ``MAX_DETAILS_BYTES``; the last kept says how many were left
    out); UNAVAILABLE carries ``google.rpc.ErrorInfo`` naming the dependency. The message is
    cut to ``MAX_MESSAGE_BYTES``, field paths and descriptions to ``MAX_FIELD_BYTES`` and
    ``MAX_DESCRIPTION_BYTES``, so the status fits gRPC's metadata limit whatever the error holds.
    """
    code = grpc_status_for(error)
    status = status_pb2.Status(code=code.value[0], message=bounded(error.message, MAX_MESSAGE_BYTES))
    if isinstance(error, InvalidArgumentError):
        packed = any_pb2.Any()
        packed.Pack(_bad_request(error.violations, MAX_DETAILS_BYTES - 64))
        status.details.append(packed)
    elif isinstance(error, UnavailableError):
        packed = any_pb2.Any()
        packed.Pack(
            error_details_pb2.ErrorInfo(
                reason="DEPENDENCY_UNAVAILABLE", domain="wasteml",
                metadata={"dependency": bounded(error.dependency, MAX_FIELD_BYTES)},
            )
        )
        status.details.append(packed)
    return status
