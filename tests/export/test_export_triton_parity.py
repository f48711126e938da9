"""Both text encoders through the real local Triton equal in-process ONNX Runtime to 1e-5
(wasteml_tools.export: the Triton side of the export checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY, TRITON_ENV

from wasteml_export.parity import format_report, run_parity
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_server.core.settings import Settings


@pytest.fixture(scope="module")
def encoder_repository(exported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with only the two exported encoders (symlinked model directories)."""
    root = tmp_path_factory.mktemp("encoders")
    for model in (TEXT_ENCODER, TEXT_ENCODER_INT8):
        (root / model).symlink_to(MODEL_REPOSITORY / model, target_is_directory=True)
    return root


def test_triton_outputs_equal_onnxruntime(encoder_repository: Path, tmp_path: Path) -> None:
    """run_triton_parity through TritonEmbedders: both models within 1e-5 of ONNX Runtime, ok,
    and the combined table lists the Triton rows under a PASS."""
    if not (TRITON_ENV / ".wasteml-triton-env").is_file():
        pytest.skip(".venv-triton missing: run 'make triton-env'")
    from wasteml_tools.export.parity import TRITON_MAX_ABS_DIFF, run_triton_parity
    from wasteml_tools.export.triton_embed import TritonEmbedders

    settings = Settings(
        model_repository=encoder_repository,
        var_dir=tmp_path,
        triton_env_dir=TRITON_ENV,
        triton_url=None,
        triton_startup_timeout_s=300,
    )
    with TritonEmbedders(settings) as embedders:
        served = run_triton_parity(encoder_repository, DATA_DIR, embedders.embedder, n_texts=32)
    assert set(served.agreements) == {TEXT_ENCODER, TEXT_ENCODER_INT8}
    for agreement in served.agreements.values():
        assert agreement.texts == 32
        assert agreement.max_abs_diff <= TRITON_MAX_ABS_DIFF
    assert served.ok, served.failures
    table = format_report(
        run_parity(encoder_repository, DATA_DIR, n_texts=32), served.rows(), served.failures
    )
    assert f"triton {TEXT_ENCODER} vs onnxruntime" in table
    assert f"triton {TEXT_ENCODER_INT8} vs onnxruntime" in table
    assert table.endswith("PASS") and "not compared" not in table
