"""The model-serving port: what the domain needs from an inference server (Triton, KServe v2).

``adapters.triton.TritonClient`` implements it; tests use fakes. Versions are Triton's strings
("1"); errors are the domain's (``UnavailableError`` for a server that is down or a model with
no loaded version, ``NotFoundError`` for an unknown model or version, ``DeadlineExceededError``
for a call past its timeout, ``InternalError`` for a request the server rejected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class ModelVersionState:
    """One row of the server's repository index.

    Attributes:
        name: model name.
        version: version number as a string; empty when listed without versions (not loaded).
        state: ``READY``, ``UNAVAILABLE``, ``LOADING``, ``UNLOADING`` or empty (never loaded).
        reason: why the version is not ready (e.g. the load error), empty otherwise.
    """

    name: str
    version: str
    state: str
    reason: str


class InferenceServer(Protocol):
    """The calls the domain makes to the model server."""

    async def infer_versioned(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], *,
        version: str = "", timeout_s: float | None = None,
    ) -> tuple[dict[str, np.ndarray], str]:
        """``(outputs by name, the version that served)`` of one inference request."""
        ...

    async def repository_index(self, timeout_s: float | None = None) -> list[ModelVersionState]:
        """Every model and version the server knows, with its state."""
        ...

    async def model_config(self, name: str, version: str = "", timeout_s: float | None = None) -> dict[str, Any]:
        """The loaded model's configuration as JSON (model_config.proto field names)."""
        ...

    async def is_ready(self, timeout_s: float | None = None) -> bool:
        """True while the server answers and is ready."""
        ...


class ModelControl(InferenceServer, Protocol):
    """The model server with explicit model control (``ModelAdmin``)."""

    async def load_model(self, name: str, versions: Sequence[int] | None = None, *,
                         config: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> None:
        """Load a model (the versions its policy names, or exactly ``versions``)."""
        ...

    async def unload_model(self, name: str, timeout_s: float | None = None) -> None:
        """Unload every version of a model."""
        ...
