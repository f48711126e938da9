"""Transport-free domain errors, and the field-path scope converters raise them under.

Domain modules (search, routing, forecasting, planning, admin) and adapters (Triton, Milvus,
SQL) raise these and nothing transport-specific; the one table that maps them to gRPC status
codes lives in the transport layer (``wasteml_server.transport.status``).

Their meanings follow the gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html):
``InvalidArgumentError`` for bad input regardless of system state, ``FailedPreconditionError``
for input that is valid but not in the current state, ``UnavailableError`` for a transient
dependency outage (clients may retry), ``ResourceExhaustedError`` for full queues and rate
limits, ``InternalError`` for a fault of this server (never the caller's).

Field paths: an ``InvalidArgumentError`` names the field by its path in the *request message*
(``problem.stops[3].time_windows[0].end_s``). Domain types carry the contract's field names, so
a value object validates its own fields by their names and every container that builds it
wraps the construction in :func:`under` with the child's path: the path grows as the
converters recurse, and no layer renames another's paths.

Every error pickles with its fields (the solver pool sends them between processes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

#: Most characters of caller input an error message quotes (see :func:`shown`).
SHOWN_CHARS = 64


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """Caller input quoted for an error message, in bounded form.

    ``repr`` of the value cut to ``limit`` characters of the original, with its full length
    noted when cut; so an error that echoes a 20 KB id stays small (gRPC's default metadata
    limit is 16 KiB, and an oversized status would change the code the caller sees).

    Examples: ``shown("O'Brien")`` -> ``"O'Brien"`` (repr quoting); ``shown("x" * 5000)``
    -> ``'xxx…x'… (5000 chars)``.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    text = repr(value)
    return text if len(text) <= limit + 2 else f"{text[:limit]}… ({len(text)} chars)"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, as ``google.rpc.BadRequest.FieldViolation``.

    Attributes:
        field: dotted path of the field in the request message, e.g. ``"filters.radius.radius_m"``
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

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))


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

    def __reduce__(self) -> tuple[object, ...]:
        first, *more = self.violations
        return (type(self), (first.field, first.description, *more))

    @property
    def field(self) -> str:
        """The field path of the first violation."""
        return self.violations[0].field

    def prefixed(self, prefix: str) -> InvalidArgumentError:
        """The same violations with ``prefix.`` before every field path."""
        fixed = [FieldViolation(f"{prefix}.{v.field}" if v.field else prefix, v.description)
                 for v in self.violations]
        return InvalidArgumentError(fixed[0].field, fixed[0].description, *fixed[1:])


@contextlib.contextmanager
def under(prefix: str) -> Iterator[None]:
    """Report ``InvalidArgumentError`` raised in the block with ``prefix.`` before each field path.

    For converters and builders that construct nested objects as they walk a request::

        with under(f"stops[{i}]"):
            stop = Stop(...)          # a bad skip_penalty is reported as "stops[3].skip_penalty"

    An empty ``prefix`` leaves the paths as they are.
    """
    try:
        yield
    except InvalidArgumentError as err:
        if not prefix:
            raise
        raise err.prefixed(prefix) from None


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
        self.detail = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.dependency, self.detail))


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


class InternalError(WastemlError):
    """A fault of this server, not of the caller (``INTERNAL``): e.g. a dependency rejecting a
    tensor or a row this server built. The caller gets a generic message with an incident id;
    ``message`` goes to the server log only.
    """
