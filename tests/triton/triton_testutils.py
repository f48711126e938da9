"""Helpers of the Triton tests: small real ONNX graphs and production-style configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
TRITON_ENV = REPO_ROOT / ".venv-triton"
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_triton_env.sh"

#: Production GPU form, as model_repository/<model>/config.pbtxt states it (issue 3).
AFFINE_CONFIG = """
name: "affine"
backend: "onnxruntime"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [
  { name: "y" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "z" data_type: TYPE_FP32 dims: [ 3 ] }
]
version_policy { latest { num_versions: 1 } }
instance_group [ { kind: KIND_GPU count: 1 gpus: [ 0 ] } ]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100000
}
optimization {
  execution_accelerators {
    gpu_execution_accelerator [ {
      name: "tensorrt"
      parameters { key: "precision_mode" value: "FP16" }
      parameters { key: "max_workspace_size_bytes" value: "1073741824" }
    } ]
  }
  input_pinned_memory { enable: true }
}
model_warmup [ {
  name: "zeros"
  batch_size: 4
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } }
} ]
"""

TRT_CONFIG = """
name: "encoder_trt"
platform: "tensorrt_plan"
max_batch_size: 64
input [ { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "embedding" data_type: TYPE_FP32 dims: [ 384 ] } ]
instance_group [ { kind: KIND_GPU count: 1 } ]
"""


def affine_weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (4x3) and bias (3,) of the affine test model, float32, from a seed."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)


def write_affine_onnx(path: Path, seed: int) -> Path:
    """ONNX graph y = x @ W + b, z = relu(y); x float32 [batch, 4], dynamic batch axis."""
    weight, bias = affine_weights(seed)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3]),
        ],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_gather_onnx(path: Path) -> Path:
    """ONNX graph out = table[ids]; ids int64 [batch, -1] -> float32 [batch, -1, 3].

    An id outside 0..9 makes ONNX Runtime raise InvalidArgument (a real bad-value error)."""
    table = np.arange(30, dtype=np.float32).reshape(10, 3)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["out"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", 3])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --- the exported text encoder (model_repository/text_encoder, built by export/) -------------
ENCODER_MODEL = "text_encoder"
ENCODER_SOURCE = REPO_ROOT / "model_repository" / ENCODER_MODEL
ENCODER_ONNX = ENCODER_SOURCE / "1" / "model.onnx"


def texts_csv() -> Path:
    """The real Boston 311 sanitation requests under ``Settings().data_dir``."""
    from wasteml_server.core.settings import Settings

    return REPO_ROOT / Settings().data_dir / "service_requests" / "boston_311_2015_sanitation.csv"


def real_texts(n: int) -> list[str]:
    """The first ``n`` distinct case titles + closure reasons of the Boston 311 sanitation data."""
    import csv

    texts: list[str] = []
    with texts_csv().open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = " ".join(t for t in (row["CASE_TITLE"], row["CLOSURE_REASON"]) if t).strip()
            if text and text not in texts:
                texts.append(text)
            if len(texts) == n:
                break
    return texts


def encoder_feeds(texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Per text, the encoder inputs named as its config names them (input_ids, attention_mask),
    int64 ``[1, bucket]``, tokenised by the server's own tokenizer and padded to its bucket."""
    from wasteml_models.tokenizer import TextTokenizer
    from wasteml_server.adapters.triton.repository import load_model_config

    config = load_model_config(ENCODER_SOURCE / "config.pbtxt")
    names = [i.name for i in config.input]
    tokenizer = TextTokenizer.from_package()
    feeds = []
    for text in texts:
        ids, mask = tokenizer.encode([text])
        feeds.append({n: mask if "mask" in n else ids for n in names})
    return feeds
