"""Caller mistakes against the real local Triton reach the caller with the right code (issue
12, #6 and #10): a version Triton cannot parse is InvalidArgumentError on ``model.version``
(not InternalError or UnavailableError), an unknown model NotFoundError with a bounded message,
and ModelAdmin never reports a load of a missing version as success — whether it can check the
repository first (the local Triton) or only Triton's answer (an external one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from wasteml_server.adapters.storage import Database, ModelRegistry, migrate
from wasteml_server.adapters.triton.manager import LocalTriton
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.core.common import is_model_name
from wasteml_server.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from wasteml_server.core.settings import Settings

X = np.zeros((1, 4), np.float32)


@pytest_asyncio.fixture(scope="module")
async def triton(production_repository: Path, triton_env: Path,
                 tmp_path_factory: pytest.TempPathFactory):
    """One local Triton serving ``affine`` (versions 1 and 2 exported, 3 without a model file;
    version 2 READY by its policy)."""
    settings = Settings(model_repository=production_repository,
                        var_dir=tmp_path_factory.mktemp("var"), triton_env_dir=triton_env,
                        triton_instance_count=1, triton_startup_timeout_s=120,
                        triton_stop_grace_s=2)
    async with LocalTriton(settings) as local:
        yield local


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """An empty model registry on a migrated SQLite database."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'wasteml.db'}"
    migrate(url)
    return ModelRegistry(Database(url))


async def _ready(triton: LocalTriton) -> list[str]:
    return sorted(r.version for r in await triton.client.repository_index()
                  if r.name == "affine" and r.state == "READY")


@pytest.mark.parametrize("version", ["9" * 30, str(2**63), str(2**64)])
async def test_version_triton_cannot_parse_is_the_callers(triton: LocalTriton, version: str) -> None:
    """Triton's "failed to get model version from specified version string" (an int64
    overflow) is InvalidArgumentError on model.version for inference and config calls, not an
    InternalError or a retryable outage."""
    with pytest.raises(InvalidArgumentError) as info:
        await triton.client.infer("affine", {"x": X}, ["y"], version=version)
    assert info.value.field == "model.version"
    with pytest.raises(InvalidArgumentError) as info:
        await triton.client.model_config("affine", version=version)
    assert info.value.field == "model.version"


@pytest.mark.parametrize("name", ["no_such_model", "m" * 128, "m" * 20_000, "../affine", "a b"])
async def test_unknown_model_is_not_found_with_a_bounded_message(triton: LocalTriton,
                                                                 name: str) -> None:
    """An unknown model is NotFoundError for every call that names one, the message quoting
    the name in bounded form; a 20,000-character name (Triton's echo of it overflowed the
    reply's 16 KiB metadata: RESOURCE_EXHAUSTED, read as an outage) is refused unasked."""
    client = triton.client
    calls = [lambda: client.infer(name, {"x": X}, ["y"]), lambda: client.load_model(name),
             lambda: client.load_model(name, [1]), lambda: client.model_config(name),
             lambda: client.model_statistics(name)]
    if not is_model_name(name):  # Triton answers an unload of an unknown (valid) name with OK
        calls.append(lambda: client.unload_model(name))
    for call in calls:
        with pytest.raises(NotFoundError) as info:
            await call()
        assert len(info.value.message) < 1500
    assert not await client.model_ready(name)


async def test_refresh_reports_the_versions_and_checks_the_name(triton: LocalTriton) -> None:
    """refresh_model returns the versions the local repository holds (3 has no model file) and
    refuses a 300-character or path-like name as InvalidArgumentError on ``name`` (was OSError
    ENAMETOOLONG: INTERNAL)."""
    assert await triton.refresh_model("affine") == (1, 2)
    for name in ("a" * 300, "../affine", "affine/1"):
        with pytest.raises(InvalidArgumentError) as info:
            await triton.refresh_model(name)
        assert info.value.field == "name"


async def test_admin_refuses_a_version_the_repository_lacks(triton: LocalTriton,
                                                            registry: ModelRegistry) -> None:
    """With the app's wiring (refresh = the local repository), a load of version 3 (a folder
    without model file) or 99 is NotFoundError before Triton is asked; version 1 loads next to
    2 and unloads again."""
    admin = ModelAdmin(triton.client, registry, refresh=triton.refresh_model)
    for version in ("3", "99"):
        with pytest.raises(NotFoundError, match=f"no version {version} in the model repository"):
            await admin.load("affine", version)
        assert await _ready(triton) == ["2"]
    model = await admin.load("affine", "1")
    assert model.ready_versions == [1, 2]
    model = await admin.unload("affine", "1")
    assert model.ready_versions == [2]


async def test_admin_verifies_a_load_it_could_not_check(triton: LocalTriton,
                                                        registry: ModelRegistry) -> None:
    """Without a repository check (an external Triton), a load of a missing version reaches
    Triton, which reloads what it has and says OK; the load is then found not to have the
    version (NotFoundError), and version 2 still serves."""
    admin = ModelAdmin(triton.client, registry)
    with pytest.raises(NotFoundError, match="has no version 99 on the model server"):
        await admin.load("affine", "99")
    assert await _ready(triton) == ["2"]
    await triton.client.infer("affine", {"x": X}, ["y"], version="2")


async def test_a_broken_version_is_failed_precondition(triton: LocalTriton,
                                                       registry: ModelRegistry) -> None:
    """A version whose model file is broken fails its load with FailedPreconditionError
    carrying Triton's reason; version 2 keeps serving."""
    assert triton.rendered is not None
    rendered = triton.rendered.repository / "affine"
    shutil.copytree(rendered / "2", rendered / "4")
    (rendered / "4" / "model.onnx").unlink()
    (rendered / "4" / "model.onnx").write_bytes(b"not an onnx graph")
    try:
        admin = ModelAdmin(triton.client, registry)
        with pytest.raises(FailedPreconditionError, match="version 4"):
            await admin.load("affine", "4")
        assert await _ready(triton) == ["2"]
    finally:
        shutil.rmtree(rendered / "4")
