"""Tests of the CPU repository rendering: the local config is derived from the production
config.pbtxt with Triton's own ModelConfig schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from wasteml_models.config import ModelConfigError
from wasteml_server.adapters.triton.repository import load_model_config, render_cpu_repository


def _render(source: Path, dest: Path, env: Path) -> tuple:
    result = render_cpu_repository(source, dest, instance_count=3, execution_env=env)
    return result, load_model_config(dest / "affine" / "config.pbtxt")


def test_cpu_config_is_derived_from_production(production_repository: Path, tmp_path: Path) -> None:
    """Backend python on KIND_CPU x instance_count, TensorRT dropped, batching, warmup, tensors
    and version policy kept as production states them, execution env set."""
    env = tmp_path / "env"
    _, cpu = _render(production_repository, tmp_path / "rendered", env)
    prod = load_model_config(production_repository / "affine" / "config.pbtxt")
    assert cpu.backend == "python" and cpu.platform == ""
    assert cpu.name == "affine"
    assert [(g.kind, g.count, list(g.gpus)) for g in cpu.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 3, [])
    ]
    assert not cpu.optimization.execution_accelerators.gpu_execution_accelerator
    assert cpu.optimization.input_pinned_memory.enable
    assert cpu.max_batch_size == prod.max_batch_size == 16
    assert cpu.input == prod.input and cpu.output == prod.output
    assert cpu.dynamic_batching == prod.dynamic_batching
    assert cpu.model_warmup == prod.model_warmup
    assert cpu.version_policy == prod.version_policy
    assert cpu.parameters["EXECUTION_ENV_PATH"].string_value == str(env.resolve())
    assert cpu.parameters["ORT_INTRA_OP_THREADS"].string_value == "1"


def test_versions_and_skips(production_repository: Path, tmp_path: Path) -> None:
    """Versions with a model.onnx get model.py + ort_runner.py + the ONNX file; a version
    without ONNX and the TensorRT-plan model are skipped with a reason."""
    result, _ = _render(production_repository, tmp_path / "rendered", tmp_path / "env")
    assert result.model_names == ("affine",)
    assert result.models[0].versions == (1, 2)
    assert [name for name, _ in result.skipped] == ["encoder_trt"]
    assert "GPU" in result.skipped[0][1]
    for version in (1, 2):
        folder = tmp_path / "rendered" / "affine" / str(version)
        assert sorted(p.name for p in folder.iterdir()) == [
            "model.onnx",
            "model.py",
            "ort_runner.py",
        ]
        assert (
            folder.joinpath("model.onnx").resolve()
            == (production_repository / "affine" / str(version) / "model.onnx").resolve()
        )
    assert not (tmp_path / "rendered" / "affine" / "3").exists()


def test_render_replaces_previous_output(production_repository: Path, tmp_path: Path) -> None:
    """A second render replaces the whole tree: stale models do not survive."""
    dest = tmp_path / "rendered"
    _render(production_repository, dest, tmp_path / "env")
    (dest / "stale_model").mkdir()
    _render(production_repository, dest, tmp_path / "env")
    assert sorted(p.name for p in dest.iterdir()) == ["affine"]
    assert not list(tmp_path.glob("rendered.*"))


def test_rendered_config_round_trips_through_schema(
    production_repository: Path, tmp_path: Path
) -> None:
    """The written config.pbtxt is valid ModelConfig text format (parses back identically)."""
    _, cpu = _render(production_repository, tmp_path / "rendered", tmp_path / "env")
    again = model_config_pb2.ModelConfig()
    text_format.Parse(text_format.MessageToString(cpu), again)
    assert again == cpu


def test_bad_inputs_raise_their_own_errors(production_repository: Path, tmp_path: Path) -> None:
    """A missing repository (NotADirectoryError), instance_count 0 (ValueError) and a broken
    config.pbtxt (ModelConfigError naming the file) are refused, and nothing is rendered."""
    with pytest.raises(NotADirectoryError, match="nope is not a directory"):
        render_cpu_repository(
            tmp_path / "nope", tmp_path / "out", instance_count=1, execution_env=tmp_path
        )
    with pytest.raises(ValueError, match="^instance_count must be >= 1, got 0$"):
        render_cpu_repository(
            production_repository, tmp_path / "out", instance_count=0, execution_env=tmp_path
        )
    broken = tmp_path / "broken"
    (broken / "m").mkdir(parents=True)
    (broken / "m" / "config.pbtxt").write_text("backend: onnxruntime\nmax_batch_size: [")
    with pytest.raises(ModelConfigError, match="m/config.pbtxt: not a Triton ModelConfig"):
        render_cpu_repository(broken, tmp_path / "out", instance_count=1, execution_env=tmp_path)
    assert not list(tmp_path.glob("out*"))
