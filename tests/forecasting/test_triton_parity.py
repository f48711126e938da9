"""Forecasts through the real local Triton (CPU, Python backend + ONNX Runtime) equal the
in-process ONNX Runtime ones, for two trained versions side by side."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

from wasteml_models import DEMAND_DAILY, FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.core.settings import Settings
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting import repository
from wasteml_server.forecasting.demand import DemandForecaster, SeriesGrain
from wasteml_server.forecasting.inference import OnnxRuntimeInfer, served_infer_fn
from wasteml_tools.forecasting import training

REPO_ROOT = Path(__file__).resolve().parents[2]
TRITON_ENV = REPO_ROOT / ".venv-triton"


@pytest.fixture(scope="module")
def trained_repository(tmp_path_factory, data_dir) -> Path:
    """The committed configs of demand_daily and fill_level with trained versions (fill_level
    twice: versions 1 and 2)."""
    root = tmp_path_factory.mktemp("model_repository")
    for name in (DEMAND_DAILY, FILL_LEVEL):
        (root / name).mkdir()
        shutil.copy(REPO_ROOT / "model_repository" / name / "config.pbtxt", root / name)
    training.train_demand_grain(data_dir, root, SeriesGrain.SERVICE_LINE_DAILY, run_backtest=False,
                                intervals=False)
    for _ in range(2):
        training.train_fill_level(data_dir, root, run_backtest=False)
    return root


@pytest_asyncio.fixture(scope="module")
async def triton(trained_repository, tmp_path_factory):
    """A local Triton serving the trained repository."""
    if not (TRITON_ENV / "bin" / "activate").is_file():
        pytest.skip(".venv-triton is missing (scripts/setup_triton_env.sh)")
    from wasteml_server.adapters.triton.manager import LocalTriton

    settings = Settings(model_repository=trained_repository, var_dir=tmp_path_factory.mktemp("var"),
                        triton_env_dir=TRITON_ENV, triton_instance_count=1,
                        triton_startup_timeout_s=180, triton_stop_grace_s=2, triton_url=None)
    async with LocalTriton(settings) as local:
        yield local


async def test_demand_forecast_through_triton_equals_in_process(triton, trained_repository,
                                                                data_dir) -> None:
    """A 28-day recursive garbage forecast via Triton equals the in-process ONNX Runtime one."""
    loop = asyncio.get_running_loop()
    signature = TabularSignature.load(trained_repository, DEMAND_DAILY)
    grain = SeriesGrain.SERVICE_LINE_DAILY
    via_triton = DemandForecaster.load(trained_repository, data_dir, grain,
                                       infer=served_infer_fn(triton.client, DEMAND_DAILY, signature, loop))
    local = DemandForecaster.load(trained_repository, data_dir, grain)
    a = await asyncio.to_thread(via_triton.forecast, "daily:garbage", 28)
    b = local.forecast("daily:garbage", 28)
    np.testing.assert_allclose(a.point_kg, b.point_kg, rtol=1e-5, atol=1e-3)


async def test_fill_level_versions_through_triton(triton, trained_repository, fullness) -> None:
    """Both loaded fill_level versions answer through Triton (with row chunking) exactly as
    in-process ONNX Runtime of the same version's file; seeded training on the same data made
    the two versions give identical outputs."""
    loop = asyncio.get_running_loop()
    col = "Naizi_inorganic_1"
    s = fullness[col]["2021-08-01":"2021-08-12"].dropna()
    ts = (s.index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    bins = [fl.BinReadings(col, ts, s.to_numpy(), ts[-1] + k * 43200.0) for k in range(1, 6)]
    # a batch bound of 2 rows makes the 5 rows go out in 3 requests
    signature = dataclasses.replace(TabularSignature.load(trained_repository, FILL_LEVEL), max_batch_size=2)
    outputs = []
    for version in (1, 2):
        pred = fl.FillLevelPredictor.load(trained_repository, version)
        x = pred.features(bins)
        infer = served_infer_fn(triton.client, FILL_LEVEL, signature, loop, version=str(version))
        got = await asyncio.to_thread(infer, x)
        path = repository.version_dir(trained_repository, FILL_LEVEL, version) / "model.onnx"
        np.testing.assert_allclose(got, OnnxRuntimeInfer(path)(x), rtol=1e-6, atol=1e-7)
        out = pred.postprocess(x, got, [b.bin_id for b in bins])
        assert all(0.0 <= p.lower <= p.fill_fraction <= p.upper <= 1.0 for p in out)
        outputs.append(got)
    np.testing.assert_array_equal(outputs[0], outputs[1])
