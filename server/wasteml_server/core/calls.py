"""The RPC a piece of domain work serves, visible to domain code without passing a context.

The transport sets it for every call (``transport.interceptors.DeadlineInterceptor``); the
audit records it, so a prediction the planner asks for is audited as the ``PlanDay`` call it
served. Names are gRPC full method names, ``"/wasteml.v1.Forecasting/PredictFillLevel"``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

#: What work outside any RPC (tools, tests, start-up) is audited as.
NO_CALL = "in-process"

_method: contextvars.ContextVar[str] = contextvars.ContextVar("wasteml_rpc_method", default=NO_CALL)


def current_method() -> str:
    """Full gRPC method name of the call being served, or :data:`NO_CALL`."""
    return _method.get()


@contextmanager
def call_scope(method: str) -> Iterator[None]:
    """Mark the block as serving ``method`` (``"/package.Service/Method"``)."""
    token = _method.set(method)
    try:
        yield
    finally:
        _method.reset(token)
