"""Fixtures of the Triton tests: a production-style repository and the Triton environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import pytest_asyncio
from triton_testutils import (
    AFFINE_CONFIG,
    ENCODER_MODEL,
    ENCODER_ONNX,
    ENCODER_SOURCE,
    REPO_ROOT,
    SETUP_SCRIPT,
    TRITON_ENV,
    TRT_CONFIG,
    write_affine_onnx,
)


@pytest.fixture(scope="session")
def production_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A production-style repository: ``affine`` (ONNX, versions 1 and 2, version 3 without a
    model file) and ``encoder_trt`` (TensorRT plan, skipped locally)."""
    root = tmp_path_factory.mktemp("model_repository")
    (root / "affine").mkdir()
    (root / "affine" / "config.pbtxt").write_text(AFFINE_CONFIG)
    write_affine_onnx(root / "affine" / "1" / "model.onnx", seed=1)
    write_affine_onnx(root / "affine" / "2" / "model.onnx", seed=2)
    (root / "affine" / "3").mkdir()
    (root / "affine" / "3" / ".gitkeep").write_text("")
    (root / "encoder_trt" / "1").mkdir(parents=True)
    (root / "encoder_trt" / "config.pbtxt").write_text(TRT_CONFIG)
    return root


@pytest.fixture(scope="session")
def triton_env() -> Path:
    """The ``.venv-triton`` environment; created by scripts/setup_triton_env.sh (idempotent)
    when missing, the tests skip when that fails (e.g. no package index)."""
    marker = TRITON_ENV / ".wasteml-triton-env"
    if not marker.is_file():
        result = subprocess.run(
            ["bash", str(SETUP_SCRIPT), str(TRITON_ENV)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(
                f".venv-triton missing and setup_triton_env.sh failed: {result.stderr[-500:]}"
            )
    return TRITON_ENV


@pytest.fixture(scope="module")
def encoder_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding only the exported text encoder (version 1), linked, not copied."""
    root = tmp_path_factory.mktemp("encoder_repo")
    (root / ENCODER_MODEL / "1").mkdir(parents=True)
    (root / ENCODER_MODEL / "config.pbtxt").write_text(
        (ENCODER_SOURCE / "config.pbtxt").read_text()
    )
    (root / ENCODER_MODEL / "1" / "model.onnx").symlink_to(ENCODER_ONNX.resolve())
    return root


@pytest_asyncio.fixture(scope="module")
async def encoder_triton(
    encoder_repository: Path, triton_env: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The real local Triton serving the exported text encoder on CPU."""
    from wasteml_server.adapters.triton.manager import LocalTriton
    from wasteml_server.core.settings import Settings

    settings = Settings(
        model_repository=encoder_repository,
        var_dir=tmp_path_factory.mktemp("var"),
        triton_env_dir=triton_env,
        triton_startup_timeout_s=300,
        triton_stop_grace_s=2,
    )
    async with LocalTriton(settings) as local:
        yield local
