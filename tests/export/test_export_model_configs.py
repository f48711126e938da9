"""Every model_repository/*/config.pbtxt: parsed with Triton's own schema and checked against
the exported model's inputs and outputs wherever the model file exists."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from export_testutils import MODEL_REPOSITORY
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

MODEL_DIRS = sorted(p for p in MODEL_REPOSITORY.iterdir() if (p / "config.pbtxt").is_file())

#: ONNX TensorProto element type -> Triton data type (Triton docs, "Datatypes" table).
ONNX_TO_TRITON = {
    onnx.TensorProto.BOOL: mc.TYPE_BOOL,
    onnx.TensorProto.UINT8: mc.TYPE_UINT8,
    onnx.TensorProto.UINT16: mc.TYPE_UINT16,
    onnx.TensorProto.UINT32: mc.TYPE_UINT32,
    onnx.TensorProto.UINT64: mc.TYPE_UINT64,
    onnx.TensorProto.INT8: mc.TYPE_INT8,
    onnx.TensorProto.INT16: mc.TYPE_INT16,
    onnx.TensorProto.INT32: mc.TYPE_INT32,
    onnx.TensorProto.INT64: mc.TYPE_INT64,
    onnx.TensorProto.FLOAT16: mc.TYPE_FP16,
    onnx.TensorProto.BFLOAT16: mc.TYPE_BF16,
    onnx.TensorProto.FLOAT: mc.TYPE_FP32,
    onnx.TensorProto.DOUBLE: mc.TYPE_FP64,
    onnx.TensorProto.STRING: mc.TYPE_STRING,
}
ONNX_MODELS = ("onnxruntime",)
ONNX_PLATFORMS = ("onnxruntime_onnx",)


def load_config(model_dir: Path) -> mc.ModelConfig:
    """Parse ``config.pbtxt`` strictly (unknown fields are errors) into ``ModelConfig``."""
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def model_facing_dims(tensor: mc.ModelInput | mc.ModelOutput) -> list[int]:
    """The dims the model sees: ``reshape.shape`` when the config reshapes, else ``dims``."""
    return list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)


def onnx_tensors(values, skip: set[str] = frozenset()) -> dict[str, tuple[int | None, list[int]]]:
    """Graph values -> (Triton dtype or None for non-tensors, dims with -1 for dynamic axes)."""
    out = {}
    for v in values:
        if v.name in skip:
            continue
        if not v.type.HasField("tensor_type"):
            out[v.name] = (None, [])
            continue
        t = v.type.tensor_type
        dims = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim
        ]
        out[v.name] = (ONNX_TO_TRITON.get(t.elem_type), dims)
    return out


def version_dirs(model_dir: Path) -> list[Path]:
    """Numbered version folders of a model."""
    return sorted(
        (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )


def compare_io(config: mc.ModelConfig, inputs: dict, outputs: dict, where: str) -> list[str]:
    """Mismatches between the config's I/O and a model's (name -> (dtype, full dims))."""
    problems: list[str] = []
    batching = config.max_batch_size > 0
    every = list(inputs.values()) + list(outputs.values())
    if batching and not all(dims and dims[0] == -1 for _, dims in every):
        problems.append(f"{where}: max_batch_size > 0 but a tensor has no dynamic batch axis")
    config_inputs = {t.name for t in config.input}
    if config_inputs != set(inputs):
        problems.append(f"{where}: inputs {sorted(config_inputs)} != model {sorted(inputs)}")
    for kind, tensors, model in (
        ("input", config.input, inputs),
        ("output", config.output, outputs),
    ):
        for t in tensors:
            if t.name not in model:
                problems.append(f"{where}: config {kind} {t.name!r} is not in the model")
                continue
            dtype, dims = model[t.name]
            if dtype != t.data_type:
                problems.append(
                    f"{where}: {kind} {t.name}: config {mc.DataType.Name(t.data_type)} != "
                    f"model {mc.DataType.Name(dtype) if dtype is not None else 'non-tensor'}"
                )
            expected = dims[1:] if batching else dims
            if model_facing_dims(t) != expected:
                problems.append(
                    f"{where}: {kind} {t.name}: config dims {model_facing_dims(t)} != "
                    f"model dims {expected} (batch axis {'excluded' if batching else 'included'})"
                )
    return problems


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=[p.name for p in MODEL_DIRS])
def test_config_is_a_consistent_triton_model_config(model_dir: Path) -> None:
    """The config parses, names its directory, batches, warms up and versions consistently."""
    config = load_config(model_dir)
    assert config.name == model_dir.name
    assert config.platform or config.backend, "neither platform nor backend set"
    assert config.input and config.output
    assert version_dirs(model_dir), "no numbered version folder (keep 1/.gitkeep in git)"
    for t in list(config.input) + list(config.output):
        assert t.data_type != mc.TYPE_INVALID, f"{t.name} has no data_type"
        assert all(d == -1 or d > 0 for d in t.dims), f"{t.name} dims {list(t.dims)}"
    if config.HasField("dynamic_batching"):
        assert config.max_batch_size > 0, "dynamic_batching needs max_batch_size > 0"
        for size in config.dynamic_batching.preferred_batch_size:
            assert 0 < size <= config.max_batch_size
    assert config.instance_group, "instance_group must be stated (KIND_GPU / KIND_CPU)"
    for group in config.instance_group:
        assert group.kind in (mc.ModelInstanceGroup.KIND_GPU, mc.ModelInstanceGroup.KIND_CPU)
        assert group.count >= 1
    inputs = {t.name: t for t in config.input}
    for warmup in config.model_warmup:
        assert 1 <= warmup.batch_size <= max(config.max_batch_size, 1)
        assert set(warmup.inputs) == set(inputs), f"warmup {warmup.name} inputs"
        for name, data in warmup.inputs.items():
            assert data.data_type == inputs[name].data_type
            declared = list(inputs[name].dims)
            assert len(data.dims) == len(declared)
            assert all(d == w or d == -1 for d, w in zip(declared, data.dims, strict=True))


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=[p.name for p in MODEL_DIRS])
def test_config_matches_exported_model(model_dir: Path, exported) -> None:
    """Names, dtypes and dims (batch axis excluded when max_batch_size > 0) match the model file.

    ``exported`` makes sure the text encoders are exported first; other models are checked
    when their own export has run."""
    config = load_config(model_dir)
    is_onnx = config.backend in ONNX_MODELS or config.platform in ONNX_PLATFORMS
    is_plan = config.platform == "tensorrt_plan" or config.backend == "tensorrt"
    if not (is_onnx or is_plan):
        pytest.skip(f"{config.platform or config.backend}: no model-file signature check")
    default = "model.onnx" if is_onnx else "model.plan"
    filename = config.default_model_filename or default
    files = [v / filename for v in version_dirs(model_dir) if (v / filename).is_file()]
    if not files:
        pytest.skip(f"{model_dir.name}: no version holds {filename} (not exported here)")
    problems: list[str] = []
    for path in files:
        where = f"{model_dir.name}/{path.parent.name}/{filename}"
        if is_onnx:
            proto = onnx.load(str(path), load_external_data=False)
            initializers = {i.name for i in proto.graph.initializer}
            inputs = onnx_tensors(proto.graph.input, skip=initializers)
            outputs = onnx_tensors(proto.graph.output)
        else:
            trt = pytest.importorskip("tensorrt", reason="tensorrt not installed: plan unchecked")
            inputs, outputs = plan_tensors(trt, path)
        problems += compare_io(config, inputs, outputs, where)
    assert not problems, "\n".join(problems)


def plan_tensors(trt, path: Path) -> tuple[dict, dict]:
    """A TensorRT plan's I/O as (Triton dtype, dims with -1 for dynamic axes)."""
    to_triton = {
        trt.DataType.FLOAT: mc.TYPE_FP32,
        trt.DataType.HALF: mc.TYPE_FP16,
        trt.DataType.INT32: mc.TYPE_INT32,
        trt.DataType.INT64: mc.TYPE_INT64,
        trt.DataType.INT8: mc.TYPE_INT8,
        trt.DataType.BOOL: mc.TYPE_BOOL,
    }
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        pytest.skip(f"{path} does not deserialize on this TensorRT/GPU")
    inputs, outputs = {}, {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = (to_triton.get(engine.get_tensor_dtype(name)), list(engine.get_tensor_shape(name)))
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            inputs[name] = entry
        else:
            outputs[name] = entry
    return inputs, outputs


def test_compare_io_catches_a_wrong_config() -> None:
    """The checker reports wrong dtype, wrong dims and a missing batch axis (it can fail)."""
    config = text_format.Parse(
        """
        name: "m" backend: "onnxruntime" max_batch_size: 8
        input [ { name: "input_ids" data_type: TYPE_INT32 dims: [ -1 ] } ]
        output [ { name: "embedding" data_type: TYPE_FP32 dims: [ 128 ] } ]
        """,
        mc.ModelConfig(),
    )
    inputs = {"input_ids": (mc.TYPE_INT64, [-1, -1])}
    outputs = {"embedding": (mc.TYPE_FP32, [4, 384])}
    problems = compare_io(config, inputs, outputs, "m")
    assert any("TYPE_INT32" in p for p in problems)
    assert any("[128]" in p for p in problems)
    assert any("no dynamic batch axis" in p for p in problems)
