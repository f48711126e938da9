"""ONNX export (onnxmltools) parity with Booster.predict on real rows, to 1e-5 relative."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from wasteml_testing import REPO_ROOT

from wasteml_export.lightgbm import (
    PARITY_RTOL,
    add_input_column,
    booster_to_onnx,
    check_parity,
)
from wasteml_models import FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import training_matrix
from wasteml_server.forecasting.inference import OnnxRuntimeInfer

REPOSITORY = REPO_ROOT / "model_repository"


def _export(booster, model_name, base):
    model = booster_to_onnx(booster, TabularSignature.load(REPOSITORY, model_name))
    return add_input_column(model, base) if base is not None else model


def test_signature_is_documented_one(small_daily) -> None:
    """The graph has one float32 input 'features' [batch, n_features] and one output
    'prediction' [batch, 1] as the model's config.pbtxt names them, batch dynamic."""
    spec, config, booster = small_daily
    model = _export(booster, config.model_name, config.base_column(spec))
    signature = TabularSignature.load(REPOSITORY, config.model_name)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == (signature.features, signature.prediction) == ("features", "prediction")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and dims[1].dim_value == len(spec.names)
    x = np.zeros((5, len(spec.names)), dtype=np.float32)
    assert OnnxRuntimeInfer(model.SerializeToString())(x).shape == (5,)


@pytest.mark.parametrize("fixture", ["small_daily", "small_weekly"])
def test_demand_parity_on_real_rows(fixture, request, daily, weekly) -> None:
    """ONNX Runtime equals Booster.predict (+ the base column) within 1e-5 relative (floor: the
    mean target) on every real training row, including categorical route splits."""
    spec, config, booster = request.getfixturevalue(fixture)
    series = daily if spec.grain == "daily" else weekly
    x, y = training_matrix(series, spec)
    base = config.base_column(spec)
    model = _export(booster, config.model_name, base)
    report = check_parity(booster, model, x, floor=float(np.mean(np.abs(y))), base_column=base)
    assert report.n_rows == len(x) > 1000
    assert report.max_rel_err <= PARITY_RTOL, report
    # where predictions are at least the floor, the plain relative error holds too
    got = OnnxRuntimeInfer(model.SerializeToString())(x).astype(np.float64)
    ref = booster.predict(x.astype(np.float64)) + (x[:, base] if base is not None else 0.0)
    big = np.abs(ref) >= np.mean(np.abs(y))
    assert big.sum() > 100
    assert np.max(np.abs(got[big] - ref[big]) / np.abs(ref[big])) <= PARITY_RTOL


def test_fill_level_parity_on_real_rows(fullness) -> None:
    """The fill-level graph (booster + fill_now) equals Booster.predict + fill_now within 1e-5."""
    samples = fl.build_samples(fullness, fl.own_rates(fullness))
    booster = fl.fit_fill_booster(samples, num_boost_round=60)
    model = _export(booster, FILL_LEVEL, 0)
    report = check_parity(booster, model, samples.x, floor=float(np.mean(samples.y)),
                          base_column=0)
    assert report.max_rel_err <= PARITY_RTOL, report
    assert report.max_abs_err < 1e-5


def test_export_refuses_wrong_feature_count(small_daily) -> None:
    """Exporting to a signature whose feature count is not the booster's names both counts."""
    _, config, booster = small_daily
    signature = dataclasses.replace(TabularSignature.load(REPOSITORY, config.model_name), n_features=3)
    with pytest.raises(ValueError, match=f"^features has 3 columns, the booster {booster.num_feature()}$"):
        booster_to_onnx(booster, signature)


@pytest.mark.parametrize("value", [1.0, 1000.5, 123456.0])
def test_adjacent_float32_values_split_as_in_lightgbm(value) -> None:
    """A split between two adjacent float32 values (double threshold that rounds up to the upper
    one) sends the upper value right in ONNX as in LightGBM."""
    import lightgbm as lgb

    lo = np.float32(value)
    hi = np.nextafter(lo, np.float32(np.inf), dtype=np.float32)
    x = np.array([[lo]] * 50 + [[hi]] * 50, dtype=np.float32)
    y = np.r_[np.zeros(50), np.ones(50)]
    params = {"objective": "regression", "min_data_in_leaf": 1, "min_data_in_bin": 1,
              "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=1)
    q = np.array([[lo], [hi]], dtype=np.float32)
    ref = booster.predict(q.astype(np.float64))
    assert ref[1] > ref[0]
    one_column = TabularSignature("features", "prediction", n_features=1, max_batch_size=1)
    got = OnnxRuntimeInfer(booster_to_onnx(booster, one_column).SerializeToString())(q)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
