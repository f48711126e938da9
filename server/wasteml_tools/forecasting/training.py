"""Training pipeline behind ``wasteml train demand|fill-level``: backtest, fit, export, register.

Steps per model (each a plain function, so tests and the CLI share them):

1. rolling-origin backtest (``backtest.py``) and its metric table (optional);
2. fit on all data (Austin up to 2021-07-04; all Blantyre readings);
3. export the booster to ONNX (``wasteml_export.lightgbm``), check parity with ``Booster.predict`` on the
   real training rows, fit and serialise the Prophet interval models (demand);
4. write ``model_repository/<model>/<next version>/`` (``repository.write_version``);
5. the CLI then registers the version in the SQL registry and asks Triton to load it.

Parity floor: relative errors are taken against ``max(|prediction|, mean |target|)``: float32
trees carry an absolute rounding error of about 1e-6 of the magnitude of the summed leaf values,
so predictions near 0 (Sundays, empty skips) would otherwise show large *relative* errors from
sub-gram differences. The metadata records the floor and the maximum absolute error.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import onnxruntime
import pandas as pd

from wasteml_export.lightgbm import (
    PARITY_RTOL,
    ParityReport,
    add_input_column,
    booster_to_onnx,
    check_parity,
)
from wasteml_models import FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting import austin, repository
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import GRAINS, SeriesGrain, fit_booster, training_matrix
from wasteml_server.forecasting.features import DemandFeatureSpec, select_collection_holidays
from wasteml_server.forecasting.intervals import PROPHET_FILE, fit_prophet, save_prophets
from wasteml_tools.forecasting import backtest

logger = logging.getLogger(__name__)

FILL_MODEL_NAME = FILL_LEVEL
"""Model name of the fill-level model."""


@dataclass
class TrainReport:
    """What one training run did.

    Attributes:
        model_name: Triton model name.
        version: the written version (None when skipped).
        path: the version folder (None when skipped).
        table: markdown metric table of the backtest ("" without backtest).
        metrics: flat name -> float (backtest metrics and parity) for the registry.
        parity: ONNX parity on the training rows.
        seconds: stage -> wall seconds.
        skipped: True when ``skip_if_trained`` found a trained version (the report then
            describes that version, read back from its metadata).
        data_sha256: sha256 of the training data file.
        params: training parameters (for the registry).
        files: version-relative file -> sha256.
    """

    model_name: str
    version: int | None = None
    path: Path | None = None
    table: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    parity: ParityReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: bool = False
    data_sha256: str = ""
    params: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    return {"lightgbm": lgb.__version__, "onnxmltools": onnxmltools.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "pandas": pd.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _signature(sig: TabularSignature, unit: str) -> dict:
    return {"inputs": [{"name": sig.features, "dtype": "float32", "shape": [-1, sig.n_features]}],
            "outputs": [{"name": sig.prediction, "dtype": "float32", "shape": [-1, 1],
                         "unit": unit}]}


def _file_hashes(vdir: Path) -> dict[str, str]:
    return {p.name: austin.file_sha256(p) for p in sorted(vdir.iterdir())
            if p.is_file() and p.name not in (".gitkeep", repository.METADATA_FILE)}


def train_demand_grain(data_dir: Path, model_repository: Path, grain: str, *,
                       run_backtest: bool = True, intervals: bool = True,
                       skip_if_trained: bool = False) -> TrainReport:
    """Backtest, fit, export and write one demand model (``demand_daily`` or
    ``demand_route_weekly``).

    Args:
        data_dir: ``settings.data_dir``.
        model_repository: ``settings.model_repository``.
        grain: ``"daily"`` or ``"weekly"``.
        run_backtest: run the README-protocol backtest first (its table goes in the report).
        intervals: fit Prophet models (backtest coverage and the served quantiles).
        skip_if_trained: return at once when a trained version exists.

    Raises:
        InvalidArgumentError: unknown grain or missing data file.
    """
    try:
        config = GRAINS[SeriesGrain(grain)]
    except ValueError as err:
        raise InvalidArgumentError("grain", f"unknown grain {grain!r}: daily or weekly") from err
    report = TrainReport(config.model_name)
    if skip_if_trained and repository.trained_versions(model_repository, config.model_name):
        latest = repository.trained_versions(model_repository, config.model_name)[-1]
        return report_from_version(model_repository, config.model_name, latest)
    t0 = time.perf_counter()
    df = austin.load_austin(data_dir)
    daily = austin.city_daily(df)
    series = daily if grain == "daily" else austin.route_weekly(df)
    report.data_sha256 = austin.file_sha256(Path(data_dir) / austin.AUSTIN_FILE)
    report.seconds["load"] = time.perf_counter() - t0
    garbage = daily.series("daily:garbage")
    if run_backtest:
        t = time.perf_counter()
        pre = garbage[garbage.index < backtest.HOLDOUT_START]
        bt_spec = DemandFeatureSpec(grain, series.series_ids, select_collection_holidays(pre))
        protocols = [("8 weekly origins, h = 1-7 d" if grain == "daily" else
                      "1 origin, h = 1-8 weeks", False)]
        if grain == "daily":
            protocols.append(("1 origin, h = 1-56 d", True))
        tables = []
        for title, long_h in protocols:
            bt = backtest.backtest_demand(series, bt_spec, config, intervals=intervals,
                                          long_horizon=long_h)
            rows = backtest.score_demand(bt)
            tables.append(f"{title} (holdout 2021-05-10 .. 2021-07-04):\n\n"
                          + backtest.format_demand_table(rows))
            prefix = "h56/" if long_h else ""
            for r in rows:
                for k in ("wape", "accuracy", "mase", "coverage"):
                    if not np.isnan(r[k]):
                        report.metrics[f"{prefix}{r['group']}/{r['method']}/{k}"] = float(r[k])
        report.table = "\n\n".join(tables)
        report.seconds["backtest"] = time.perf_counter() - t
    t = time.perf_counter()
    spec = DemandFeatureSpec(grain, series.series_ids, select_collection_holidays(garbage))
    booster = fit_booster(series, spec, config)
    report.seconds["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    base = config.base_column(spec)
    signature = TabularSignature.load(model_repository, config.model_name)
    model = booster_to_onnx(booster, signature)
    if base is not None:
        model = add_input_column(model, base)
    x, y = training_matrix(series, spec)
    floor = float(np.mean(np.abs(y)))
    report.parity = check_parity(booster, model, x, floor=floor, base_column=base)
    report.seconds["export"] = time.perf_counter() - t
    prophets = {}
    if intervals:
        t = time.perf_counter()
        prophets = {sid: fit_prophet(series.series(sid), spec) for sid in series.series_ids}
        report.seconds["prophet_fit"] = time.perf_counter() - t
    version = repository.next_version(model_repository, config.model_name)
    vdir = repository.version_dir(model_repository, config.model_name, version)
    vdir.mkdir(parents=True, exist_ok=True)
    if prophets:
        save_prophets(prophets, vdir / PROPHET_FILE)
    report.params = {"lgb_params": config.lgb_params, "num_boost_round": config.num_boost_round,
                     "base_feature": config.base_feature, "max_horizon": config.max_horizon}
    for k, v in report.parity.to_json().items():
        report.metrics[f"parity/{k}"] = float(v)
    metadata = {
        "model_name": config.model_name, "version": version, "kind": "lightgbm_onnx",
        "created_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        "grain": grain, "unit": "kg per period",
        "signature": _signature(signature, "kg"),
        "feature_names": list(spec.names), "feature_spec": spec.to_json(),
        "base_feature": config.base_feature,
        "data": {"file": austin.AUSTIN_FILE, "sha256": report.data_sha256,
                 "first_period": str(series.index[0].date()),
                 "last_period": str(series.index[-1].date()),
                 "n_series": len(series.series_ids), "n_training_rows": int(len(y))},
        "params": report.params, "metrics": report.metrics, "backtest_table": report.table,
        "parity": report.parity.to_json(), "seconds": report.seconds,
        "interval_model": {"kind": "prophet", "file": PROPHET_FILE if prophets else None,
                           "uncertainty_samples": 500},
        "libraries": _versions(),
    }
    repository.write_version(model_repository, config.model_name, version, model, booster,
                             metadata)
    report.version, report.path = version, vdir
    report.files = _file_hashes(vdir)
    report.seconds["total"] = time.perf_counter() - t0
    logger.info("%s v%d trained in %.1f s", config.model_name, version, report.seconds["total"])
    return report


def train_fill_level(data_dir: Path, model_repository: Path, *, run_backtest: bool = True,
                     skip_if_trained: bool = False) -> TrainReport:
    """Backtest, fit, calibrate, export and write the ``fill_level`` model.

    Raises:
        InvalidArgumentError: missing data files (field ``data_dir``).
    """
    report = TrainReport(FILL_MODEL_NAME)
    if skip_if_trained and repository.trained_versions(model_repository, FILL_MODEL_NAME):
        latest = repository.trained_versions(model_repository, FILL_MODEL_NAME)[-1]
        return report_from_version(model_repository, FILL_MODEL_NAME, latest)
    t0 = time.perf_counter()
    fullness = fl.load_fullness(data_dir)
    study = fl.study_rates(data_dir, list(fullness.columns))
    report.data_sha256 = austin.file_sha256(Path(data_dir) / fl.FULLNESS_FILE)
    if run_backtest:
        t = time.perf_counter()
        bt = backtest.backtest_fill(fullness, study)
        rows = backtest.score_fill(bt)
        ttf = backtest.score_time_to_full(bt)
        report.table = (backtest.format_fill_table(rows) + "\n\nTime to full (origins not yet "
                        "full whose first full reading is observed):\n\n"
                        + backtest.format_ttf_table(ttf))
        for r in rows:
            for k in (*backtest.FILL_METHODS, "coverage"):
                report.metrics[f"h{r['h']}d/{k}/{'mae' if k != 'coverage' else 'value'}"] = float(
                    r[k])
        for r in ttf:
            report.metrics[f"time_to_full/{r['method']}/mae_days"] = r["mae_days"]
        report.seconds["backtest"] = time.perf_counter() - t
    t = time.perf_counter()
    own = fl.own_rates(fullness)
    samples = fl.build_samples(fullness, own)
    booster = fl.fit_fill_booster(samples)
    resid_q = fl.calibrate(samples)
    report.seconds["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    signature = TabularSignature.load(model_repository, FILL_MODEL_NAME)
    model = add_input_column(booster_to_onnx(booster, signature), 0)
    floor = float(np.mean(np.abs(samples.y)))
    report.parity = check_parity(booster, model, samples.x, floor=floor, base_column=0)
    report.seconds["export"] = time.perf_counter() - t
    for k, v in report.parity.to_json().items():
        report.metrics[f"parity/{k}"] = float(v)
    version = repository.next_version(model_repository, FILL_MODEL_NAME)
    report.params = {"lgb_params": fl.LGB_PARAMS, "num_boost_round": fl.NUM_BOOST_ROUND,
                     "max_horizon_days": fl.MAX_HORIZON_DAYS, "full_fraction": fl.FULL_FRACTION,
                     "target": "fill change from fill_now (graph adds fill_now back)"}
    metadata = {
        "model_name": FILL_MODEL_NAME, "version": version, "kind": "lightgbm_onnx",
        "created_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        "unit": "fill fraction 0..1 (1 = full; reading 8 of 7 m3, overflowing, maps to 1)",
        "signature": _signature(signature, "fill fraction"),
        "feature_names": list(fl.FEATURE_NAMES),
        "data": {"file": fl.FULLNESS_FILE, "sha256": report.data_sha256,
                 "rates_file": fl.RATES_FILE,
                 "rates_sha256": austin.file_sha256(Path(data_dir) / fl.RATES_FILE),
                 "first_day": str(fullness.index[0].date()),
                 "last_day": str(fullness.index[-1].date()),
                 "n_samples": int(len(samples.y))},
        "bin_rates": own, "study_rates": study,
        "residual_levels": list(fl.RESIDUAL_LEVELS),
        "horizon_buckets_days": list(fl.HORIZON_BUCKETS),
        "residual_quantiles": resid_q,
        "time_to_full": "constant rate from the predicted fill: fill_level.time_to_full_days",
        "params": report.params, "metrics": report.metrics, "backtest_table": report.table,
        "parity": report.parity.to_json(), "seconds": report.seconds,
        "libraries": _versions(),
    }
    vdir = repository.write_version(model_repository, FILL_MODEL_NAME, version, model, booster,
                                    metadata)
    report.version, report.path = version, vdir
    report.files = _file_hashes(vdir)
    report.seconds["total"] = time.perf_counter() - t0
    return report


def report_from_version(model_repository: Path, model_name: str, version: int) -> TrainReport:
    """A ``TrainReport`` rebuilt from a written version (``--skip-if-trained`` still registers
    and loads the version it found).

    Raises:
        NotFoundError: no such trained version.
    """
    meta = repository.load_metadata(model_repository, model_name, version)
    vdir = repository.version_dir(model_repository, model_name, version)
    parity = meta.get("parity", {})
    return TrainReport(
        model_name, version, vdir, meta.get("backtest_table", ""),
        {k: float(v) for k, v in meta.get("metrics", {}).items()},
        ParityReport(int(parity.get("n_rows", 0)), float(parity.get("max_abs_err", np.nan)),
                     float(parity.get("max_rel_err", np.nan)), float(parity.get("floor", np.nan))),
        {}, True, meta["data"]["sha256"], meta.get("params", {}), _file_hashes(vdir))


def register(report: TrainReport, database_url: str) -> list[str]:
    """Record a trained version (ONNX model and, for demand, its Prophet bundle) in the SQL
    model registry. Returns what was registered, as ``name vN`` strings.

    Raises:
        UnavailableError: the database cannot be reached.
    """
    from wasteml_server.adapters.storage import Database, ModelRegistry, migrate
    from wasteml_server.core.errors import AlreadyExistsError

    migrate(database_url)
    db = Database(database_url)
    if report.path is None:
        raise ValueError(f"{report.model_name}: nothing to register (no version was written)")
    signature = TabularSignature.load(report.path.parent.parent, report.model_name)
    done = []
    try:
        reg = ModelRegistry(db)
        entries = [(report.model_name, "onnx", {k: v for k, v in report.files.items()
                                               if k != PROPHET_FILE})]
        if PROPHET_FILE in report.files:
            entries.append((f"{report.model_name}_prophet", "prophet",
                            {PROPHET_FILE: report.files[PROPHET_FILE]}))
        metrics = {k: v for k, v in report.metrics.items() if np.isfinite(v)}
        for name, kind, files in entries:
            try:
                reg.register(name, kind, version=report.version, source_package="wasteml",
                             file_hashes=files,
                             export_settings={"onnx_input": signature.features,
                                              "onnx_output": signature.prediction,
                                              "parity_rtol": PARITY_RTOL},
                             metrics=metrics, training_data_hash=report.data_sha256,
                             parameters=report.params, artifact_path=str(report.path))
                done.append(f"{name} v{report.version}")
            except AlreadyExistsError:
                logger.warning("%s v%s is already registered", name, report.version)
    finally:
        db.dispose()
    return done
