"""The committed production Triton configs of the forecasting models, parsed with Triton's own
schema (tritonclient's model_config_pb2) and checked against the exported models."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from wasteml_models import FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import GRAINS
from wasteml_server.forecasting.features import DemandFeatureSpec

REPO = Path(__file__).resolve().parents[2] / "model_repository"
#: Tensor names of every forecasting model (the contract Triton clients and the export share).
INPUT_NAME, OUTPUT_NAME = "features", "prediction"


def _config(name: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse((REPO / name / "config.pbtxt").read_text(),
                             model_config_pb2.ModelConfig())


def _n_features(name: str) -> int:
    if name == "fill_level":
        return len(fl.FEATURE_NAMES)
    grain = next(g for g, c in GRAINS.items() if c.model_name == name)
    return len(DemandFeatureSpec(grain, ("x",), ()).names)


@pytest.mark.parametrize("name", ["demand_daily", "demand_route_weekly", "fill_level"])
def test_config_matches_signature(name) -> None:
    """name, ONNX Runtime backend, KIND_GPU, batching bounds, warmup and the I/O signature
    (float32 'features' [n_features], float32 'prediction' [1]) agree with the exported model;
    only .gitkeep is committed in the version folder; wasteml_models reads the same signature."""
    c = _config(name)
    assert c.name == name and c.backend == "onnxruntime"
    assert c.max_batch_size >= max(c.dynamic_batching.preferred_batch_size)
    assert c.dynamic_batching.max_queue_delay_microseconds > 0
    assert [g.kind for g in c.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (inp,), (out,) = c.input, c.output
    n = _n_features(name)
    assert (inp.name, inp.data_type, list(inp.dims)) == (INPUT_NAME, model_config_pb2.TYPE_FP32,
                                                          [n])
    assert (out.name, out.data_type, list(out.dims)) == (OUTPUT_NAME,
                                                          model_config_pb2.TYPE_FP32, [1])
    for w in c.model_warmup:
        assert list(w.inputs[INPUT_NAME].dims) == [n] and w.batch_size <= c.max_batch_size
    assert c.version_policy.latest.num_versions == 2
    assert TabularSignature.load(REPO, name) == TabularSignature(INPUT_NAME, OUTPUT_NAME, n, c.max_batch_size)
    tracked = subprocess.run(["git", "ls-files", f"model_repository/{name}"], cwd=REPO.parent,
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(tracked) == [f"model_repository/{name}/1/.gitkeep",
                               f"model_repository/{name}/config.pbtxt"]


def test_fill_level_export_matches_config(fullness) -> None:
    """A fill_level export has exactly the config's input/output names, dtypes and dims with
    a dynamic batch axis."""
    from wasteml_export.lightgbm import add_input_column, booster_to_onnx

    samples = fl.build_samples(fullness[fullness.index < "2021-01-01"], {})
    booster = fl.fit_fill_booster(samples, num_boost_round=5)
    model = add_input_column(booster_to_onnx(booster, TabularSignature.load(REPO, FILL_LEVEL)), 0)
    c = _config(FILL_LEVEL)
    for proto, cfg in ((model.graph.input[0], c.input[0]), (model.graph.output[0], c.output[0])):
        assert proto.name == cfg.name
        assert proto.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = proto.type.tensor_type.shape.dim
        assert not dims[0].HasField("dim_value")
        assert [d.dim_value for d in dims[1:]] == list(cfg.dims)
    assert np.isfinite(booster.predict(samples.x[:3].astype(np.float64))).all()
