"""Marketing response as uplift: who converts *because of* the incentive, from randomised campaign logs.

Conversion is rare (~4%) and a campaign window holds a few thousand rows, so every learner uses
small, heavily regularised trees for a fixed number of rounds: early stopping on a slice with a
few dozen conversions stops after one or two trees, and deeper trees fit noise. Several learners
are compared in one MLflow experiment; the best by out-of-time Qini is registered and gated.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import date
from pathlib import Path
from typing import ClassVar

import lightgbm as lgb
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training import datasets, plots, truth
from training.datasets import Dataset
from training.explain import LeafAttribution
from training.evaluate import auuc, mean_by_decile, qini_coefficient, qini_curve, uplift_by_decile
from training.features import snapshot_paths
from training.models import decile_edges, log_scorer, read_meta, segments_for, write_meta
from training.pipeline import SnapshotDates
from training.registry import MODEL_NAMES, experiment, gate, git_commit
from training.segments import SegmentGrid
from training.settings import Settings
from training.spec import FeatureSpec
from training.train import LGBM_PARAMS, TrainResult, log_inputs

REGISTERED = MODEL_NAMES["response"]
TARGET, TREATMENT = "converted", "treatment"
OFFER = ("incentive", "channel", "send_hour")  # the service fills these per request
SEGMENTED = ("incentive", "channel")  # Qini per value where a value has enough rows
MIN_SEGMENT_ROWS = 1000
TOP_SHARE = 0.3  # budget share for the low-noise check against the oracle

# num_threads=1: the data is small, and OpenMP threads contending on a shared 2-core box run ~50× slower.
UPLIFT_PARAMS = {**LGBM_PARAMS, "num_leaves": 4, "min_data_in_leaf": 200, "learning_rate": 0.03,
                 "lambda_l2": 10.0, "extra_trees": True, "num_threads": 1}
ROUNDS = 300


@dataclass
class UpliftData:
    """A Dataset whose X_* also hold the 0/1 treatment column (excluded from the spec); y = converted;
    oracle = true uplift of the test rows where the simulator knows it."""

    ds: Dataset
    target: str
    treatment: str

    @property
    def t_train(self) -> np.ndarray:
        return self.ds.X_train[self.treatment].to_numpy(dtype=int)

    @property
    def t_test(self) -> np.ndarray:
        return self.ds.X_test[self.treatment].to_numpy(dtype=int)


def treatment_arm(values: pd.Series, column: str) -> np.ndarray:
    """The 0/1 assignment; labels, missing values or other codes are refused, naming the column."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        found = sorted({str(v) for v in values[bad]})[:5]
        raise ValueError(f"treatment column {column!r} must be 0/1 (randomised assignment), found {found}")
    return numeric.to_numpy(dtype=int)


def _campaign_rows(settings: Settings, as_of: date) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Offer, treatment and user features of each campaign send in the window after `as_of`."""
    p = snapshot_paths(settings, as_of)
    if not p.response.exists():
        raise FileNotFoundError(f"no campaign responses as of {as_of}: run `python -m training features` first")
    resp = pd.read_parquet(p.response)
    X = resp[["user_id", *OFFER, TREATMENT]].join(pd.read_parquet(p.features), on="user_id").set_index("user_id")
    return X, resp[TARGET].to_numpy(), resp[["campaign_id", "user_id"]]


def simulated(settings: Settings, dates: SnapshotDates) -> UpliftData:
    """Campaigns sent in the 30 days after the train snapshot and after each earlier one, validated on
    those after the OOT one. Every window is a randomised log, so stacking them is unbiased; it gives
    the learners four times the campaigns (and every offer and channel) to learn from."""
    parts = [_campaign_rows(settings, d) for d in (dates.train, *datasets.history(settings, dates))]
    X_tr, y_tr = pd.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    X_te, y_te, keys = _campaign_rows(settings, dates.oot)
    oracle = None
    if settings.truth_dir.exists():
        p = keys.merge(truth.read_truth(settings, "campaign_assignments"), on=["campaign_id", "user_id"], how="left")
        oracle = (p.p_treated - p.p_control).to_numpy()
    roots = {k: str(snapshot_paths(settings, d).root) for k, d in (("train", dates.train), ("test", dates.oot))}
    ds = Dataset("marketing_response", X_tr, y_tr, X_te, y_te, oracle=oracle, exclude={TREATMENT}, sources=roots,
                 split=f"out-of-time: campaigns after {dates.train} and {len(parts) - 1} earlier snapshots "
                       f"for training, after {dates.oot} for test")
    return UpliftData(ds, TARGET, TREATMENT)


def from_table(path: Path, target: str, treatment: str) -> UpliftData:
    """A flat randomised campaign log; ids, dates and the split as datasets.from_table does them."""
    ds = datasets.from_table(path, target)
    if treatment not in ds.X_train.columns:
        raise KeyError(f"treatment column {treatment!r} not among the feature columns of {path.name}")
    for X in (ds.X_train, ds.X_test):
        X[treatment] = treatment_arm(X[treatment], treatment)
    if ds.X_train[treatment].nunique() < 2:
        raise ValueError(f"treatment column {treatment!r} has only one arm in the training rows")
    return UpliftData(replace(ds, exclude=ds.exclude | {treatment}), target, treatment)


# --- learners ---------------------------------------------------------------------------------

@dataclass
class Arms:
    """Training rows with one outcome model per arm, shared by the learners built on them."""

    X: np.ndarray
    y: np.ndarray
    t: np.ndarray
    spec: FeatureSpec
    control: lgb.Booster  # P(convert | control)
    treated: lgb.Booster  # P(convert | treated)

    @property
    def propensity(self) -> float:
        return float(self.t.mean())


def fit(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, objective: str = "binary") -> lgb.Booster:
    data = lgb.Dataset(X, y, feature_name=spec.names, categorical_feature=spec.categorical_index)
    return lgb.train({**UPLIFT_PARAMS, "objective": objective}, data, ROUNDS)


def fit_arms(X: np.ndarray, y: np.ndarray, t: np.ndarray, spec: FeatureSpec) -> Arms:
    c, tr = t == 0, t == 1
    return Arms(X, y, t, spec, fit(X[c], y[c], spec), fit(X[tr], y[tr], spec))


# A learner's uplift is offset + Σ weight × booster output; the "control" booster gives P(convert | control).
Parts = tuple[dict[str, lgb.Booster], dict[str, float], float]


def t_learner(a: Arms) -> Parts:
    """Two outcome models; uplift is their difference."""
    return {"control": a.control, "treated": a.treated}, {"treated": 1.0, "control": -1.0}, 0.0


def x_learner(a: Arms) -> Parts:
    """Künzel et al.: impute each row's effect with the other arm's model, regress it per arm, and blend
    (the control-arm effect model weighs by the propensity, constant in a randomised log)."""
    c, tr = a.t == 0, a.t == 1
    d_treated = a.y[tr] - a.control.predict(a.X[tr])
    d_control = a.treated.predict(a.X[c]) - a.y[c]
    boosters = {"control": a.control, "effect_treated": fit(a.X[tr], d_treated, a.spec, "regression"),
                "effect_control": fit(a.X[c], d_control, a.spec, "regression")}
    return boosters, {"effect_treated": 1 - a.propensity, "effect_control": a.propensity}, 0.0


def dr_learner(a: Arms) -> Parts:
    """Kennedy's DR-learner: regress the doubly robust pseudo-outcome; its outcome models are cross-fitted
    on two folds so no row's pseudo-outcome comes from a model that saw the row."""
    e, psi = a.propensity, np.empty(len(a.y))
    first = np.random.default_rng(UPLIFT_PARAMS["seed"]).random(len(a.y)) < 0.5
    for held in (first, ~first):
        fold = fit_arms(a.X[~held], a.y[~held], a.t[~held], a.spec)
        mu1, mu0 = fold.treated.predict(a.X[held]), fold.control.predict(a.X[held])
        y, t = a.y[held], a.t[held]
        psi[held] = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
    return {"control": a.control, "effect": fit(a.X, psi, a.spec, "regression")}, {"effect": 1.0}, 0.0


# Class transformation was tried too: on 20,000 users its uplift barely correlated with the oracle.
LEARNERS: dict[str, Callable[[Arms], Parts]] = {
    "t_learner": t_learner, "x_learner": x_learner, "dr_learner": dr_learner,
}


@dataclass
class UpliftScorer:
    """Uplift of an incentive, P(convert | treated) − P(convert | control), with per-feature reasons."""

    kind: ClassVar[str] = "uplift"
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

    def reason_contributions(self, X: np.ndarray) -> np.ndarray:
        """The same weighting over decision-path attributions: the service's cheap stand-in for TreeSHAP."""
        return sum(w * self._paths[name](X) for name, w in self.weights.items())

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


def build_scorer(name: str, arms: Arms, X_train: pd.DataFrame) -> UpliftScorer:
    boosters, weights, offset = LEARNERS[name](arms)
    scorer = UpliftScorer(name, boosters, weights, offset, arms.spec, [], segments_for(arms.spec, X_train))
    scorer.band_edges = decile_edges(scorer.predict(arms.X))
    return scorer


# --- evaluation -------------------------------------------------------------------------------

def _metric_name(*parts: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", "_".join(parts))


def true_uplift_captured(oracle: np.ndarray, ranking: np.ndarray, share: float = TOP_SHARE) -> float:
    """Mean true uplift among the top `share` by a ranking: the oracle's expectation, not noisy outcomes."""
    top = np.argsort(-ranking, kind="stable")[: max(1, int(round(share * len(ranking))))]
    return float(oracle[top].mean())


def uplift_metrics(data: UpliftData, ranking: np.ndarray, response: np.ndarray) -> dict[str, float]:
    """Qini (overall and per offer value), AUUC and response AUC; against the oracle where known.

    `ranking` orders users for targeting (predicted uplift, or propensity for the reference model);
    `response` is the predicted probability of conversion in the arm each row actually got.
    """
    y, t, X, oracle = data.ds.y_test, data.t_test, data.ds.X_test, data.ds.oracle
    m = {"oot_qini": qini_coefficient(y, t, ranking), "oot_auuc": auuc(y, t, ranking),
         "oot_response_auc": float(roc_auc_score(y, response)),
         "oot_observed_uplift": float(y[t == 1].mean() - y[t == 0].mean()), "oot_rows": float(len(y))}
    for col in (c for c in SEGMENTED if c in X.columns):
        for value in X[col].dropna().unique():
            rows = (X[col] == value).to_numpy()
            if rows.sum() >= MIN_SEGMENT_ROWS and 0 < t[rows].mean() < 1:
                m[_metric_name("oot_qini", col, str(value))] = qini_coefficient(y[rows], t[rows], ranking[rows])
    if oracle is not None:
        m["oracle_qini"] = qini_coefficient(y, t, oracle)
        if m["oracle_qini"] > 0:
            m["qini_vs_oracle_ratio"] = m["oot_qini"] / m["oracle_qini"]
        m["oracle_uplift_corr"] = float(np.corrcoef(ranking, oracle)[0, 1])
        m["oot_true_uplift_top30"] = true_uplift_captured(oracle, ranking)
        m["oracle_true_uplift_top30"] = true_uplift_captured(oracle, oracle)
    return m


def log_uplift_evaluation(data: UpliftData, ranking: np.ndarray, scorer: UpliftScorer | None,
                          X_te: np.ndarray) -> None:
    y, t, oracle = data.ds.y_test, data.t_test, data.ds.oracle
    table = uplift_by_decile(y, t, ranking)
    oracle_curve = qini_curve(y, t, oracle) if oracle is not None else ()
    figures = {"qini": plots.qini(*qini_curve(y, t, ranking), *oracle_curve)}
    if oracle is not None:
        table["true_uplift"] = mean_by_decile(oracle, ranking)
    if scorer is not None:
        X = X_te[np.random.default_rng(0).choice(len(X_te), min(2000, len(X_te)), replace=False)]
        figures["uplift_shap_summary"] = plots.shap_summary(scorer.spec.names, scorer.contributions(X), X)
    mlflow.log_text(table.to_csv(), "tables/uplift_by_decile.csv")
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}.png")
        plt.close(fig)


# --- training ---------------------------------------------------------------------------------

@dataclass
class Candidate:
    learner: str
    run_id: str
    metrics: dict[str, float]
    scorer: UpliftScorer | None  # None for the response-propensity reference
    test_scores: np.ndarray


def load_data(settings: Settings, dates: SnapshotDates | None, table: Path | None, target: str | None,
              treatment: str | None) -> UpliftData:
    if table is None:
        if dates is None:
            raise ValueError("training on the snapshots needs their dates")
        return simulated(settings, dates)
    if not target or not treatment:
        raise ValueError("training response on a table needs its target and treatment columns (--target, --treatment)")
    return from_table(table, target, treatment)


def log_candidate(learner: str, data: UpliftData, spec: FeatureSpec, X_te: np.ndarray, ranking: np.ndarray,
                  response: np.ndarray, scorer: UpliftScorer | None, tags: dict[str, str]) -> Candidate:
    """One MLflow run per learner: params, metrics, Qini plot and uplift by decile."""
    ds = data.ds
    with mlflow.start_run(run_name=f"{REGISTERED}-{learner}") as run:
        mlflow.set_tags({**tags, "learner": learner, "selected": "False"})
        mlflow.log_params({**{k: v for k, v in UPLIFT_PARAMS.items() if k != "verbose"}, "rounds": ROUNDS,
                           "learner": learner, "features": len(spec.names), "train_rows": len(ds.y_train),
                           "test_rows": len(ds.y_test), "treated_share": float(data.t_train.mean())})
        metrics = uplift_metrics(data, ranking, response)
        mlflow.log_metrics(metrics)
        log_uplift_evaluation(data, ranking, scorer, X_te)
        return Candidate(learner, run.info.run_id, metrics, scorer, ranking)


def train_response(settings: Settings, dates: SnapshotDates | None, force: bool = False, table: Path | None = None,
                   target: str | None = None, treatment: str | None = None) -> TrainResult:
    """Compare uplift learners and a plain response-propensity model; register the best learner by OOT Qini."""
    data = load_data(settings, dates, table, target, treatment)
    ds = data.ds
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    X_tr, X_te = spec.to_matrix(ds.X_train), spec.to_matrix(ds.X_test)
    arms = fit_arms(X_tr, ds.y_train, data.t_train, spec)
    tags = {"git_commit": git_commit(), "model_family": "lightgbm", "split": ds.split,
            "data": "table" if table else "simulated", "comparison": uuid.uuid4().hex}
    mlflow.set_experiment(experiment_id=experiment(REGISTERED, settings))

    propensity = fit(X_tr, ds.y_train, spec).predict(X_te)
    reference = log_candidate("response_propensity", data, spec, X_te, propensity, propensity, None, tags)
    candidates = []
    for learner in LEARNERS:
        scorer = build_scorer(learner, arms, ds.X_train)
        p = scorer.extras(X_te)
        response = np.where(data.t_test == 1, p["p_treated"], p["p_control"])
        candidates.append(log_candidate(learner, data, spec, X_te, scorer.predict(X_te), response, scorer, tags))

    best = max(candidates, key=lambda c: c.metrics["oot_qini"])
    comparison = pd.DataFrame({c.learner: c.metrics for c in [reference, *candidates]}).T
    with mlflow.start_run(run_id=best.run_id):
        mlflow.set_tag("selected", "True")
        # Inputs once, in the registered model's run: the other runs share them (tag "comparison"), and
        # MLflow's schema inference costs seconds per run on a few thousand rows.
        log_inputs(ds, data.target)
        mlflow.log_text(comparison.to_csv(), "tables/learners.csv")
        info = log_scorer(best.scorer, spec.frame(ds.X_test.head(5)), REGISTERED)
        version = str(info.registered_model_version)
        decision = gate(REGISTERED, version, "oot_qini", best.metrics["oot_qini"], force=force)
    return TrainResult(best.run_id, version, best.metrics, decision, best.scorer, best.test_scores)
