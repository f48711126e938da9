"""The model registry: which model versions exist, where they came from, how good they are.

Export (``export/``) and training (``wasteml train ...``) register each new version here;
``ModelAdmin`` lists the rows next to Triton's readiness.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from wasteml_server.adapters.storage.db import Database
from wasteml_server.adapters.storage.models import ModelVersion, utcnow
from wasteml_server.admin.registry import RegisteredModel
from wasteml_server.core.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

logger = logging.getLogger(__name__)

#: Triton model names: letters, digits, ``_``, ``-`` and ``.``, up to 128 characters.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: Attempts at assigning the next version when concurrent registrations collide.
_MAX_VERSION_ATTEMPTS = 20


def _snapshot(row: ModelVersion) -> RegisteredModel:
    """Snapshot of an ORM row."""
    return RegisteredModel(
        name=row.name,
        version=row.version,
        kind=row.kind,
        source_package=row.source_package,
        source_version=row.source_version,
        file_hashes=dict(row.file_hashes),
        export_settings=dict(row.export_settings),
        metrics={k: float(v) for k, v in row.metrics.items()},
        training_data_hash=row.training_data_hash,
        parameters=dict(row.parameters),
        artifact_path=row.artifact_path,
        created_at=row.created_at,
    )


def _check_json_object(field_name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(field_name, "must be a mapping (JSON object)")
    out = dict(value)
    for key in out:
        if not isinstance(key, str):
            raise InvalidArgumentError(field_name, f"keys must be strings, got {key!r}")
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(field_name, f"not JSON-serializable: {err}") from None
    return out


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgumentError(
            "name",
            "must be 1-128 characters of letters, digits, '_', '-', '.' (a Triton model name)",
        )


class ModelRegistry:
    """Register and look up model versions in the SQL store.

    All methods are blocking; call them with ``asyncio.to_thread`` from async code.

    Args:
        db: the database (migrated to head).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        name: str,
        kind: str,
        *,
        version: int | None = None,
        source_package: str | None = None,
        source_version: str | None = None,
        file_hashes: Mapping[str, str] | None = None,
        export_settings: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        training_data_hash: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        artifact_path: str | None = None,
    ) -> RegisteredModel:
        """Record a new version of model ``name``.

        Without ``version`` the next free version (1 + the highest registered, 1 for a new
        name) is assigned atomically: the ``(name, version)`` unique constraint decides
        between concurrent registrations and the loser retries with the following number.

        Args:
            name: model name (Triton model directory name).
            kind: artifact kind, lowercase ``[a-z0-9_]`` (``"onnx"``, ``"tensorrt_plan"``,
                ``"prophet"``, ``"lightgbm"``...).
            version: explicit version >= 1 (e.g. a version folder export already wrote).
            source_package: distribution the weights came from.
            source_version: version of that distribution.
            file_hashes: relative path -> lowercase hex sha256 of each artifact file.
            export_settings: how the artifact was built (JSON object).
            metrics: name -> finite float (backtest metrics, parity figures).
            training_data_hash: lowercase hex sha256 of the training data file.
            parameters: training/model parameters (JSON object).
            artifact_path: where the artifact lies.

        Returns:
            The registered row.

        Raises:
            InvalidArgumentError: a field is malformed (named in the error).
            AlreadyExistsError: an explicit ``version`` is already registered for ``name``.
            UnavailableError: the database cannot be reached.
        """
        _check_name(name)
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            raise InvalidArgumentError("kind", "must be lowercase [a-z0-9_], 1-32 characters")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise InvalidArgumentError("version", "must be an integer >= 1")
        hashes = _check_json_object("file_hashes", file_hashes)
        for path, digest in hashes.items():
            if not isinstance(digest, str) or not _SHA256_RE.match(digest):
                raise InvalidArgumentError(
                    f"file_hashes[{path!r}]", "must be a lowercase hex sha256 (64 characters)"
                )
        if metrics is not None and not isinstance(metrics, Mapping):
            raise InvalidArgumentError("metrics", "must be a mapping of name -> number")
        metric_values: dict[str, float] = {}
        for key, val in (metrics or {}).items():
            if (
                not isinstance(key, str)
                or isinstance(val, bool)
                or not isinstance(val, int | float)
                or not math.isfinite(val)
            ):
                raise InvalidArgumentError(f"metrics.{key}", "must map a name to a finite number")
            metric_values[key] = float(val)
        if training_data_hash is not None and not _SHA256_RE.match(training_data_hash):
            raise InvalidArgumentError("training_data_hash", "must be a lowercase hex sha256")
        for fname, text, limit in (
            ("source_package", source_package, 128),
            ("source_version", source_version, 64),
            ("artifact_path", artifact_path, 1024),
        ):
            if text is not None and (not isinstance(text, str) or not 0 < len(text) <= limit):
                raise InvalidArgumentError(
                    fname, f"must be a non-empty string of at most {limit} characters"
                )
        values: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "source_package": source_package,
            "source_version": source_version,
            "file_hashes": hashes,
            "export_settings": _check_json_object("export_settings", export_settings),
            "metrics": metric_values,
            "training_data_hash": training_data_hash,
            "parameters": _check_json_object("parameters", parameters),
            "artifact_path": artifact_path,
        }
        if version is not None:
            try:
                return self._insert(values, version)
            except exc.IntegrityError:
                raise AlreadyExistsError(
                    f"model {name!r} version {version} is already registered"
                ) from None
        for _attempt in range(_MAX_VERSION_ATTEMPTS):
            try:
                return self._insert(values, None)
            except exc.IntegrityError:
                logger.debug("version race on model %r, retrying", name)
        raise AlreadyExistsError(
            f"could not assign a version to model {name!r} after {_MAX_VERSION_ATTEMPTS} concurrent attempts"
        )

    def _insert(self, values: dict[str, Any], version: int | None) -> RegisteredModel:
        with self.db.session() as session:
            if version is None:
                highest = session.scalar(
                    sa.select(sa.func.max(ModelVersion.version)).where(
                        ModelVersion.name == values["name"]
                    )
                )
                version = (highest or 0) + 1
            row = ModelVersion(**values, version=version, created_at=utcnow())
            session.add(row)
            session.flush()
            return _snapshot(row)

    def get(self, name: str, version: int) -> RegisteredModel:
        """The row of ``name`` at ``version``.

        Raises:
            NotFoundError: no such model version.
            UnavailableError: the database cannot be reached.
        """
        with self.db.session() as session:
            row = session.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.name == name, ModelVersion.version == version
                )
            )
            if row is None:
                raise NotFoundError(f"model {name!r} version {version} is not registered")
            return _snapshot(row)

    def latest(self, name: str) -> RegisteredModel:
        """The highest registered version of ``name``.

        Raises:
            NotFoundError: ``name`` has no registered version.
            UnavailableError: the database cannot be reached.
        """
        with self.db.session() as session:
            row = session.scalar(
                sa.select(ModelVersion)
                .where(ModelVersion.name == name)
                .order_by(ModelVersion.version.desc())
                .limit(1)
            )
            if row is None:
                raise NotFoundError(f"model {name!r} is not registered")
            return _snapshot(row)

    def list(self, name: str | None = None) -> builtins.list[RegisteredModel]:
        """All registered versions, ordered by name then version; only ``name``'s if given.

        Raises:
            UnavailableError: the database cannot be reached.
        """
        query = sa.select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        with self.db.session() as session:
            return [_snapshot(row) for row in session.scalars(query)]
