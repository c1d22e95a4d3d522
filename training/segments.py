"""Lifecycle × value segments (a 6×5 RFM-style grid) computed from snapshot features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LIFECYCLE = ("new", "active", "silent_7_21", "silent_22_90", "silent_91_360", "silent_360_plus")
VALUE_BANDS = 5
# Lifecycle reads recency and tenure; value reads money put to work in the app.
SEGMENT_COLUMNS = ("tenure_days", "days_since_last_active", "fund_amt_all")


def lifecycle(tenure_days: np.ndarray, days_silent: np.ndarray) -> np.ndarray:
    stage = np.select(
        [tenure_days < 30, days_silent < 7, days_silent <= 21, days_silent <= 90, days_silent <= 360],
        [0, 1, 2, 3, 4],
        default=5,
    )
    return np.asarray(LIFECYCLE, dtype=object)[stage]


@dataclass
class SegmentGrid:
    value_edges: list[float]

    @classmethod
    def fit(cls, features: pd.DataFrame) -> SegmentGrid:
        value = features["fund_amt_all"].to_numpy(dtype=float)
        positive = value[value > 0]
        edges = np.quantile(positive, np.linspace(0, 1, VALUE_BANDS)[1:-1]) if len(positive) else np.zeros(VALUE_BANDS - 2)
        return cls(value_edges=[0.0, *map(float, edges)])

    def assign(self, tenure_days: np.ndarray, days_silent: np.ndarray, value: np.ndarray) -> np.ndarray:
        band = 1 + np.searchsorted(self.value_edges, np.nan_to_num(value), side="left")
        band = np.clip(band, 1, VALUE_BANDS)
        stage = lifecycle(np.nan_to_num(tenure_days), np.nan_to_num(days_silent))
        return np.char.add(np.char.add(stage.astype(str), "/V"), band.astype(str)).astype(object)
