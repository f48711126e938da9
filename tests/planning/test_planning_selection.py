"""Stage (c) of PlanDay: must-visit/optional choice and skip penalties."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.planning.selection import (
    DAY_S,
    BinDecision,
    Complaint,
    FillForecast,
    PlanPolicy,
    Selection,
    decide,
    fill_rate_per_s,
)

POLICY = PlanPolicy(must_visit_fill_fraction=0.8, overflow_penalty=100.0, base_skip_penalty=5.0)
COMPLAINT = Complaint("101000123", 0.62, 40.0, datetime(2021, 6, 14, tzinfo=UTC), "dumpster overflowing")


def _one(forecast: FillForecast, complaints=(), policy=POLICY) -> BinDecision:
    return decide(["b"], {"b": forecast}, {"b": list(complaints)}, policy)[0]


def test_fill_at_threshold_is_must_visit_without_penalty() -> None:
    """A forecast at the threshold makes the bin must-visit with penalty 0."""
    d = _one(FillForecast(0.8, 0.7, 0.9, 2 * DAY_S))
    assert d.selection is Selection.MUST_VISIT and d.over_fill_threshold and d.skip_penalty == 0.0


def test_complaint_makes_a_low_bin_must_visit_and_is_named() -> None:
    """A nearby complaint turns a bin the forecast would leave into must-visit, naming the case."""
    d = _one(FillForecast(0.3, 0.2, 0.4, 5 * DAY_S), [COMPLAINT])
    assert d.selection is Selection.MUST_VISIT and d.complaint_backed and not d.over_fill_threshold
    assert "101000123" in d.explanation


def test_complaint_policy_off_keeps_the_bin_optional() -> None:
    """With complaint_makes_must_visit off, a complaint leaves the bin optional but dearer to skip."""
    policy = PlanPolicy(complaint_makes_must_visit=False)
    d = _one(FillForecast(0.3, 0.2, 0.4, 5 * DAY_S), [COMPLAINT], policy)
    assert d.selection is Selection.OPTIONAL and d.complaint_backed
    assert d.skip_penalty == pytest.approx(policy.base_skip_penalty + policy.overflow_penalty)


def test_penalty_grows_with_predicted_overflow() -> None:
    """Optional bins closer to overflowing by tomorrow cost more to leave."""
    slow = _one(FillForecast(0.5, 0.4, 0.6, 10 * DAY_S))   # 0.55 tomorrow: no overflow
    fast = _one(FillForecast(0.7, 0.6, 0.8, 0.25 * DAY_S))  # full in 6 h: 1.9 tomorrow
    faster = _one(FillForecast(0.7, 0.6, 0.8, 0.1 * DAY_S))
    assert slow.skip_penalty == pytest.approx(5.0) and not slow.predicted_overflow
    assert fast.predicted_overflow and fast.fill_next == pytest.approx(0.7 + 0.3 * 4)
    assert fast.skip_penalty == pytest.approx(5.0 + 100.0 * (fast.fill_next - 1.0))
    assert faster.skip_penalty > fast.skip_penalty > slow.skip_penalty


def test_rate_without_time_to_full_uses_the_interval() -> None:
    """With no time to full inside the horizon, the rate comes from the upper bound."""
    f = FillForecast(0.2, 0.1, 0.5, None, horizon_s=10 * DAY_S)
    assert fill_rate_per_s(f) == pytest.approx(0.3 / (10 * DAY_S))


def test_missing_forecast_names_the_bin() -> None:
    """Every bin needs a forecast; the error names the bin's position."""
    with pytest.raises(InvalidArgumentError) as info:
        decide(["a", "b"], {"a": FillForecast(0.1, 0.0, 0.2, None)}, {}, POLICY)
    assert info.value.field == "bins[1]"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"must_visit_fill_fraction": 0.0}, "policy.must_visit_fill_fraction"),
        ({"overflow_penalty": -1.0}, "policy.overflow_penalty"),
        ({"complaint_radius_m": 0.0}, "policy.complaint_radius_m"),
        ({"complaint_query": "  "}, "policy.complaint_query"),
    ],
)
def test_bad_policy_names_the_field(kwargs: dict, field: str) -> None:
    """Out-of-range policy values raise InvalidArgumentError naming the field under "policy"."""
    with pytest.raises(InvalidArgumentError) as info, under("policy"):
        PlanPolicy(**kwargs)
    assert info.value.field == field
