"""Metrics on small hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting.metrics import coverage, mae, mase, seasonal_naive_scale, wape


def test_wape_hand_checked() -> None:
    """WAPE = sum|e| / sum|y|: errors 1, 2, 3 over actuals 10, 20, 30 give 6/60 = 0.1."""
    assert wape([10, 20, 30], [11, 18, 33]) == pytest.approx(0.1)


def test_wape_rejects_all_zero_actuals() -> None:
    """WAPE is undefined when every actual is zero and says which field is at fault."""
    with pytest.raises(InvalidArgumentError) as err:
        wape([0, 0], [1, 2])
    assert err.value.field == "y_true"


def test_mase_scale_is_seasonal_naive_mae() -> None:
    """The MASE scale is the in-sample lag-m MAE: series 1,2,3,5 at lag 1 -> (1+1+2)/3."""
    assert seasonal_naive_scale([1, 2, 3, 5], 1) == pytest.approx(4 / 3)
    # lag 2: |3-1| and |5-2| -> 2.5
    assert seasonal_naive_scale([1, 2, 3, 5], 2) == pytest.approx(2.5)


def test_mase_hand_checked() -> None:
    """MASE = MAE / scale: MAE 1 over a lag-1 scale of 4/3 gives 0.75."""
    assert mase([6, 7], [5, 8], [1, 2, 3, 5], 1) == pytest.approx(0.75)


def test_mase_of_seasonal_naive_in_sample_is_one() -> None:
    """The seasonal-naive forecast scored on its own training series has MASE exactly 1."""
    y = np.array([3.0, 5, 4, 6, 8, 7, 9, 12])
    assert mase(y[2:], y[:-2], y, 2) == pytest.approx(1.0)


def test_mase_rejects_constant_series_and_bad_season() -> None:
    """A constant training series (scale 0) and a season < 1 are refused."""
    with pytest.raises(InvalidArgumentError):
        seasonal_naive_scale([2, 2, 2], 1)
    with pytest.raises(InvalidArgumentError) as err:
        seasonal_naive_scale([1, 2, 3], 0)
    assert err.value.field == "season"


def test_mae_shape_mismatch() -> None:
    """Predictions of another shape than the actuals are rejected naming y_pred."""
    with pytest.raises(InvalidArgumentError) as err:
        mae([1, 2, 3], [1, 2])
    assert err.value.field == "y_pred"


def test_coverage_counts_inclusive_bounds() -> None:
    """Coverage counts actuals on the bounds as inside: 3 of 4 inside."""
    assert coverage([1, 2, 3, 10], [1, 1, 1, 1], [3, 3, 3, 3]) == pytest.approx(0.75)
