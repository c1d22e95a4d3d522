"""Marketing response as uplift: P(convert | treated) − P(convert | control), with per-feature reasons.

A learner's uplift is offset + Σ weight × booster output; the "control" booster gives P(convert | control).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import lightgbm as lgb
import numpy as np

from scoring.artifacts import read_meta, write_meta
from scoring.scorer import one_of_batch
from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec
from scoring.trees import LeafAttribution

# The campaign columns of an uplift model: the service fills them per request.
OFFER = ("incentive", "channel", "send_hour")
# The offer a request that names none is scored for; drift monitoring scores uplift for it too.
DEFAULT_OFFER = {"incentive": "red_packet", "channel": "push", "send_hour": 10}


@dataclass
class UpliftScorer:
    kind: ClassVar[str] = "uplift"
    columns: ClassVar[tuple[str, ...]] = ("p_treated", "p_control")
    per_feature: ClassVar[tuple[str, ...]] = ()
    learner: str
    boosters: dict[str, lgb.Booster]  # always "control"; the rest as the learner needs
    weights: dict[str, float]
    offset: float
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None

    def _probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = {name: b.predict(X, num_threads=1) for name, b in self.boosters.items()}
        lift = self.offset + sum(w * out[name] for name, w in self.weights.items())
        return np.clip(out["control"] + lift, 0.0, 1.0), out["control"]

    def predict(self, X: np.ndarray) -> np.ndarray:
        p_treated, p_control = self._probabilities(X)
        return p_treated - p_control

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        p_treated, p_control = self._probabilities(X)
        return {"p_treated": p_treated, "p_control": p_control}

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Weighted TreeSHAP of the uplift's boosters (each in its raw units: log-odds for classifiers),
        bias dropped; positive raises the uplift."""
        return sum(w * self.boosters[name].predict(X, pred_contrib=True, num_threads=1)[:, :-1]
                   for name, w in self.weights.items())

    @cached_property
    def _paths(self) -> dict[str, LeafAttribution]:
        return {name: LeafAttribution(self.boosters[name]) for name in self.weights}

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The uplift, and the same weighting over decision-path attributions (TreeSHAP's cheap stand-in)."""
        return self.predict(X), sum(w * self._paths[name](X) for name, w in self.weights.items())

    def score_one(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return one_of_batch(self, x)

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {}
        for name, b in self.boosters.items():
            paths[f"booster_{name}"] = folder / f"{name}.txt"
            b.save_model(str(paths[f"booster_{name}"]))
        paths["meta"] = write_meta(folder, self.kind, self.spec, self.band_edges, self.segments, learner=self.learner,
                                   boosters=sorted(self.boosters), weights=self.weights, offset=self.offset)
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> UpliftScorer:
        meta, spec, grid = read_meta(artifacts)
        boosters = {name: lgb.Booster(model_file=artifacts[f"booster_{name}"]) for name in meta["boosters"]}
        return cls(meta["learner"], boosters, meta["weights"], meta["offset"], spec, meta["band_edges"], grid)
