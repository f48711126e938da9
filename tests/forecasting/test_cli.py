"""The `train` typer sub-app: versions, registry rows, --skip-if-trained (real data)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner
from wasteml_testing import REPO_ROOT

from wasteml_server.adapters.storage import Database, ModelRegistry
from wasteml_server.forecasting import repository
from wasteml_tools.forecasting.cli import app

runner = CliRunner()


@pytest.fixture()
def env(tmp_path, data_dir, monkeypatch):
    """A fresh model repository (the committed fill_level config, which states the signature
    the export follows, and no version) and SQLite registry under tmp_path; no Triton."""
    (tmp_path / "model_repository" / "fill_level").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "model_repository" / "fill_level" / "config.pbtxt",
                tmp_path / "model_repository" / "fill_level")
    monkeypatch.setenv("WASTEML_DATABASE_URL", f"sqlite:///{tmp_path / 'reg.db'}")
    monkeypatch.setenv("WASTEML_DATA_DIR", str(data_dir))
    monkeypatch.delenv("WASTEML_TRITON_URL", raising=False)
    return tmp_path


def test_fill_level_versions_registry_and_skip(env) -> None:
    """Training twice writes versions 1 and 2 (both registered, metadata complete);
    --skip-if-trained then does nothing."""
    repo = env / "model_repository"
    args = ["fill-level", "--no-backtest", "--model-repository", str(repo)]
    for expected in (1, 2):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"fill_level v{expected}" in result.output and "OK" in result.output
        assert "load skipped" in result.output
    assert repository.trained_versions(repo, "fill_level") == [1, 2]
    meta = json.loads((repo / "fill_level" / "2" / "metadata.json").read_text())
    assert meta["feature_names"][0] == "fill_now" and len(meta["data"]["sha256"]) == 64
    assert meta["signature"]["inputs"][0]["name"] == "features"
    assert meta["parity"]["max_rel_err"] <= 1e-5
    for f in ("model.onnx", "model.txt"):
        assert (repo / "fill_level" / "2" / f).is_file()
    rows = ModelRegistry(Database(f"sqlite:///{env / 'reg.db'}")).list("fill_level")
    assert sorted(r.version for r in rows) == [1, 2]
    assert rows[0].training_data_hash == meta["data"]["sha256"]
    result = runner.invoke(app, [*args, "--skip-if-trained"])
    assert result.exit_code == 0 and "already trained, training skipped" in result.output
    assert "registered: nothing new" in result.output
    assert repository.trained_versions(repo, "fill_level") == [1, 2]


def test_skip_if_trained_registers_an_unregistered_version(env) -> None:
    """A version trained without the registry gets registered by a --skip-if-trained re-run."""
    repo = env / "model_repository"
    args = ["fill-level", "--no-backtest", "--model-repository", str(repo)]
    assert runner.invoke(app, [*args, "--no-register"]).exit_code == 0
    result = runner.invoke(app, [*args, "--skip-if-trained"])
    assert result.exit_code == 0 and "registered: fill_level v1" in result.output
    rows = ModelRegistry(Database(f"sqlite:///{env / 'reg.db'}")).list("fill_level")
    assert [r.version for r in rows] == [1] and rows[0].file_hashes["model.onnx"]


def test_unknown_grain_is_refused(env) -> None:
    """An unknown --grain is a usage error."""
    result = runner.invoke(app, ["demand", "--grain", "monthly", "--model-repository",
                                 str(env / "r")])
    assert result.exit_code != 0
