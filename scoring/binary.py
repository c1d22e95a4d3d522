"""A LightGBM binary classifier (churn, promo abuse) with deciles, reasons and segments."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import lightgbm as lgb
import numpy as np

from scoring.artifacts import read_meta, write_meta
from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec
from scoring.trees import LeafAttribution


@dataclass
class BinaryScorer:
    kind: ClassVar[str] = "binary"
    columns: ClassVar[tuple[str, ...]] = ()
    per_feature: ClassVar[tuple[str, ...]] = ()
    arms: ClassVar[tuple[str, ...]] = ()  # one score, not one per campaign arm
    per_arm: ClassVar[tuple[str, ...]] = ()
    booster: lgb.Booster
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None  # None when the features carry no lifecycle/value columns

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature SHAP values in log-odds (LightGBM's own TreeSHAP), bias column dropped."""
        return self.booster.predict(X, pred_contrib=True, num_threads=1)[:, :-1]

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    @cached_property
    def paths(self) -> LeafAttribution:
        return LeafAttribution(self.booster)

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Probability and decision-path attributions (TreeSHAP's cheap stand-in) from one pass over the trees."""
        raw, contrib = self.paths.raw_and_contributions(X, threads)
        return 1.0 / (1.0 + np.exp(-raw)), contrib

    def score_one(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """`score_and_reasons` of one row (1-D), bit for bit, in the fewest numpy calls."""
        raw, contrib = self.paths.raw_and_contributions_one(x)
        return 1.0 / (1.0 + float(np.exp(-raw))), contrib  # numpy's exp, as the batch; + and / are IEEE alike

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {"booster": folder / "booster.txt"}
        self.booster.save_model(str(paths["booster"]))
        paths["meta"] = write_meta(folder, self.kind, self.spec, self.band_edges, self.segments)
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> BinaryScorer:
        meta, spec, grid = read_meta(artifacts)
        return cls(lgb.Booster(model_file=artifacts["booster"]), spec, meta["band_edges"], grid)
