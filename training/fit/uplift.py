"""The uplift family (marketing response): learners of who converts *because of* the incentive.

Conversion is rare (~4%) and a campaign window holds a few thousand rows, so every learner uses
small, heavily regularised trees for a fixed number of rounds: early stopping on a slice with a
few dozen conversions stops after one or two trees, and deeper trees fit noise. Every learner and
a plain response-propensity reference become candidates with the same metrics; the training job
registers the best by out-of-time Qini.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from scoring.scorer import decile_edges
from scoring.segments import grid_for
from scoring.spec import FeatureSpec
from scoring.uplift import OFFER, UpliftScorer
from training import figures
from training.data.datasets import UpliftData
from training.fit.binary import LGBM_PARAMS
from training.fit.candidate import Candidate
from training.fit.ceiling import fit_ceiling, uplift_gaps
from training.fit.select import DEFAULT_LGBM, DEFAULT_ROUNDS
from training.metrics import (auuc, mean_by_decile, qini_coefficient, qini_curve, true_uplift_captured,
                              uplift_by_decile)

SEGMENTED = ("incentive", "channel")  # Qini per value where a value has enough rows
MIN_SEGMENT_ROWS = 1000

# num_threads=1: the data is small, and OpenMP threads contending on a shared 2-core box run ~50× slower.
UPLIFT_PARAMS = {**LGBM_PARAMS, "num_leaves": 4, "min_data_in_leaf": 200, "learning_rate": 0.03,
                 "lambda_l2": 10.0, "extra_trees": True, "num_threads": 1}
ROUNDS = 300
# A table's learner is chosen by cross-validation on its training rows, beside this baseline.
CV_FOLDS = 3
BASELINE = "two_model_default"


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


def build_scorer(name: str, arms: Arms, X_train: pd.DataFrame) -> UpliftScorer:
    boosters, weights, offset = LEARNERS[name](arms)
    scorer = UpliftScorer(name, boosters, weights, offset, arms.spec, [], grid_for(arms.spec.names, X_train))
    scorer.band_edges = decile_edges(scorer.predict(arms.X))
    return scorer


def _metric_name(*parts: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", "_".join(parts))


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


def uplift_figures(data: UpliftData, ranking: np.ndarray, scorer: UpliftScorer | None,
                   X_te: np.ndarray) -> tuple[dict[str, Figure], dict[str, pd.DataFrame]]:
    """The Qini curve (with the oracle's), uplift by decile, and the reasons' summary for a learner."""
    y, t, oracle = data.ds.y_test, data.t_test, data.ds.oracle
    table = uplift_by_decile(y, t, ranking)
    oracle_curve = qini_curve(y, t, oracle) if oracle is not None else ()
    out = {"qini": figures.qini(*qini_curve(y, t, ranking), *oracle_curve)}
    if oracle is not None:
        table["true_uplift"] = mean_by_decile(oracle, ranking)
    if scorer is not None:
        X = X_te[np.random.default_rng(0).choice(len(X_te), min(2000, len(X_te)), replace=False)]
        out["uplift_shap_summary"] = figures.shap_summary(scorer.spec.names, scorer.contributions(X), X)
    return out, {"tables/uplift_by_decile.csv": table}


def candidate(model: str, name: str, data: UpliftData, spec: FeatureSpec, X_te: np.ndarray, ranking: np.ndarray,
              response: np.ndarray, scorer: UpliftScorer | None) -> Candidate:
    ds = data.ds
    figs, tables = uplift_figures(data, ranking, scorer, X_te)
    params = {**{k: v for k, v in UPLIFT_PARAMS.items() if k != "verbose"}, "rounds": ROUNDS, "learner": name,
              "features": len(spec.names), "train_rows": len(ds.y_train), "test_rows": len(ds.y_test),
              "treated_share": float(data.t_train.mean())}
    return Candidate(f"{model}-{name}", scorer, ranking, params, uplift_metrics(data, ranking, response),
                     tags={"model_family": "lightgbm", "learner": name, "selected": "False"},
                     figures=figs, tables=tables)


def two_model_default(X: np.ndarray, y: np.ndarray, t: np.ndarray, spec: FeatureSpec, X_train: pd.DataFrame,
                      params: dict = DEFAULT_LGBM, rounds: int = DEFAULT_ROUNDS) -> UpliftScorer:
    """The plain baseline a data scientist tries first: LightGBM as it comes (or as `params` fix it),
    one model per arm."""
    def arm(rows: np.ndarray) -> lgb.Booster:
        data = lgb.Dataset(X[rows], y[rows], feature_name=spec.names, categorical_feature=spec.categorical_index)
        return lgb.train(params, data, rounds)

    scorer = UpliftScorer(BASELINE, {"control": arm(t == 0), "treated": arm(t == 1)}, {"treated": 1.0, "control": -1.0},
                          0.0, spec, [], grid_for(spec.names, X_train))
    scorer.band_edges = decile_edges(scorer.predict(X))
    return scorer


def cv_qini(data: UpliftData, spec: FeatureSpec, X: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Each learner's and the baseline's mean Qini over folds of the training rows (stratified by arm
    and outcome): what a table's learner is chosen by, the test rows kept for the held-out figures."""
    y, t, frame = data.ds.y_train, data.t_train, data.ds.X_train
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(X, 2 * y + t)
    scores: dict[str, list[float]] = {name: [] for name in (*LEARNERS, BASELINE)}
    for tr, te in folds:
        arms = fit_arms(X[tr], y[tr], t[tr], spec)
        for name in LEARNERS:
            ranking = build_scorer(name, arms, frame.iloc[tr]).predict(X[te])
            scores[name].append(qini_coefficient(y[te], t[te], ranking))
        ranking = two_model_default(X[tr], y[tr], t[tr], spec, frame.iloc[tr]).predict(X[te])
        scores[BASELINE].append(qini_coefficient(y[te], t[te], ranking))
    table = pd.DataFrame({n: {"cv_qini": np.mean(v), "cv_qini_std": np.std(v)} for n, v in scores.items()}).T
    table.index.name = "learner"
    return table


def _learner_candidate(model: str, name: str, scorer: UpliftScorer, data: UpliftData, spec: FeatureSpec,
                       X_te: np.ndarray) -> Candidate:
    p = scorer.extras(X_te)
    response = np.where(data.t_test == 1, p["p_treated"], p["p_control"])
    return candidate(model, name, data, spec, X_te, scorer.predict(X_te), response, scorer)


def fit_uplift(data: UpliftData, model: str, baseline: bool = False) -> list[Candidate]:
    """The response-propensity reference first, then one candidate per learner, on the same rows; with
    `baseline`, the plain two-model LightGBM last (compared, never registered)."""
    ds = data.ds
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    X_tr, X_te = spec.to_matrix(ds.X_train), spec.to_matrix(ds.X_test)
    arms = fit_arms(X_tr, ds.y_train, data.t_train, spec)
    propensity = fit(X_tr, ds.y_train, spec).predict(X_te)
    out = [candidate(model, "response_propensity", data, spec, X_te, propensity, propensity, None)]
    out += [_learner_candidate(model, name, build_scorer(name, arms, ds.X_train), data, spec, X_te)
            for name in LEARNERS]
    if baseline:
        scorer = two_model_default(X_tr, ds.y_train, data.t_train, spec, ds.X_train)
        out.append(_learner_candidate(model, BASELINE, scorer, data, spec, X_te))
        out[-1].tags["role"] = "baseline"
    if ds.truth_train is not None and ds.oracle is not None:
        ceiling = fit_ceiling(X_tr, ds.truth_train, spec, target="effect")
        for c in out:
            uplift_gaps(c, ceiling, X_te, ds.y_test, data.t_test, ds.oracle, arm_labels(ds.X_test))
    return out


def arm_labels(X: pd.DataFrame) -> np.ndarray:
    """Each row's arm: its offer's values joined (a campaign sends one offer to its treated users)."""
    label = X[OFFER[0]].astype(str)
    for column in OFFER[1:]:
        label = label + "/" + X[column].astype(str)
    return label.to_numpy()
