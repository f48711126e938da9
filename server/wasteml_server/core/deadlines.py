"""The current call's deadline, visible to domain code without passing a context around.

The deadline interceptor sets it for every RPC; domain code (the solver pool, Triton and
Milvus calls, the planner) reads ``remaining_s()`` to bound its own work and its calls to
dependencies, so a deadline propagates to every stage of a call.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "wasteml_deadline", default=None
)


def current_deadline() -> float | None:
    """The call's deadline as a ``time.monotonic()`` instant, or None outside an RPC."""
    return _deadline.get()


def remaining_s(default: float | None = None) -> float | None:
    """Seconds left until the call's deadline (>= 0), or ``default`` when there is none."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


def bounded_timeout(timeout_s: float) -> float:
    """``timeout_s`` shortened to the time left before the call's deadline, if any (>= 0)."""
    left = remaining_s()
    return timeout_s if left is None else min(timeout_s, left)


@contextmanager
def deadline_scope(timeout_s: float) -> Iterator[float]:
    """Set the current deadline to now + ``timeout_s`` seconds (never later than an outer one).

    Yields:
        the deadline as a ``time.monotonic()`` instant.
    """
    deadline = time.monotonic() + timeout_s
    outer = _deadline.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)
