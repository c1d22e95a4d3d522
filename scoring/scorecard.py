"""The behaviour scorecard as it scores: WOE bins, logistic-regression weights and PDO scaling.

Risk engines want what a scorecard gives: points per attribute that add up to the score, a PD,
and reason codes (the features that cost the applicant the most points). Bins are stored as plain
numbers (edges, per-category WOE) and applied in numpy on the service's float matrix, so the
artifacts are JSON, never pickles. Fitting lives in `training.fit.scorecard`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from scoring.artifacts import read_meta, write_meta
from scoring.scorer import one_of_batch
from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec

# PDO scaling: 600 points at good:bad odds of 50:1, 20 more points for each doubling of the odds.
BASE_POINTS, BASE_ODDS, PDO = 600.0, 50.0, 20.0


@dataclass
class Characteristic:
    """One feature of the card as the float matrix sees it.

    Numeric: level i holds edges[i-1] <= x < edges[i]. Categorical: the level is the category
    code (the index in spec.categorical[name]). `woe` is per level, ln(%good / %bad): positive
    means safer than average. NaN (missing, or a category unseen in training) takes `missing_woe`.
    """

    name: str
    column: int
    categorical: bool
    edges: list[float]
    woe: list[float]
    missing_woe: float
    iv: float
    coef: float = 0.0

    def transform(self, x: np.ndarray) -> np.ndarray:
        """WOE of each value of this feature's matrix column."""
        if self.categorical:
            missing = ~((x >= 0) & (x < len(self.woe)))  # NaN, and codes no category has
            level = np.where(missing, 0, x).astype(np.int64)
        else:
            missing = np.isnan(x)
            level = np.searchsorted(np.asarray(self.edges), x, side="right")
        return np.where(missing, self.missing_woe, np.asarray(self.woe)[level])

    def labels(self, spec: FeatureSpec) -> list[str]:
        """Readable attribute names, one per level, then "missing"."""
        if self.categorical:
            return [*spec.categorical[self.name], "missing"]
        bounds = [-np.inf, *self.edges, np.inf]
        return [f"[{lo:.4g}, {hi:.4g})" for lo, hi in zip(bounds[:-1], bounds[1:])] + ["missing"]


@dataclass(frozen=True)
class PointsTable:
    """The card compiled for the serving hot path: every feature's level found at once.

    A loop over features costs ~13 µs of Python per feature per call, 0.5 ms for a single user;
    here the edges are padded into one matrix (with NaN, which no value is >=), and categorical
    codes get edges 0.5, 1.5, ... so that their level is the code itself.
    """

    columns: np.ndarray  # k matrix columns of the card's features
    edges: np.ndarray  # k × e
    low: np.ndarray  # k: values outside [low, high] go to the missing bin (codes no category has)
    high: np.ndarray
    points: np.ndarray  # k × (e + 2): points per level; the last column is the missing bin

    @classmethod
    def compile(cls, card: ScorecardScorer) -> PointsTable:
        cs = card.characteristics
        edges = [[i + 0.5 for i in range(len(c.woe) - 1)] if c.categorical else c.edges for c in cs]
        width = max(len(e) for e in edges)
        points = np.full((len(cs), width + 2), -np.inf)  # padding is never looked up
        for j, c in enumerate(cs):
            points[j, : len(c.woe)] = card.attribute_points(c, np.asarray(c.woe))
            points[j, -1] = card.attribute_points(c, np.asarray(c.missing_woe))
        return cls(
            columns=np.array([c.column for c in cs]),
            edges=np.array([[*e, *[np.nan] * (width - len(e))] for e in edges]).reshape(len(cs), width),
            low=np.array([0.0 if c.categorical else -np.inf for c in cs]),
            high=np.array([len(c.woe) - 1.0 if c.categorical else np.inf for c in cs]),
            points=points,
        )

    @property
    def best(self) -> np.ndarray:
        return self.points.max(axis=1)

    def lookup(self, X: np.ndarray) -> np.ndarray:
        """Points of each card feature (n × k)."""
        V = X[:, self.columns]
        level = np.zeros(V.shape, dtype=np.intp)
        for i in range(self.edges.shape[1]):  # a handful of edges: cheaper than a 3-D comparison
            level += V >= self.edges[:, i]
        level[np.isnan(V) | (V < self.low) | (V > self.high)] = self.points.shape[1] - 1
        return self.points[np.arange(len(self.columns)), level]


@dataclass
class ScorecardScorer:
    """WOE bins, logistic-regression weights and PDO scaling; points per feature add up to the score.

    The intercept (with the scaling offset) is spread evenly over the card's features, so each
    feature's points are the familiar attribute points and their sum is the score. Higher score
    means lower risk; PD is read back from the score, so the two always agree.
    """

    kind: ClassVar[str] = "scorecard"
    columns: ClassVar[tuple[str, ...]] = ("score_points",)
    per_feature: ClassVar[tuple[str, ...]] = ("points",)
    arms: ClassVar[tuple[str, ...]] = ()  # one score, not one per campaign arm
    per_arm: ClassVar[tuple[str, ...]] = ()
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None
    characteristics: list[Characteristic]
    intercept: float
    base_points: float = BASE_POINTS
    base_odds: float = BASE_ODDS
    pdo: float = PDO
    rejected: dict[str, str] = field(default_factory=dict)  # feature → why it is not in the card

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    @property
    def base_share(self) -> float:
        """Each feature's share of the offset and intercept."""
        return (self.offset - self.factor * self.intercept) / len(self.characteristics)

    def attribute_points(self, c: Characteristic, woe: np.ndarray) -> np.ndarray:
        # ln(good:bad odds) = -(intercept + Σ coef·woe), so a feature adds -factor·coef·woe.
        return -self.factor * c.coef * woe + self.base_share

    def points(self, X: np.ndarray) -> np.ndarray:
        """Points per feature (n × len(spec.names)); zero for features not in the card."""
        out = np.zeros((len(X), len(self.spec.names)))
        out[:, self._table.columns] = self._table.lookup(X)
        return out

    @cached_property
    def _table(self) -> PointsTable:
        return PointsTable.compile(self)

    def score_points(self, X: np.ndarray) -> np.ndarray:
        return self.points(X).sum(axis=1)

    def pd_from_points(self, score: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp((score - self.offset) / self.factor))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pd_from_points(self.score_points(X))

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        points = self.points(X)
        return {"score_points": points.sum(axis=1), "points": points}

    def best_points(self) -> np.ndarray:
        """The most points each feature can give (over its bins and the missing bin); 0 off the card."""
        best = np.zeros(len(self.spec.names))
        best[self._table.columns] = self._table.best
        return best

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Points lost per feature against its best bin: the reason codes (positive = raised risk)."""
        # Features off the card have best 0 and points 0, so they lose nothing.
        return self.best_points() - self.points(X)

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The PD and the lost points: the card's own attributions are cheap, so the service sends them."""
        return self.predict(X), self.contributions(X)

    def score_one(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return one_of_batch(self, x)

    def card(self) -> dict:
        return {"base_points": self.base_points, "base_odds": self.base_odds, "pdo": self.pdo,
                "intercept": self.intercept, "characteristics": [asdict(c) for c in self.characteristics],
                "rejected": self.rejected}

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {"card": folder / "card.json"}
        paths["card"].write_text(json.dumps(self.card(), indent=1))
        paths["meta"] = write_meta(folder, self.kind, self.spec, self.band_edges, self.segments)
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> ScorecardScorer:
        meta, spec, grid = read_meta(artifacts)
        card = json.loads(Path(artifacts["card"]).read_text())
        chars = [Characteristic(**c) for c in card.pop("characteristics")]
        return cls(spec, meta["band_edges"], grid, chars, **card)
