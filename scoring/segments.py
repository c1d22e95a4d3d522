"""Lifecycle × value segments (a 6×5 RFM-style grid) computed from snapshot features."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import pandas as pd

LIFECYCLE = ("new", "active", "silent_7_21", "silent_22_90", "silent_91_360", "silent_360_plus")
VALUE_BANDS = 5
# Lifecycle reads recency and tenure; value reads money put to work in the app.
SEGMENT_COLUMNS = ("tenure_days", "days_since_last_active", "fund_amt_all")
LIFECYCLE_COLUMNS = SEGMENT_COLUMNS[:2]


# Labels of the grid, e.g. "silent_7_21/V4": value band V1 (no value) to V5 (top quartile of value).
GRID = np.array([[f"{stage}/V{v + 1}" for v in range(VALUE_BANDS)] for stage in LIFECYCLE], dtype=object)
# The grid's labels in cell order: a cell number (stage × VALUE_BANDS + band) indexes it.
CELLS = GRID.ravel()


# Silence (days) above which each later stage starts: 7 or more, over 21, over 90, over 360.
_SILENCE_EDGES = np.array([np.nextafter(7.0, -np.inf), 21.0, 90.0, 360.0])


def stage_index(tenure_days: np.ndarray, days_silent: np.ndarray) -> np.ndarray:
    """0 new (or tenure unknown), 1 active (< 7 days silent), 2 silent 7-21, 3 22-90, 4 91-360, 5 beyond.

    One searchsorted rather than np.select or a chain of comparisons: the service calls this for
    single users, where numpy's per-call overhead is the whole cost. fmax turns unknown silence
    into 0 days (active), as silence is never negative.
    """
    stage = 1 + np.searchsorted(_SILENCE_EDGES, np.fmax(days_silent, 0.0), side="left")
    return np.where(tenure_days >= 30, stage, 0)


_SILENCE_EDGES_LIST = _SILENCE_EDGES.tolist()


@dataclass
class SegmentGrid:
    value_edges: list[float]

    @classmethod
    def fit(cls, features: pd.DataFrame) -> SegmentGrid:
        value = features["fund_amt_all"].to_numpy(dtype=float)
        positive = value[value > 0]
        edges = np.quantile(positive, np.linspace(0, 1, VALUE_BANDS)[1:-1]) if len(positive) else np.zeros(VALUE_BANDS - 2)
        return cls(value_edges=[0.0, *map(float, edges)])

    def __post_init__(self) -> None:
        self._edges = np.asarray(self.value_edges, dtype=float)
        self._edge_list = self._edges.tolist()

    def assign(self, tenure_days: np.ndarray, days_silent: np.ndarray, value: np.ndarray) -> np.ndarray:
        return CELLS[self.cell(tenure_days, days_silent, value)]

    def cell(self, tenure_days: np.ndarray, days_silent: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Each user's cell of the grid (into CELLS), a byte each: a whole base's labels would be 72."""
        # fmax: no value recorded (NaN) lands in the lowest band, as 0 or any non-positive value does.
        band = np.minimum(np.searchsorted(self._edges, np.fmax(value, 0.0), side="left"), VALUE_BANDS - 1)
        return (stage_index(tenure_days, days_silent) * VALUE_BANDS + band).astype(np.int8)

    def label(self, tenure_days: float, days_silent: float, value: float) -> str:
        """`assign` for one user, in plain Python on the same edges (a test holds them equal):
        on a single user, numpy's per-call overhead is most of the cost."""
        if not tenure_days >= 30:  # also when unknown (NaN)
            stage = 0
        else:
            stage = 1 + bisect_left(_SILENCE_EDGES_LIST, days_silent if days_silent > 0 else 0.0)
        band = min(bisect_left(self._edge_list, value if value > 0 else 0.0), VALUE_BANDS - 1)
        return GRID[stage, band]


def grid_columns(names: list[str]) -> tuple[int, int, int] | None:
    """Where the grid's inputs sit among a model's features; None when it lacks one of them."""
    if not all(c in names for c in SEGMENT_COLUMNS):
        return None
    tenure, silent, value = (names.index(c) for c in SEGMENT_COLUMNS)
    return tenure, silent, value


def grid_for(names: list[str], features: pd.DataFrame) -> SegmentGrid | None:
    """The grid fitted on training features, for a model that has the grid's inputs."""
    return SegmentGrid.fit(features) if grid_columns(names) is not None else None
