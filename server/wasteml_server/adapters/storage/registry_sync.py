"""Record every exported model version of the repository in the SQL model registry.

Run at server start (and by ``wasteml doctor``-style tools): each version folder that carries
the export's sidecar — ``export_info.json`` (text encoder, ``wasteml_export``) or
``metadata.json`` (LightGBM models, ``wasteml_server.forecasting``) — gets one registry row
with its source, file hashes, export settings and parity/quality figures, unless the
``(name, version)`` is registered already. Idempotent; never rewrites an existing row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from wasteml_server.adapters.storage import ModelRegistry
from wasteml_server.core.common import version_number
from wasteml_server.core.errors import AlreadyExistsError, NotFoundError

logger = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _flat_metrics(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if math.isfinite(float(value)):
            out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flat_metrics(f"{prefix}/{k}" if prefix else str(k), v, out)


def rows_for_version(model: str, version_dir: Path) -> list[dict[str, Any]]:
    """Registry rows (keyword arguments of ``ModelRegistry.register``) for one version folder."""
    version = int(version_dir.name)
    info_file, meta_file = version_dir / "export_info.json", version_dir / "metadata.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        metrics: dict[str, float] = {}
        _flat_metrics("", info.get("parity", {}), metrics)
        source = info.get("source", {})
        return [dict(
            name=model, kind="onnx", version=version,
            source_package=source.get("package"), source_version=source.get("version"),
            file_hashes={k: v["sha256"] for k, v in info.get("files", {}).items()},
            export_settings={"task": "text_encoder", **info.get("recipe", {}),
                             "tools": info.get("tools", {})},
            metrics=metrics, parameters={"source_sha256": info.get("source_members_sha256", {})},
            artifact_path=str(version_dir),
        )]
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        files = {p.name: _sha256(p) for p in sorted(version_dir.iterdir())
                 if p.is_file() and p.suffix in (".onnx", ".txt", ".json")}
        metrics = {k: float(v) for k, v in meta.get("metrics", {}).items()
                   if isinstance(v, int | float) and math.isfinite(float(v))}
        rows = [dict(
            name=model, kind="onnx", version=version, source_package="lightgbm",
            source_version=meta.get("libraries", {}).get("lightgbm"),
            file_hashes={k: v for k, v in files.items() if k != "prophet.json"},
            export_settings={"task": model, "onnx_kind": meta.get("kind"), "unit": meta.get("unit", "")},
            metrics=metrics, training_data_hash=meta.get("data", {}).get("sha256"),
            parameters=meta.get("params", {}), artifact_path=str(version_dir),
        )]
        if "prophet.json" in files:
            rows.append(dict(
                name=f"{model}_prophet", kind="prophet", version=version, source_package="prophet",
                source_version=meta.get("libraries", {}).get("prophet"),
                file_hashes={"prophet.json": files["prophet.json"]},
                export_settings={"task": f"{model}_intervals"},
                metrics={}, training_data_hash=meta.get("data", {}).get("sha256"),
                parameters={}, artifact_path=str(version_dir),
            ))
        return rows
    return []


def sync_registry(model_repository: Path, registry: ModelRegistry) -> list[str]:
    """Register every exported version not yet in the registry.

    Returns:
        ``"name vN"`` for each row added.

    Raises:
        UnavailableError: the database cannot be reached.
    """
    added = []
    for version_dir in sorted(Path(model_repository).glob("*/[0-9]*")):
        if not version_dir.is_dir() or version_number(version_dir.name) is None:
            continue
        for row in rows_for_version(version_dir.parent.name, version_dir):
            try:
                registry.get(row["name"], row["version"])
                continue
            except NotFoundError:
                pass
            try:
                registry.register(**row)
                added.append(f"{row['name']} v{row['version']}")
            except AlreadyExistsError:  # registered concurrently
                continue
    if added:
        logger.info("model registry: recorded %s", ", ".join(added))
    return added
