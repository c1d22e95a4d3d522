"""What every served model offers: the Scorer protocol, and the numbers an answer is made of
(deciles, rounding, top reasons)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec
from scoring.thresholds import SORT_REASONS_ROWS

TOP_REASONS = 3


class Scorer(Protocol):
    """A fitted model on the float matrix of its FeatureSpec (the service's numpy hot path).

    `predict` gives the headline score (a probability, the uplift, or the PD); `contributions` the
    exact per-feature attributions MLflow's model reports (TreeSHAP, lost points), positive pushing
    the score up; `score_and_reasons` the score with the attributions the service sends, in one
    pass; `score_one` the same for one 1-D row, bit for bit; `extras` the model's own fields:
    `columns` of one value per row (P(treated), score points), `per_feature` of one value per
    feature (points), `per_arm` of one value per arm of `arms` (uplift; empty for single-score models)
    and then `best_arm`, the chosen arm's index (-1: none).
    """

    kind: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    per_feature: ClassVar[tuple[str, ...]]
    arms: tuple[str, ...]
    per_arm: tuple[str, ...]
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]: ...

    def score_one(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]: ...

    def save(self, folder: Path) -> dict[str, Path]: ...

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> Scorer: ...


def one_of_batch(scorer: Scorer, x: np.ndarray) -> tuple[float, np.ndarray]:
    """`score_one` as a batch of one row: for scorers whose batch path is already cheap on one row."""
    score, contrib = scorer.score_and_reasons(x[None, :])
    return float(score[0]), contrib[0]


def decile_edges(scores: np.ndarray) -> list[float]:
    return [float(x) for x in np.quantile(scores, np.linspace(0.1, 0.9, 9))]


def round_to(x: np.ndarray, decimals: int) -> np.ndarray:
    """np.round(x, decimals) bit for bit (numpy rounds by this multiply, rint, divide), without
    its dispatch, which costs ~5 µs: most of the time on a single user's handful of values."""
    scale = 10.0**decimals
    y = np.multiply(x, scale, dtype=np.float64)
    np.rint(y, out=y)
    y /= scale
    return y


def round6(x: float) -> float:
    """round_to(x, 6) on one value, bit for bit: Python's round() is rint's half-to-even, but
    returns an int, which loses the sign of a negative value rounded to zero."""
    r = round(x * 1e6) / 1e6
    return r if r else math.copysign(0.0, x)


def band_edges(edges: list[float]) -> np.ndarray:
    """Decile edges as `bands` compares them (rounded: see there); precompute for repeated calls."""
    return round_to(np.asarray(edges, dtype=np.float64), 9)


def bands(scores: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Decile 1 (lowest score) to 10 (highest), against the training distribution.

    Scores are rounded first: edges are training scores themselves (LightGBM's predict), and the
    service's sigmoid of the same raw score (numpy's exp, not LightGBM's) may differ in the last bit.
    An ndarray of edges is taken as already prepared by `band_edges`.
    """
    edges = edges if isinstance(edges, np.ndarray) else band_edges(edges)
    return 1 + np.searchsorted(edges, round_to(scores, 9), side="right")


def top_reasons(contrib: np.ndarray, k: int = TOP_REASONS) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k contributions that push each score up the most, largest first
    (ties: the lower column first). Both routes (see SORT_REASONS_ROWS) break ties alike."""
    k = min(k, contrib.shape[1])
    rows = np.arange(len(contrib))
    if len(contrib) <= SORT_REASONS_ROWS:
        idx = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        return idx, contrib[rows[:, None], idx]
    work = contrib.copy()
    idx = np.empty((len(work), k), dtype=np.int64)
    vals = np.empty((len(work), k), dtype=contrib.dtype)
    for r in range(k):
        best = work.argmax(axis=1)
        idx[:, r], vals[:, r] = best, work[rows, best]
        work[rows, best] = -np.inf
    return idx, vals


def top_reasons_one(contrib: list[float], k: int) -> list[int]:
    """`top_reasons` of one row in plain Python: a stable sort, descending, ties lower column first."""
    return sorted(range(len(contrib)), key=contrib.__getitem__, reverse=True)[:k]
