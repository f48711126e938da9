"""Retraining without a restart: a version 2 of fill_level trained while the server runs is
served after ModelAdmin.LoadModel, version 1 stays pinnable and reloadable, and a model with no
trained version answers FAILED_PRECONDITION instead of breaking the server."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from test_forecasting_api import fill_request, real_bins
from wasteml_testing import DATA_DIR, REPO_ROOT, require_local_stack, server_settings

from wasteml.client import WastemlClient
from wasteml.v1 import admin_pb2, common_pb2, forecasting_pb2
from wasteml_server.app import BackgroundServer
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting import repository
from wasteml_server.forecasting.inference import OnnxRuntimeInfer
from wasteml_tools.forecasting import training

MODEL_REPOSITORY = REPO_ROOT / "model_repository"


def _copy_model(name: str, dest: Path) -> None:
    """``model_repository/<name>`` with real folders and its files symlinked (read-only use)."""
    shutil.copytree(MODEL_REPOSITORY / name, dest / name, copy_function=os.symlink)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """A model repository holding the text encoder and fill_level version 1 only (no demand
    model is trained in it)."""
    if not repository.trained_versions(MODEL_REPOSITORY, "fill_level"):
        pytest.fail(f"fill_level is not trained in {MODEL_REPOSITORY}: run `.venv/bin/python -m "
                    "wasteml_tools.forecasting.cli fill-level --no-backtest --no-register`")
    root = tmp_path_factory.mktemp("model_repository")
    _copy_model("text_encoder", root)
    (root / "fill_level").mkdir()
    shutil.copy(MODEL_REPOSITORY / "fill_level" / "config.pbtxt", root / "fill_level")
    shutil.copytree(MODEL_REPOSITORY / "fill_level" / "1", root / "fill_level" / "1",
                    copy_function=os.symlink)
    (root / "demand_daily").mkdir()  # config only: never trained here
    shutil.copy(MODEL_REPOSITORY / "demand_daily" / "config.pbtxt", root / "demand_daily")
    return root


@pytest.fixture(scope="module")
def server(repo_copy: Path, tmp_path_factory) -> Iterator[tuple[BackgroundServer, WastemlClient]]:
    """A second server (own local Triton) on the copied repository."""
    require_local_stack()
    os.environ.pop("WASTEML_TRITON_URL", None)
    bg = BackgroundServer(server_settings(tmp_path_factory.mktemp("reload-var"),
                                          model_repository=repo_copy, triton_instance_count=1))
    bg.start(timeout_s=600)
    try:
        with WastemlClient(f"127.0.0.1:{bg.app.port}", timeout_s=60, max_attempts=1) as c:
            c.wait_until_serving(timeout_s=120)
            yield bg, c
    finally:
        bg.stop()


def _predict(client: WastemlClient, version: str) -> forecasting_pb2.PredictFillLevelResponse:
    return client.predict_fill_level(fill_request(real_bins(),
                                                  model=common_pb2.ModelRef(version=version)))


def _ready(client: WastemlClient, name: str) -> list[str]:
    models = {m.name: m for m in client.list_models().models}
    return sorted(v.version for v in models[name].versions
                  if v.state == admin_pb2.MODEL_STATE_READY)


def test_retrained_version_is_served_without_restart(server, repo_copy: Path) -> None:
    """Version 2 trained into the running server's repository is invisible until LoadModel,
    then served (by default and pinned) with its own numbers, while version 1 stays
    pinnable; unloading v1 and LoadModel(version=1) brings it back."""
    bg, client = server
    pid_before = bg.app.triton.pid
    assert _predict(client, "").model.version == "1"
    # real training; a higher learning rate makes version 2 a genuinely different model
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(fl.LGB_PARAMS, "learning_rate", 0.1)
        report = training.train_fill_level(DATA_DIR, repo_copy, run_backtest=False)
    assert report.version == 2

    with pytest.raises(grpc.RpcError) as info:  # trained, not loaded yet
        _predict(client, "2")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "LoadModel" in info.value.details()

    loaded = client.admin.LoadModel(admin_pb2.LoadModelRequest(name="fill_level"), timeout=300)
    assert sorted(v.version for v in loaded.model.versions
                  if v.state == admin_pb2.MODEL_STATE_READY) == ["1", "2"]
    assert _ready(client, "fill_level") == ["1", "2"]
    assert bg.app.triton.pid == pid_before  # same Triton process: no restart

    bins = real_bins()
    served = {}
    for version in ("2", "1"):
        reply = _predict(client, version)
        served[version] = [p.fill_fraction for p in reply.predictions]
        assert reply.model == common_pb2.ModelRef(name="fill_level", version=version)
        pred = fl.FillLevelPredictor.load(repo_copy, int(version))
        x = pred.features(bins)
        onnx = repository.version_dir(repo_copy, "fill_level", int(version)) / "model.onnx"
        want = pred.postprocess(x, OnnxRuntimeInfer(onnx)(x), [b.bin_id for b in bins])
        assert [p.fill_fraction for p in reply.predictions] == pytest.approx(
            [p.fill_fraction for p in want], abs=1e-5)
        assert [p.interval.upper for p in reply.predictions] == pytest.approx(
            [p.upper for p in want], abs=1e-5)
    assert served["1"] != pytest.approx(served["2"], abs=1e-4)  # two models really served
    assert _predict(client, "").model.version == "2"  # latest ready (index cache is short)

    client.admin.UnloadModel(admin_pb2.UnloadModelRequest(name="fill_level", version="1"))
    assert _ready(client, "fill_level") == ["2"]
    with pytest.raises(grpc.RpcError) as info:
        _predict(client, "1")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    client.admin.LoadModel(admin_pb2.LoadModelRequest(name="fill_level", version="1"),
                           timeout=300)
    assert _ready(client, "fill_level") == ["1", "2"]
    assert _predict(client, "1").model.version == "1"


def test_untrained_model_is_failed_precondition(server) -> None:
    """ForecastDemand for a model with no trained version answers FAILED_PRECONDITION naming
    the model, and the server keeps serving."""
    _, client = server
    with pytest.raises(grpc.RpcError) as info:
        client.forecast_demand(forecasting_pb2.ForecastDemandRequest(
            series=forecasting_pb2.SeriesId(grain=forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY,
                                            id="garbage"), horizon=7))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "demand_daily" in info.value.details()
    assert client.health_status("") == "SERVING"


def test_triton_down_is_unavailable(server) -> None:
    """With the server's Triton killed, PredictFillLevel answers UNAVAILABLE (retryable), not
    INTERNAL. Runs last in this module: it ends that server's Triton."""
    bg, client = server
    pid = bg.app.triton.pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # the Triton this module's server started (own session)
    with pytest.raises(grpc.RpcError) as info:
        _predict(client, "")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert "triton" in info.value.details()
