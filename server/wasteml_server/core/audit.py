"""The prediction-audit port: what the domain records of every served prediction.

``adapters.storage.AuditWriter`` implements it (asynchronous, bounded, best-effort); tests use
fakes. Entries name the RPC they served (``core.calls.current_method``), the model and
version, a sha256 of the request, a compact JSON summary of the output and the latency.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


def request_hash(payload: bytes) -> str:
    """Lowercase hex sha256 of a request.

    Args:
        payload: the request serialized deterministically (protobuf
            ``SerializeToString(deterministic=True)``), or a canonical encoding of domain inputs.
    """
    return hashlib.sha256(payload).hexdigest()


class AuditSink(Protocol):
    """Where prediction audits go."""

    def record(self, *, rpc_method: str, model_name: str, model_version: int, request_hash: str,
               output: Any, latency_ms: float) -> bool:
        """Queue one entry; never raises, never waits. False when it was dropped."""
        ...
