"""The Austin loader and series grains on the real file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wasteml_server.forecasting import austin


def test_pounds_to_kg_and_outliers_summed(data_dir, austin_df) -> None:
    """A day's route total equals the raw pounds of all its rows (normal + outlier) x 0.45359237."""
    raw = pd.read_csv(data_dir / austin.AUSTIN_FILE)
    flagged = raw[raw["outlier"] == "outlier"].iloc[0]
    rows = raw[(raw["date"] == flagged["date"]) & (raw["Route.Number"] == flagged["Route.Number"])
               & (raw["Load.Type"] == flagged["Load.Type"])]
    got = austin_df[(austin_df["date"] == pd.Timestamp(flagged["date"]))
                    & (austin_df["route"] == flagged["Route.Number"])
                    & (austin_df["load_type"] == flagged["Load.Type"])]["weight_kg"]
    assert len(got) == 1
    assert got.iloc[0] == pytest.approx(rows["daily_weight"].sum() * 0.45359237)


def test_cut_at_last_complete_day(austin_df, daily) -> None:
    """No row after 2021-07-04; the daily index runs to that Sunday."""
    assert austin_df["date"].max() <= pd.Timestamp("2021-07-04")
    assert daily.index[-1] == pd.Timestamp("2021-07-04")
    assert (np.diff(daily.index.values).astype("timedelta64[D]").astype(int) == 1).all()


def test_daily_levels_match_readme(daily) -> None:
    """Weekday garbage is about 420-650 t/day and recycling 150-290 t/day (data README) in the
    holdout window, and Sundays are about zero."""
    hold = daily.until(pd.Timestamp("2021-07-04"))
    idx = hold.index
    wk = (idx >= "2021-05-10") & (idx.day_of_week < 5)
    garbage_t = hold.series("daily:garbage")[wk] / 1000
    recycling_t = hold.series("daily:recycling")[wk] / 1000
    assert 300 < garbage_t.median() < 700
    assert 100 < recycling_t.median() < 320
    assert hold.series("daily:garbage")[idx.day_of_week == 6].median() < 1000


def test_weekly_routes_selection(weekly) -> None:
    """140 garbage routes are active in >= 95 % of weeks 2019-07..2021-07 (data README)."""
    assert len(weekly.series_ids) == 140
    assert weekly.index[-1] == pd.Timestamp("2021-07-04")
    assert (weekly.index.day_of_week == 6).all()
    recent = weekly.values[:, weekly.index >= "2019-07-07"]
    assert ((recent > 0).mean(axis=1) >= 0.95).all()


def test_unknown_series_is_refused(daily) -> None:
    """Asking for a series that does not exist raises InvalidArgumentError on series_id."""
    with pytest.raises(ValueError) as err:
        daily.series("daily:compost")
    assert err.value.field == "series_id"
