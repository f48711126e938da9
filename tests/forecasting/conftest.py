"""Fixtures of the forecasting tests: the real data files and small models trained on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from wasteml_server.forecasting import austin
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import GRAINS, fit_booster
from wasteml_server.forecasting.features import DemandFeatureSpec, select_collection_holidays

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory (../shared/data)."""
    if not (DATA_DIR / austin.AUSTIN_FILE).is_file():
        pytest.skip(f"real data not found under {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def austin_df(data_dir: Path):
    """The Austin file, loaded (kg, outliers summed, cut at 2021-07-04)."""
    return austin.load_austin(data_dir)


@pytest.fixture(scope="session")
def daily(austin_df) -> austin.SeriesSet:
    """City-daily kg per service line."""
    return austin.city_daily(austin_df)


@pytest.fixture(scope="session")
def weekly(austin_df) -> austin.SeriesSet:
    """Weekly kg per active garbage route."""
    return austin.route_weekly(austin_df)


@pytest.fixture(scope="session")
def holiday_names(daily) -> tuple[str, ...]:
    """Collection holidays selected from the daily garbage series."""
    return select_collection_holidays(daily.series("daily:garbage"))


@pytest.fixture(scope="session")
def small_daily(daily, holiday_names):
    """A small daily model (80 rounds) on data up to 2021-05-09: (spec, config, booster)."""
    spec = DemandFeatureSpec("daily", daily.series_ids, holiday_names)
    config = dataclasses.replace(GRAINS["daily"], num_boost_round=80)
    return spec, config, fit_booster(daily.until(pd.Timestamp("2021-05-09")), spec, config)


@pytest.fixture(scope="session")
def small_weekly(weekly, holiday_names):
    """A small weekly per-route model (60 rounds, route id categorical): (spec, config, booster)."""
    spec = DemandFeatureSpec("weekly", weekly.series_ids, holiday_names)
    config = dataclasses.replace(GRAINS["weekly"], num_boost_round=60)
    return spec, config, fit_booster(weekly, spec, config)


@pytest.fixture(scope="session")
def fullness(data_dir: Path):
    """Blantyre daily fill fractions per skip."""
    return fl.load_fullness(data_dir)
