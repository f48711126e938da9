"""The ``ingest boston-311`` command on a real slice, run twice against a Milvus Lite file."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner
from wasteml_testing import DATA_DIR, ENCODER_ONNX, REPO_ROOT

from wasteml_tools.search.cli import app


def test_boston_311_command_is_idempotent(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingesting the first 150 rows twice upserts 150 then 0 and the collection holds 150."""
    if not ENCODER_ONNX.is_file():
        pytest.fail(f"{ENCODER_ONNX} missing: run `make models` (python -m wasteml_export text-encoder)")
    monkeypatch.setenv("WASTEML_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("WASTEML_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("WASTEML_MODEL_REPOSITORY", str(REPO_ROOT / "model_repository"))
    runner = CliRunner()
    outputs = []
    for _ in range(2):
        result = runner.invoke(app, ["boston-311", "--limit", "150", "--quiet"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert re.search(r"received 150, upserted 150, unchanged 0", outputs[0]), outputs[0]
    assert re.search(r"received 150, upserted 0, unchanged 150", outputs[1]), outputs[1]
    assert "holds 150" in outputs[1]
