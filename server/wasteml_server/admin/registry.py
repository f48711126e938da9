"""Model-registry rows as the admin domain knows them, and the port it reads them through.

The SQL store (``adapters.storage.ModelRegistry``) implements the port; export and training
tools register rows there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RegisteredModel:
    """One row of the model registry (immutable snapshot; see ``models.ModelVersion``).

    Attributes:
        name: model name as in the Triton repository.
        version: integer version >= 1.
        kind: artifact kind, e.g. ``"onnx"``, ``"tensorrt_plan"``, ``"prophet"``.
        source_package / source_version: distribution the weights came from, if any.
        file_hashes: relative path -> lowercase hex sha256.
        export_settings: how the artifact was built (JSON object).
        metrics: name -> float (quality and parity figures).
        training_data_hash: hex sha256 of the training data file, if trained.
        parameters: training/model parameters (JSON object).
        artifact_path: where the artifact lies, if recorded.
        created_at: registration instant, aware UTC.
    """

    name: str
    version: int
    kind: str
    source_package: str | None
    source_version: str | None
    file_hashes: dict[str, str] = field(hash=False)
    export_settings: dict[str, Any] = field(hash=False)
    metrics: dict[str, float] = field(hash=False)
    training_data_hash: str | None
    parameters: dict[str, Any] = field(hash=False)
    artifact_path: str | None
    created_at: dt.datetime


class RegistryReader(Protocol):
    """Reads registry rows (blocking; call from a worker thread)."""

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        """Every row, or those of one model."""
        ...
