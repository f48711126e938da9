"""Model administration: what Triton has loaded, which versions, and the registry rows.

Combines the model server's repository index and model configuration (explicit model control,
the ``core.inference.ModelControl`` port; Triton in the server) with the model registry (the
``admin.registry.RegistryReader`` port; the SQL store). Transport-free: ``codecs.admin``
converts to protobuf.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wasteml_server.admin.registry import RegisteredModel, RegistryReader
from wasteml_server.core.common import MAX_MODEL_NAME_CHARS, ModelRef, version_number
from wasteml_server.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    shown,
)
from wasteml_server.core.inference import ModelControl, ModelVersionState

#: Triton's model-config data types (``TYPE_FP32``) -> KServe v2 datatypes (``FP32``).
#: Source: triton-inference-server/common model_config.proto and the KServe v2 protocol.
_KSERVE_DATATYPE = {
    "TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16", "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64", "TYPE_INT8": "INT8", "TYPE_INT16": "INT16", "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64", "TYPE_FP16": "FP16", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES", "TYPE_BF16": "BF16",
}

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_MAX_TOKEN_DIGITS = 18
"""Longest page token, digits (an offset into the registry rows; tokens this server returns are
row offsets, far below 10**18)."""


@dataclass(frozen=True)
class VersionStatus:
    """Readiness of one model version: ``state`` is Triton's (READY, LOADING, UNLOADING,
    UNAVAILABLE, or "" when never loaded); ``reason`` its explanation."""

    version: str
    state: str
    reason: str


@dataclass(frozen=True)
class TensorInfo:
    """One input/output: name, KServe v2 datatype, shape incl. the batch axis (-1 = dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """A model as Triton serves it (config of the loaded model; empty tensors when unloaded)."""

    name: str
    versions: tuple[VersionStatus, ...]
    platform: str
    backend: str
    max_batch_size: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def ready(self) -> bool:
        """At least one version is READY."""
        return any(v.state == "READY" for v in self.versions)

    @property
    def ready_versions(self) -> list[int]:
        """Numbers of the READY versions, ascending."""
        return sorted(n for v in self.versions
                      if v.state == "READY" and (n := version_number(v.version)) is not None)


def _tensors(specs: list[dict[str, Any]], batched: bool) -> tuple[TensorInfo, ...]:
    out = []
    for spec in specs:
        dims = tuple(int(d) for d in spec.get("dims", []))
        out.append(
            TensorInfo(
                name=spec["name"],
                datatype=_KSERVE_DATATYPE.get(spec.get("data_type", ""), spec.get("data_type", "")),
                shape=((-1,) if batched else ()) + dims,
            )
        )
    return tuple(out)


class ModelAdmin:
    """Lists, loads and unloads models on Triton and reads the model registry.

    Args:
        triton: the model server (explicit model control must be on).
        registry: the model registry.
        refresh: awaited with the model name before every load, e.g.
            ``LocalTriton.refresh_model``: re-renders the local CPU repository so that versions
            trained since start are seen, and returns the version numbers the model server's
            repository now holds for that model (None when it cannot tell; None as ``refresh``:
            Triton reads the production repository itself).
        on_change: awaited with the model name after every load or unload that reached the
            model server, whether it succeeded or not (e.g. the search service forgets cached
            query embeddings when the encoder changes).
    """

    def __init__(
        self,
        triton: ModelControl,
        registry: RegistryReader,
        refresh: Callable[[str], Awaitable[Sequence[int] | None]] | None = None,
        on_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._triton = triton
        self._registry = registry
        self._refresh = refresh
        self._on_change = on_change

    async def _changed(self, name: str) -> None:
        if self._on_change is not None:
            await self._on_change(name)

    async def list_models(self, ready_only: bool = False) -> list[ModelInfo]:
        """Every model in Triton's repository, sorted by name.

        Raises:
            UnavailableError: Triton cannot be reached.
        """
        index = await self._triton.repository_index()
        names = sorted({row.name for row in index})
        models = await asyncio.gather(*(self._model_info(name, index) for name in names))
        return [m for m in models if m.ready or not ready_only]

    async def get_model(self, name: str) -> ModelInfo:
        """One model by name.

        Raises:
            InvalidArgumentError: a malformed name (``ModelRef.parse_name``; field ``name``).
            NotFoundError: the repository has no such model.
        """
        name = ModelRef.parse_name(name, "name")
        index = await self._triton.repository_index()
        if not any(row.name == name for row in index):
            raise NotFoundError(f"model {_q(name)} is not in the Triton model repository")
        return await self._model_info(name, index)

    async def load(self, name: str, version: str = "") -> ModelInfo:
        """Load ``name`` (all versions by its policy) or add one version to those loaded.

        The repository is refreshed first (``refresh``), so a version trained since the
        server started is loaded too (the config's ``version_policy`` decides which). A version
        the refreshed repository does not hold is refused before the model server is asked; and
        a load never reports success unless the asked version is READY afterwards.

        Raises:
            InvalidArgumentError: a malformed name or version (``ModelRef.parse_name`` /
                ``parse_version``; fields ``name``, ``version``).
            NotFoundError: unknown model, or a version the repository does not hold.
            FailedPreconditionError: the version is in the repository but did not load (the
                model server's reason is in the message).
        """
        name = ModelRef.parse_name(name, "name")
        wanted = ModelRef.parse_version(version, "version")
        on_disk = await self._refresh(name) if self._refresh is not None else None
        model = await self.get_model(name)
        if wanted is not None and on_disk is not None and wanted not in on_disk:
            raise NotFoundError(f"model {_q(name)} has no version {wanted} in the model repository "
                                f"(versions: {', '.join(map(str, on_disk)) or 'none'})")
        try:
            if wanted is None:
                await self._triton.load_model(name)
            else:
                await self._triton.load_model(name, sorted({*model.ready_versions, wanted}))
        finally:
            await self._changed(name)
        model = await self.get_model(name)
        if wanted is not None and wanted not in model.ready_versions:
            status = next((v for v in model.versions if version_number(v.version) == wanted), None)
            if status is None:
                raise NotFoundError(f"model {_q(name)} has no version {wanted} on the model server "
                                    f"(ready: {', '.join(map(str, model.ready_versions)) or 'none'})")
            raise FailedPreconditionError(
                f"version {wanted} of model {_q(name)} did not load: {status.state or 'not loaded'}"
                f"{': ' + status.reason[:500] if status.reason else ''}")
        return model

    async def unload(self, name: str, version: str = "") -> ModelInfo:
        """Unload the whole model, or one version while the others stay loaded.

        Raises:
            InvalidArgumentError: a malformed name or version (fields ``name``, ``version``).
            NotFoundError: unknown model, or the version is not loaded.
        """
        name = ModelRef.parse_name(name, "name")
        wanted = ModelRef.parse_version(version, "version")
        model = await self.get_model(name)
        if wanted is not None and wanted not in model.ready_versions:
            raise NotFoundError(f"version {wanted} of model {_q(name)} is not loaded")
        try:
            if wanted is None:
                await self._triton.unload_model(name)
            elif remaining := [v for v in model.ready_versions if v != wanted]:
                await self._triton.load_model(name, remaining)
            else:
                await self._triton.unload_model(name)
        finally:
            await self._changed(name)
        return await self.get_model(name)

    async def registry_entries(
        self, name: str = "", kind: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[builtins.list[RegisteredModel], str]:
        """Registry rows, newest first, one page at a time.

        Args:
            name: only this model ("" for all; else a well-formed model name).
            kind: only this artefact kind ("" for all).
            page_size: rows per page, 0 -> 100, at most 1000.
            page_token: "" for the first page, else the token a previous page returned (an
                offset: ASCII digits, at most 18, below the number of rows).

        Returns:
            ``(rows, next_page_token)``; the token is "" on the last page.

        Raises:
            InvalidArgumentError: page_size outside 0..1000, a malformed name, or a page token
                this server did not return (fields ``page_size``, ``name``, ``page_token``).
        """
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgumentError("page_size", f"must be in 0..{MAX_PAGE_SIZE}, got {page_size}")
        size = page_size or DEFAULT_PAGE_SIZE
        if name:
            ModelRef.parse_name(name, "name")
        offset = _page_offset(page_token)
        rows = await asyncio.to_thread(self._registry.list, name or None)
        if kind:
            rows = [r for r in rows if r.kind == kind]
        if offset and offset >= len(rows):
            raise InvalidArgumentError("page_token", f"points past the last of the {len(rows)} "
                                       "entries; start again with an empty token")
        rows.sort(key=lambda r: (r.created_at, r.name, r.version), reverse=True)
        page = rows[offset : offset + size]
        next_token = str(offset + size) if offset + size < len(rows) else ""
        return page, next_token

    async def _model_info(self, name: str, index: list[ModelVersionState]) -> ModelInfo:
        versions = tuple(
            sorted(
                (VersionStatus(r.version, r.state, r.reason) for r in index if r.name == name),
                key=lambda v: (len(v.version), v.version),
            )
        )
        config: dict[str, Any] = {}
        if any(v.state == "READY" for v in versions):
            try:
                config = await self._triton.model_config(name)
            except NotFoundError:
                config = {}
        batched = int(config.get("max_batch_size", 0)) > 0
        return ModelInfo(
            name=name,
            versions=versions,
            platform=config.get("platform", ""),
            backend=config.get("backend", ""),
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs=_tensors(config.get("input", []), batched),
            outputs=_tensors(config.get("output", []), batched),
        )


def _q(name: str) -> str:
    """A (validated) model name quoted for a message, bounded."""
    return shown(name, MAX_MODEL_NAME_CHARS)


def _page_offset(token: str) -> int:
    """The row offset a page token stands for (0 for "").

    Raises:
        InvalidArgumentError: not 1..``_MAX_TOKEN_DIGITS`` ASCII digits (field ``page_token``).
    """
    if not token:
        return 0
    if len(token) > _MAX_TOKEN_DIGITS or not (token.isascii() and token.isdigit()):
        raise InvalidArgumentError("page_token", "not a token returned by this server (at most "
                                   f"{_MAX_TOKEN_DIGITS} ASCII digits), got {shown(token)}")
    return int(token)
