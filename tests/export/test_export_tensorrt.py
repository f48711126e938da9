"""TensorRT plan of the text encoder: built and checked on a GPU, a clean skip elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY

from wasteml_export import tensorrt as trt_export
from wasteml_export.text_encoder import MODEL_FILE, version_dir
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_TRT
from wasteml_models.config import EncoderSignature, ModelConfigError


def _gpu_and_tensorrt() -> str | None:
    """Why the GPU test cannot run here, or None when it can."""
    if trt_export.gpu_info() is None:
        return "no NVIDIA GPU (nvidia-smi missing or failing)"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "tensorrt Python package not installed"
    return None


@pytest.mark.gpu
def test_plan_builds_and_matches_onnxruntime(exported, tmp_path: Path) -> None:
    """On a GPU: the plan builds with the 1..64 x 8..256 profile, records TensorRT version and
    compute capability, and agrees with fp32 ONNX Runtime (FP16: cosine >= 0.999)."""
    reason = _gpu_and_tensorrt()
    if reason:
        pytest.skip(reason)
    import tensorrt as trt

    repo = tmp_path / "repo"
    (repo / TEXT_ENCODER / "1").mkdir(parents=True)
    (repo / TEXT_ENCODER_TRT).mkdir()
    for name in (MODEL_FILE, "tokenizer.json"):
        shutil.copy2(version_dir(MODEL_REPOSITORY, TEXT_ENCODER) / name, repo / TEXT_ENCODER / "1")
    for model in (TEXT_ENCODER, TEXT_ENCODER_TRT):
        shutil.copy2(MODEL_REPOSITORY / model / "config.pbtxt", repo / model)
    assert trt_export.main(repo, data_dir=DATA_DIR) == 0
    out = version_dir(repo, TEXT_ENCODER_TRT)
    info = json.loads((out / trt_export.PLAN_INFO_FILE).read_text())
    assert info["tensorrt_version"] == trt.__version__
    assert info["gpu"]["compute_capability"] == trt_export.gpu_info().compute_capability
    assert info["profile"]["max"] == {"batch": 64, "sequence": 256}
    parity = info["parity_vs_onnxruntime_fp32"]
    if "skipped" not in parity:
        assert parity["min_cosine"] >= 0.999
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
        (out / trt_export.PLAN_FILE).read_bytes()
    )
    assert engine.get_tensor_profile_shape("input_ids", 0)[2] == (64, 256)
    assert trt_export.main(repo, data_dir=DATA_DIR) == 0  # up to date: no rebuild


def test_tensorrt_command_skips_cleanly_without_gpu(tmp_path: Path, capsys) -> None:
    """Without a GPU or TensorRT the command exits 0, says why, and writes nothing."""
    reason = _gpu_and_tensorrt()
    if reason is None:
        pytest.skip("GPU and TensorRT present: the build test covers this machine")
    assert trt_export.main(tmp_path) == 0
    assert "skipped" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_profile_and_plan_signature_come_from_the_configs(tmp_path: Path) -> None:
    """The profile's largest batch is text_encoder_trt's max_batch_size (sequence 256), and a
    plan config naming other tensors than the ONNX source's is refused."""
    signature = trt_export.plan_signature(MODEL_REPOSITORY)
    assert signature == EncoderSignature.load(MODEL_REPOSITORY, TEXT_ENCODER_TRT)
    shapes = trt_export.profile(signature)
    assert shapes["max"] == (signature.max_batch_size, 256)
    assert shapes["min"] == (1, 8)
    assert shapes["opt"][0] <= signature.max_batch_size
    for model in (TEXT_ENCODER, TEXT_ENCODER_TRT):
        (tmp_path / model).mkdir()
        shutil.copy2(MODEL_REPOSITORY / model / "config.pbtxt", tmp_path / model)
    config = tmp_path / TEXT_ENCODER_TRT / "config.pbtxt"
    config.write_text(config.read_text().replace('"attention_mask"', '"mask"'))
    with pytest.raises(ModelConfigError, match="built from that ONNX graph"):
        trt_export.plan_signature(tmp_path)
