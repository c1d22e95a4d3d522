"""The feature ceiling: what the best learner could get out of a model's own features.

A LightGBM is fitted on the model's training rows and features, not to the noisy label but to the
simulator's *true* probability (cross-entropy with the true p as a soft label) or, for uplift, to
the true per-row effect (least squares). Its capacity is chosen on a held-out slice of the
training rows by its error to the truth, which keeps falling with capacity as long as the features
carry the signal: a noiseless target rewards depth that a noisy label would punish. On the model's
evaluation rows, oracle − ceiling is then the information the features do not carry and
ceiling − model what the learner left behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from scoring.spec import FeatureSpec
from training import figures
from training.fit.candidate import Candidate
from training.metrics import gap_metrics

log = logging.getLogger(__name__)

# Least error to the truth on the validation slice decides; soft labels need the cross-entropy
# objective (labels in [0, 1]), true effects are real numbers.
OBJECTIVES = {"probability": "cross_entropy", "effect": "regression"}
CEILING_PARAMS = {
    "learning_rate": 0.1,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "verbose": -1,
    "seed": 0,
    "num_threads": 1,  # as the models: OpenMP on a shared 2-core box costs more than it gains
}
# Leaves; rounds by early stopping on the error to the truth. True effects kept improving with leaves
# and rounds at 200k users (255 leaves still best after 1,500 rounds, 63 next, 15 worst) and cost
# ~85 s a setting there, so their grid starts where it matters.
GRIDS = {"probability": (15, 63, 255), "effect": (63, 255)}
MAX_ROUNDS = 1500
PATIENCE = 50
VALID_SHARE = 0.2
UNDERFITTED_TAG = "ceiling_underfitted"


@dataclass
class Ceiling:
    """The chosen fit, and every setting's error to the truth on the validation slice."""

    booster: lgb.Booster
    leaves: int
    grid: pd.DataFrame

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X)

    @property
    def params(self) -> dict[str, int]:
        return {"ceiling_num_leaves": self.leaves, "ceiling_rounds": self.booster.best_iteration}


def fit_ceiling(X: np.ndarray, truth: np.ndarray, spec: FeatureSpec, target: str = "probability",
                grid: tuple[int, ...] | None = None, seed: int = 0, names: list[str] | None = None,
                categorical: list[int] | None = None) -> Ceiling:
    """LightGBM fitted to `truth` on these rows, the setting with the least validation error kept.
    `names` and `categorical` describe X where it holds more than the spec's features (an arm's codes)."""
    grid = grid or GRIDS[target]
    valid = np.random.default_rng(seed).random(len(truth)) < VALID_SHARE
    cat = spec.categorical_index if categorical is None else categorical
    dtrain = lgb.Dataset(X[~valid], truth[~valid], feature_name=names or spec.names, categorical_feature=cat,
                         free_raw_data=False)
    dvalid = lgb.Dataset(X[valid], truth[valid], reference=dtrain, categorical_feature=cat)
    params = {**CEILING_PARAMS, "objective": OBJECTIVES[target], "seed": seed}
    fits, rows = {}, []
    for leaves in grid:
        booster = lgb.train({**params, "num_leaves": leaves}, dtrain, MAX_ROUNDS, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])
        error = next(iter(booster.best_score["valid_0"].values()))
        fits[leaves] = booster
        rows.append({"num_leaves": leaves, "rounds": booster.best_iteration, "valid_error_to_truth": error})
    table = pd.DataFrame(rows).set_index("num_leaves")
    best = int(table["valid_error_to_truth"].idxmin())
    return Ceiling(fits[best], best, table)


def attach_gaps(c: Candidate, ceiling: Ceiling, metrics: dict[str, float], figure: Figure, unit: str) -> None:
    """The ceiling's figures, table and settings in a candidate's run; a model above it is flagged."""
    c.metrics.update(metrics)
    c.figures["ceiling"] = figure
    c.tables["tables/ceiling_grid.csv"] = ceiling.grid
    c.params.update(ceiling.params)
    under = metrics[f"learner_gap_{unit}"] < 0
    c.tags[UNDERFITTED_TAG] = str(under)
    if under:
        log.warning("%s beats its feature ceiling by %.4f %s: the ceiling is under-fitted (more capacity or rows)",
                    c.run_name, -metrics[f"learner_gap_{unit}"], unit)


def binary_gaps(c: Candidate, ceiling: Ceiling, X_eval: np.ndarray, y_eval: np.ndarray, oracle: np.ndarray) -> None:
    """AUC of model, ceiling and oracle on the model's evaluation rows, the two gaps and their ROC curves."""
    score = ceiling.predict(X_eval)
    auc = {name: float(roc_auc_score(y_eval, s)) for name, s in
           (("model", c.test_scores), ("ceiling", score), ("oracle", oracle))}
    curves = {f"model ({auc['model']:.3f})": c.test_scores, f"feature ceiling ({auc['ceiling']:.3f})": score,
              f"oracle ({auc['oracle']:.3f})": oracle}
    attach_gaps(c, ceiling, gap_metrics(auc["oracle"], auc["ceiling"], auc["model"], "auc"),
            figures.roc_curves(y_eval, curves, "Model, feature ceiling and oracle (out-of-time)"), "auc")
