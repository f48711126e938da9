"""Austin (TX) daily collection data: loading and the two demand series grains.

Source: ``collection/austin_waste_collection_daily_by_route_2016_2021.csv`` under
``settings.data_dir`` (City of Austin "Waste Collection & Diversion Report", daily aggregation by
the World Data League 2022 team; see the data README, section 2). One row per date x load type x
route type x drop-off site x route x outlier flag; ``daily_weight`` is in **pounds**.

What this module does, following the README's caveats:

* sums the ``normal`` and ``outlier`` rows (the flag is a third party's, totals need both);
* converts pounds to kilograms (1 lb = 0.45359237 kg exactly, the international avoirdupois pound);
* cuts the data at ``LAST_COMPLETE_DAY`` = 2021-07-04 (later days are incompletely reported);
* builds two grains:
  - city-daily kilograms per service line (``daily:garbage``, ``daily:recycling``), every calendar
    day present (missing days are 0: nothing was collected);
  - weekly kilograms per garbage route (``weekly:<route>``), weeks ending Sunday (``W-SUN``),
    for routes with tonnage in >= 95 % of the weeks 2019-07-01 .. 2021-07-04 (the README counts
    140 such routes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wasteml_server.core.errors import InvalidArgumentError

AUSTIN_FILE = "collection/austin_waste_collection_daily_by_route_2016_2021.csv"
"""Path of the Austin file relative to ``settings.data_dir``."""

KG_PER_LB = 0.45359237
"""Kilograms per pound (exact by the 1959 international yard and pound agreement)."""

LAST_COMPLETE_DAY = pd.Timestamp("2021-07-04")
"""Last fully reported day (data README: from about 2021-07-05 the data are incomplete)."""

SERVICE_LINES: dict[str, str] = {
    "garbage": "GARBAGE COLLECTIONS",
    "recycling": "RECYCLING - SINGLE STREAM",
}
"""Service line name -> ``Load.Type`` value in the Austin file."""

ROUTE_ACTIVITY_START = pd.Timestamp("2019-07-01")
"""Start of the window in which a route must be active to get a weekly series (README: 2019-07)."""

ROUTE_MIN_ACTIVE_SHARE = 0.95
"""A route needs tonnage in at least this share of the weeks of the activity window."""

DAILY_PREFIX = "daily:"
WEEKLY_PREFIX = "weekly:"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (recorded in model metadata as the data version)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_austin(data_dir: Path) -> pd.DataFrame:
    """Read the Austin file, sum outlier rows, convert to kilograms, cut at 2021-07-04.

    Args:
        data_dir: ``settings.data_dir`` (holds ``collection/austin_...csv``).

    Returns:
        DataFrame with columns ``date`` (datetime64, day), ``load_type`` (str), ``route`` (str),
        ``weight_kg`` (float64, kilograms), one row per date x load type x route.

    Raises:
        InvalidArgumentError: the file does not exist (field ``data_dir``).
    """
    path = Path(data_dir) / AUSTIN_FILE
    if not path.is_file():
        raise InvalidArgumentError("data_dir", f"Austin collection file not found at {path}")
    raw = pd.read_csv(
        path,
        usecols=["date", "Load.Type", "Route.Number", "daily_weight"],
        dtype={"Load.Type": str, "Route.Number": str, "daily_weight": np.float64},
        parse_dates=["date"],
    )
    raw = raw[raw["date"] <= LAST_COMPLETE_DAY]
    df = (
        raw.groupby(["date", "Load.Type", "Route.Number"], as_index=False)["daily_weight"]
        .sum()
        .rename(columns={"Load.Type": "load_type", "Route.Number": "route"})
    )
    df["weight_kg"] = df.pop("daily_weight") * KG_PER_LB
    return df


@dataclass(frozen=True)
class SeriesSet:
    """Several aligned series of one grain.

    Attributes:
        grain: ``"daily"`` or ``"weekly"``.
        index: ``DatetimeIndex`` ``[T]`` of period end days (days, or Sundays ending the week).
        values: float64 ``[S, T]`` kilograms per period; row ``s`` belongs to ``series_ids[s]``.
        series_ids: ``[S]`` ids such as ``"daily:garbage"`` or ``"weekly:PAM03"``.
    """

    grain: str
    index: pd.DatetimeIndex
    values: np.ndarray
    series_ids: tuple[str, ...]

    def series(self, series_id: str) -> pd.Series:
        """One series as a pandas Series in kilograms.

        Raises:
            InvalidArgumentError: unknown ``series_id``.
        """
        try:
            s = self.series_ids.index(series_id)
        except ValueError:
            raise InvalidArgumentError("series_id", f"unknown series {series_id!r}") from None
        return pd.Series(self.values[s], index=self.index, name=series_id)

    def until(self, last: pd.Timestamp) -> SeriesSet:
        """The same series cut at ``last`` (inclusive): the training part for a backtest origin."""
        keep = self.index <= last
        return SeriesSet(self.grain, self.index[keep], self.values[:, keep], self.series_ids)


def city_daily(df: pd.DataFrame) -> SeriesSet:
    """City-wide kilograms per calendar day for each service line in ``SERVICE_LINES``.

    Args:
        df: output of ``load_austin``.

    Returns:
        ``SeriesSet`` with grain ``"daily"``, ids ``daily:garbage`` and ``daily:recycling``, every
        day from the first to the last date of ``df`` (days without rows are 0 kg).
    """
    last = df["date"].max()
    if LAST_COMPLETE_DAY - pd.Timedelta(days=7) < last < LAST_COMPLETE_DAY:
        last = LAST_COMPLETE_DAY  # the file has no rows for the (empty) last Sunday
    index = pd.date_range(df["date"].min(), last, freq="D")
    rows = []
    for load_type in SERVICE_LINES.values():
        s = df[df["load_type"] == load_type].groupby("date")["weight_kg"].sum()
        rows.append(s.reindex(index, fill_value=0.0).to_numpy(np.float64))
    ids = tuple(DAILY_PREFIX + line for line in SERVICE_LINES)
    return SeriesSet("daily", index, np.vstack(rows), ids)


def route_weekly(df: pd.DataFrame, load_type: str = SERVICE_LINES["garbage"]) -> SeriesSet:
    """Weekly kilograms per route (weeks ending Sunday) for routes active >= 95 % of recent weeks.

    A route is kept when it has tonnage in at least ``ROUTE_MIN_ACTIVE_SHARE`` of the complete
    weeks from ``ROUTE_ACTIVITY_START`` to ``LAST_COMPLETE_DAY`` (the data README's selection,
    which gives 140 garbage routes). Weeks before a route's first load are 0 kg.

    Args:
        df: output of ``load_austin``.
        load_type: the ``Load.Type`` to aggregate (garbage by default, as the README).

    Returns:
        ``SeriesSet`` with grain ``"weekly"``, ids ``weekly:<route>`` sorted by route code.
    """
    sub = df[df["load_type"] == load_type]
    week_end = sub["date"] + pd.to_timedelta((6 - sub["date"].dt.day_of_week) % 7, unit="D")
    wk = sub.assign(week=week_end).groupby(["route", "week"])["weight_kg"].sum().unstack(0)
    first_week = df["date"].min() + pd.Timedelta(days=(6 - df["date"].min().day_of_week) % 7)
    index = pd.date_range(first_week, LAST_COMPLETE_DAY, freq="W-SUN")
    wk = wk.reindex(index).fillna(0.0)
    window = wk[(wk.index - pd.Timedelta(days=6)) >= ROUTE_ACTIVITY_START]
    active = (window > 0).mean(axis=0) >= ROUTE_MIN_ACTIVE_SHARE
    routes = sorted(active[active].index)
    values = wk[routes].to_numpy(np.float64).T
    return SeriesSet("weekly", index, values, tuple(WEEKLY_PREFIX + r for r in routes))
