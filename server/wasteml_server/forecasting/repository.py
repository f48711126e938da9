"""Versioned forecasting artefacts in the Triton model repository.

Layout of one version (``model_repository/<model>/<version>/``, ignored by git except
``.gitkeep``)::

    model.onnx       the ONNX model Triton serves (signature: ``onnx_export`` docstring)
    model.txt        the same LightGBM booster as text (in-process explanations, ``pred_contrib``)
    metadata.json    feature names and spec, data file and sha256, parameters, backtest metrics,
                     ONNX parity, timings, library versions
    prophet.json     demand models only: Prophet interval models per series

A version counts as trained when its ``metadata.json`` exists (written last, so a half-written
version is never picked up). ``config.pbtxt`` per model is committed (production GPU Triton).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightgbm as lgb
import onnx

from wasteml_server.core.common import version_number
from wasteml_server.core.errors import NotFoundError

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
BOOSTER_FILE = "model.txt"


def trained_versions(model_repository: Path, model_name: str) -> list[int]:
    """Version numbers of ``model_name`` that hold a complete export, ascending."""
    root = Path(model_repository) / model_name
    if not root.is_dir():
        return []
    return sorted(number for p in root.iterdir()  # version_number: ASCII digits only ("²" is not 2)
                  if (number := version_number(p.name)) is not None and p.is_dir()
                  and (p / METADATA_FILE).is_file())


def next_version(model_repository: Path, model_name: str) -> int:
    """The version a new export gets: the highest trained version + 1 (1 for the first)."""
    versions = trained_versions(model_repository, model_name)
    return versions[-1] + 1 if versions else 1


def resolve_version(model_repository: Path, model_name: str, version: int | None) -> int:
    """``version`` if trained, or the latest trained version when ``None``.

    Raises:
        NotFoundError: no such trained version (or none at all).
    """
    versions = trained_versions(model_repository, model_name)
    if not versions:
        raise NotFoundError(f"model {model_name!r} has no trained version in {model_repository}")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise NotFoundError(f"model {model_name!r} has no trained version {version}")
    return version


def version_dir(model_repository: Path, model_name: str, version: int) -> Path:
    """Folder of one version."""
    return Path(model_repository) / model_name / str(version)


def write_version(model_repository: Path, model_name: str, version: int,
                  onnx_model: onnx.ModelProto, booster: lgb.Booster, metadata: dict) -> Path:
    """Write ``model.onnx``, ``model.txt`` and (last) ``metadata.json`` of a version.

    Returns:
        The version folder.
    """
    d = version_dir(model_repository, model_name, version)
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(d / ONNX_FILE))
    booster.save_model(str(d / BOOSTER_FILE))
    (d / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    logger.info("wrote %s version %d to %s", model_name, version, d)
    return d


def load_metadata(model_repository: Path, model_name: str, version: int | None = None) -> dict:
    """``metadata.json`` of a version (latest trained when ``version`` is None).

    Raises:
        NotFoundError: no such trained version.
    """
    v = resolve_version(model_repository, model_name, version)
    return json.loads((version_dir(model_repository, model_name, v) / METADATA_FILE).read_text())


def load_booster(model_repository: Path, model_name: str, version: int) -> lgb.Booster:
    """The version's LightGBM booster (for ``pred_contrib`` explanations)."""
    path = version_dir(model_repository, model_name, version) / BOOSTER_FILE
    if not path.is_file():
        raise NotFoundError(f"{path} not found")
    return lgb.Booster(model_file=str(path))
