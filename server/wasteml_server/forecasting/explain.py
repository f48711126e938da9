"""Top feature contributions of LightGBM predictions (SHAP values via ``pred_contrib``).

Computed in-process from the same booster that was exported to ONNX (``model.txt`` next to
``model.onnx`` in the version folder), never on Triton. LightGBM's ``pred_contrib=True`` returns
TreeSHAP values (Lundberg et al. 2020, "From local explanations to global understanding with
explainable AI for trees", Nature Machine Intelligence 2) ``[n, n_features + 1]`` whose row sums
equal the raw prediction; the last column is the expected value (bias).

Models that learn a residual over a base column (``GrainConfig.base_feature`` for demand,
``fill_now`` for fill level) serve ``base + booster``; the base column's value is added to that
column's contribution, so the contributions plus the bias still sum to the served prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from wasteml_server.core.errors import InvalidArgumentError

MAX_TOP_K = 32
"""Largest number of contributions returned per prediction."""


@dataclass(frozen=True)
class Contribution:
    """One feature's share of one prediction.

    Attributes:
        feature: feature name (as in the model's metadata ``feature_names``).
        value: the feature's value for this prediction, in its own unit.
        contribution: additive contribution in the output's unit (kg or fill fraction).
    """

    feature: str
    value: float
    contribution: float


def contributions(booster: lgb.Booster, features: np.ndarray,
                  base_column: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All contributions of each row.

    Args:
        booster: the served booster.
        features: float32 ``[n, n_features]`` rows (as sent to the ONNX model).
        base_column: column added to the booster output by the served graph, if any.

    Returns:
        ``(contrib float64 [n, n_features], bias float64 [n])``; ``contrib.sum(1) + bias``
        equals the served prediction.
    """
    x = np.asarray(features, dtype=np.float32).astype(np.float64)
    raw = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    contrib, bias = raw[:, :-1].copy(), raw[:, -1].copy()
    if base_column is not None:
        contrib[:, base_column] += x[:, base_column]
    return contrib, bias


def top_contributions(booster: lgb.Booster, features: np.ndarray, feature_names: list[str],
                      top_k: int, base_column: int | None = None,
                      ) -> list[tuple[Contribution, ...]]:
    """The ``top_k`` largest contributions (by absolute value) of each row.

    Args:
        booster: the served booster.
        features: float32 ``[n, n_features]``.
        feature_names: ``[n_features]`` names in column order.
        top_k: 1..``MAX_TOP_K``.
        base_column: see ``contributions``.

    Returns:
        One tuple per row, largest first.

    Raises:
        InvalidArgumentError: ``top_k`` out of range (field ``top_contributions``) or the
            feature count differs from the names (field ``features``).
    """
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgumentError("top_contributions", f"must be 1..{MAX_TOP_K}, got {top_k}")
    if features.shape[1] != len(feature_names):
        raise InvalidArgumentError("features", f"{features.shape[1]} columns for "
                                   f"{len(feature_names)} names")
    contrib, _ = contributions(booster, features, base_column)
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top_k]
    return [tuple(Contribution(feature_names[j], float(features[i, j]), float(contrib[i, j]))
                  for j in order[i]) for i in range(len(contrib))]
