"""The uplift family (marketing response): learners of who converts *because of* each arm.

A simulated campaign log randomises users over control and the arms of the grid; a table's log over
control and one `treated` arm. Per-arm learners (T, X, DR) treat each arm against the pooled control
as its own experiment; the S-learner learns every arm at once from one booster with the arm's parts
as features (see `scoring.uplift`), which pools what the arms share. Conversion is rare (~4%) and an
arm holds a few thousand rows, so per-arm learners use small, heavily regularised trees for a fixed
number of rounds. Every learner and a plain response-propensity reference become candidates with the
same metrics, per arm and out of time; the training job registers the best by the mean over arms of
the out-of-time Qini.
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

from scoring.arms import CONTROL
from scoring.scorer import decile_edges
from scoring.segments import grid_for
from scoring.spec import FeatureSpec
from scoring.uplift import IDENTITY, LOGIT, S_LEARNER, UpliftScorer
from training import figures
from training.data.datasets import UpliftData
from training.fit.binary import LGBM_PARAMS
from training.fit.candidate import Candidate
from training.fit.ceiling import Ceiling, attach_gaps, fit_ceiling
from training.fit.s_learner import S_ROUNDS, coded, coded_names, fit_s_learner, s_params
from training.fit.select import DEFAULT_LGBM, DEFAULT_ROUNDS
from training.metrics import auuc, gap_metrics, mean_by_decile, qini_coefficient, qini_curve, uplift_by_decile

# num_threads=1: the data is small, and OpenMP threads contending on a shared 2-core box run ~50× slower.
UPLIFT_PARAMS = {**LGBM_PARAMS, "num_leaves": 4, "min_data_in_leaf": 200, "learning_rate": 0.03,
                 "lambda_l2": 10.0, "extra_trees": True, "num_threads": 1}
ROUNDS = 300
# A table's learner is chosen by cross-validation on its training rows, beside this baseline.
CV_FOLDS = 3
BASELINE = "two_model_default"
MIN_ARM_ROWS = 30  # an arm's Qini needs treated rows to mean anything
CEILING_ROWS = 300_000
BAND_ROWS = 20_000  # deciles need no more, and a per-arm learner walks ~100 boosters per row  # the ceiling's grid on more rows costs minutes and gains nothing


@dataclass
class Arms:
    """Training rows with one outcome model for control and one per arm, shared by the learners built on them."""

    X: np.ndarray
    y: np.ndarray
    labels: np.ndarray  # each row's arm id, or control
    arms: tuple[str, ...]
    spec: FeatureSpec
    control: lgb.Booster  # P(convert | control)
    treated: dict[str, lgb.Booster]  # P(convert | arm); empty when only the DR-learner needs these rows

    def propensity(self, arm: str) -> float:
        """The arm's share of its pair (its rows and the control rows): constant in a randomised log."""
        n_arm, n_control = (self.labels == arm).sum(), (self.labels == CONTROL).sum()
        return float(n_arm / (n_arm + n_control))


def fit(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, objective: str = "binary") -> lgb.Booster:
    data = lgb.Dataset(X, y, feature_name=spec.names, categorical_feature=spec.categorical_index)
    return lgb.train({**UPLIFT_PARAMS, "objective": objective}, data, ROUNDS)


def fit_arms(X: np.ndarray, y: np.ndarray, labels: np.ndarray, arms: tuple[str, ...], spec: FeatureSpec,
             outcomes: bool = True) -> Arms:
    """The control outcome model and, with `outcomes`, one per arm."""
    c = labels == CONTROL
    treated = {a: fit(X[labels == a], y[labels == a], spec) for a in arms} if outcomes else {}
    return Arms(X, y, labels, arms, spec, fit(X[c], y[c], spec), treated)


# A per-arm learner's boosters and, per arm, booster → weight in its uplift ("control" gives P(convert | control)).
Parts = tuple[dict[str, lgb.Booster], dict[str, dict[str, float]]]


def t_learner(a: Arms) -> Parts:
    """Two outcome models per arm (control shared); uplift is their difference."""
    boosters = {"control": a.control, **{f"{arm}|treated": b for arm, b in a.treated.items()}}
    return boosters, {arm: {f"{arm}|treated": 1.0, "control": -1.0} for arm in a.treated}


def x_learner(a: Arms) -> Parts:
    """Künzel et al. per arm: impute each row's effect with the other side's model, regress it on each
    side, and blend (the control side's effect model weighs by the arm's propensity)."""
    boosters, weights = {"control": a.control}, {}
    c = a.labels == CONTROL
    for arm, treated in a.treated.items():
        rows = a.labels == arm
        boosters[f"{arm}|effect_treated"] = fit(a.X[rows], a.y[rows] - a.control.predict(a.X[rows]), a.spec,
                                                "regression")
        boosters[f"{arm}|effect_control"] = fit(a.X[c], treated.predict(a.X[c]) - a.y[c], a.spec, "regression")
        e = a.propensity(arm)
        weights[arm] = {f"{arm}|effect_treated": 1 - e, f"{arm}|effect_control": e}
    return boosters, weights


def dr_learner(a: Arms) -> Parts:
    """Kennedy's DR-learner per arm: regress the doubly robust pseudo-outcome on the arm's rows and the
    control rows; the outcome models are cross-fitted on two folds so no row's pseudo-outcome comes from
    a model that saw the row."""
    arms = a.arms
    first = np.random.default_rng(UPLIFT_PARAMS["seed"]).random(len(a.y)) < 0.5
    mu0, mu = np.empty(len(a.y)), np.empty(len(a.y))  # mu: P(convert | the row's arm), for treated rows
    mu_arm = {arm: np.empty(len(a.y)) for arm in arms}
    for held in (first, ~first):
        fold = fit_arms(a.X[~held], a.y[~held], a.labels[~held], arms, a.spec)
        mu0[held] = fold.control.predict(a.X[held])
        for arm in arms:
            pair = held & ((a.labels == arm) | (a.labels == CONTROL))
            mu_arm[arm][pair] = fold.treated[arm].predict(a.X[pair])
    boosters, weights = {"control": a.control}, {}
    for arm in arms:
        pair = (a.labels == arm) | (a.labels == CONTROL)
        t, y, e = (a.labels[pair] == arm).astype(float), a.y[pair], a.propensity(arm)
        mu = mu_arm[arm][pair]
        psi = mu - mu0[pair] + t * (y - mu) / e - (1 - t) * (y - mu0[pair]) / (1 - e)
        boosters[f"{arm}|effect"] = fit(a.X[pair], psi, a.spec, "regression")
        weights[arm] = {f"{arm}|effect": 1.0}
    return boosters, weights


# Class transformation was tried too: on 20,000 users its uplift barely correlated with the oracle.
LEARNERS: dict[str, Callable[[Arms], Parts]] = {
    "t_learner": t_learner, "x_learner": x_learner, "dr_learner": dr_learner,
}
# On the 48-arm grid a per-arm learner fits and walks about a hundred boosters: the DR-learner stands
# for them (the X-learner's two effect models per arm cost as much again), beside the two-model baseline.
GRID_LEARNERS = ("dr_learner",)


def _scorer(name: str, boosters: dict[str, lgb.Booster], arms: tuple[str, ...], weights: dict, spec: FeatureSpec,
            X: np.ndarray, X_train: pd.DataFrame, link: str = LOGIT) -> UpliftScorer:
    scorer = UpliftScorer(name, boosters, arms, weights, spec, [], grid_for(spec.names, X_train), link)
    sample = np.random.default_rng(0).choice(len(X), min(len(X), BAND_ROWS), replace=False)
    scorer.band_edges = decile_edges(scorer.predict(X[np.sort(sample)]))
    return scorer


def build_scorer(name: str, arms: Arms, X_train: pd.DataFrame) -> UpliftScorer:
    boosters, weights = LEARNERS[name](arms)
    return _scorer(name, boosters, arms.arms, weights, arms.spec, arms.X, X_train)


def s_learner(X: np.ndarray, y: np.ndarray, labels: np.ndarray, arms: tuple[str, ...], spec: FeatureSpec,
              X_train: pd.DataFrame) -> UpliftScorer:
    return _scorer(S_LEARNER, fit_s_learner(X, y, labels, spec), arms, {}, spec, X, X_train, IDENTITY)


def two_model_default(X: np.ndarray, y: np.ndarray, labels: np.ndarray, arms: tuple[str, ...], spec: FeatureSpec,
                      X_train: pd.DataFrame, params: dict = DEFAULT_LGBM, rounds: int = DEFAULT_ROUNDS) -> UpliftScorer:
    """The plain baseline a data scientist tries first: LightGBM as it comes (or as `params` fix it),
    one model for control and one per arm."""
    def outcome(rows: np.ndarray) -> lgb.Booster:
        data = lgb.Dataset(X[rows], y[rows], feature_name=spec.names, categorical_feature=spec.categorical_index)
        return lgb.train(params, data, rounds)

    boosters = {"control": outcome(labels == CONTROL), **{f"{a}|treated": outcome(labels == a) for a in arms}}
    weights = {a: {f"{a}|treated": 1.0, "control": -1.0} for a in arms}
    return _scorer(BASELINE, boosters, arms, weights, spec, X, X_train)


def _metric_name(*parts: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", "_".join(parts))


def per_arm(y: np.ndarray, labels: np.ndarray, arms: tuple[str, ...], uplift: np.ndarray,
            metric: Callable[[np.ndarray, np.ndarray, np.ndarray], float] = qini_coefficient) -> dict[str, float]:
    """A metric of each arm's uplift column on its rows against the control rows (arms with too few rows left out)."""
    control = labels == CONTROL
    out = {}
    for j, arm in enumerate(arms):
        rows = (labels == arm) | control
        if (labels == arm).sum() >= MIN_ARM_ROWS and control.any():
            out[arm] = metric(y[rows], (labels[rows] == arm).astype(int), uplift[rows, j])
    return out


def assigned_column(values: np.ndarray, labels: np.ndarray, arms: tuple[str, ...], seed: int = 0) -> np.ndarray:
    """Each row's value for the arm it got; a control row's for an arm drawn at random (it could have got
    any), so that one ranking of all rows is a fair pooled uplift ranking."""
    col = pd.Index(arms).get_indexer(labels)
    drawn = np.random.default_rng(seed).integers(0, len(arms), len(labels))
    return values[np.arange(len(labels)), np.where(col >= 0, col, drawn)]


def uplift_metrics(data: UpliftData, uplift: np.ndarray, response: np.ndarray) -> dict[str, float]:
    """Qini and AUUC per arm and their means over arms (`oot_qini`, `oot_auuc`: what learners are chosen
    by), the pooled Qini and the response AUC; against the oracle where known.

    `uplift` is each test row's predicted uplift of every arm (rows × data.arms); `response` the predicted
    P(convert) in the arm each row actually got.
    """
    y, labels, t, arms = data.ds.y_test, data.arm_test, data.t_test, data.arms
    qini, area = per_arm(y, labels, arms, uplift), per_arm(y, labels, arms, uplift, auuc)
    pooled = assigned_column(uplift, labels, arms)
    m = {"oot_qini": float(np.mean(list(qini.values()))), "oot_auuc": float(np.mean(list(area.values()))),
         "oot_qini_pooled": qini_coefficient(y, t, pooled), "oot_response_auc": float(roc_auc_score(y, response)),
         "oot_observed_uplift": float(y[t == 1].mean() - y[t == 0].mean()), "oot_rows": float(len(y)),
         "oot_arms": float(len(qini))}
    if len(arms) > 1:
        m.update({_metric_name("oot_qini", arm): v for arm, v in qini.items()})
        m.update({_metric_name("oot_auuc", arm): v for arm, v in area.items()})
    truth = data.truth_test
    if truth is not None:
        oracle = per_arm(y, labels, arms, truth)
        m["oracle_qini"] = float(np.mean([oracle[a] for a in qini]))
        if m["oracle_qini"] > 0:
            m["qini_vs_oracle_ratio"] = m["oot_qini"] / m["oracle_qini"]
        m["oracle_uplift_corr"] = float(np.corrcoef(uplift.ravel(), truth.ravel())[0, 1])
        m["oracle_uplift_corr_within_arm"] = float(np.nanmean(
            [np.corrcoef(uplift[:, j], truth[:, j])[0, 1] for j in range(len(arms)) if uplift[:, j].std() > 0]))
        # What choosing each user's arm by the model brings, in true uplift, against choosing it knowing the truth.
        rows = np.arange(len(y))
        m["oot_true_uplift_best_arm"] = float(truth[rows, uplift.argmax(axis=1)].mean())
        m["oracle_true_uplift_best_arm"] = float(truth.max(axis=1).mean())
    return m


def uplift_figures(data: UpliftData, uplift: np.ndarray, scorer: UpliftScorer | None,
                   X_te: np.ndarray) -> tuple[dict[str, Figure], dict[str, pd.DataFrame]]:
    """The pooled Qini curve (with the oracle's), uplift by decile, and the reasons' summary for a learner."""
    y, t, labels = data.ds.y_test, data.t_test, data.arm_test
    ranking = assigned_column(uplift, labels, data.arms)
    table = uplift_by_decile(y, t, ranking)
    out: dict[str, Figure] = {}
    if data.truth_test is not None:
        oracle = assigned_column(data.truth_test, labels, data.arms)
        table["true_uplift"] = mean_by_decile(oracle, ranking)
        out["qini"] = figures.qini(*qini_curve(y, t, ranking), *qini_curve(y, t, oracle))
    else:
        out["qini"] = figures.qini(*qini_curve(y, t, ranking))
    if scorer is not None:
        X = X_te[np.random.default_rng(0).choice(len(X_te), min(2000, len(X_te)), replace=False)]
        out["uplift_shap_summary"] = figures.shap_summary(scorer.spec.names, scorer.contributions(X), X)
    return out, {"tables/uplift_by_decile.csv": table}


def candidate(model: str, name: str, data: UpliftData, spec: FeatureSpec, X_te: np.ndarray, uplift: np.ndarray,
              response: np.ndarray, scorer: UpliftScorer | None) -> Candidate:
    ds = data.ds
    figs, tables = uplift_figures(data, uplift, scorer, X_te)
    params = {**{k: v for k, v in (s_params(data.arm_train) if name == S_LEARNER else UPLIFT_PARAMS).items()
                 if k != "verbose"},
              "rounds": S_ROUNDS if name == S_LEARNER else ROUNDS, "learner": name, "features": len(spec.names),
              "arms": len(data.arms), "train_rows": len(ds.y_train), "test_rows": len(ds.y_test),
              "treated_share": float(data.t_train.mean())}
    ranking = assigned_column(uplift, data.arm_test, data.arms)
    return Candidate(f"{model}-{name}", scorer, ranking, params, uplift_metrics(data, uplift, response),
                     tags={"model_family": "lightgbm", "learner": name, "selected": "False"},
                     figures=figs, tables=tables)


def cv_qini(data: UpliftData, spec: FeatureSpec, X: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Each per-arm learner's and the baseline's mean Qini over folds of the training rows (stratified by
    arm and outcome): what a table's learner is chosen by, the test rows kept for the held-out figures."""
    y, labels, frame, arms = data.ds.y_train, data.arm_train, data.ds.X_train, data.arms
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(X, 2 * y + data.t_train)
    scores: dict[str, list[float]] = {name: [] for name in (*LEARNERS, BASELINE)}

    def score(scorer: UpliftScorer, te: np.ndarray) -> float:
        p0, P = scorer.probabilities(X[te], arms)
        return float(np.mean(list(per_arm(y[te], labels[te], arms, P - p0[:, None]).values())))

    for tr, te in folds:
        fitted = fit_arms(X[tr], y[tr], labels[tr], arms, spec)
        for name in LEARNERS:
            scores[name].append(score(build_scorer(name, fitted, frame.iloc[tr]), te))
        scores[BASELINE].append(score(two_model_default(X[tr], y[tr], labels[tr], arms, spec, frame.iloc[tr]), te))
    table = pd.DataFrame({n: {"cv_qini": np.mean(v), "cv_qini_std": np.std(v)} for n, v in scores.items()}).T
    table.index.name = "learner"
    return table


def _learner_candidate(model: str, scorer: UpliftScorer, data: UpliftData, spec: FeatureSpec,
                       X_te: np.ndarray) -> Candidate:
    p0, P = scorer.probabilities(X_te, data.arms)
    response = np.where(data.t_test == 1, assigned_column(P, data.arm_test, data.arms), p0)
    return candidate(model, scorer.learner, data, spec, X_te, P - p0[:, None], response, scorer)


def fit_uplift(data: UpliftData, model: str, baseline: bool = False) -> list[Candidate]:
    """The response-propensity reference first, then one candidate per learner, on the same rows; with
    `baseline` (always on the grid), the plain two-model LightGBM last (compared, never registered). A
    campaign log over the grid gets the S-learner and the grid's per-arm learners; a table's one arm the
    per-arm learners."""
    ds, arms, labels = data.ds, data.arms, data.arm_train
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    X_tr, X_te = spec.to_matrix(ds.X_train), spec.to_matrix(ds.X_test)
    propensity = fit(X_tr, ds.y_train, spec).predict(X_te)
    out = [candidate(model, "response_propensity", data, spec, X_te, np.repeat(propensity[:, None], len(arms), 1),
                     propensity, None)]
    grid = len(arms) > 1
    scorers = [s_learner(X_tr, ds.y_train, labels, arms, spec, ds.X_train)] if grid else []
    names = GRID_LEARNERS if grid else tuple(LEARNERS)
    fitted = fit_arms(X_tr, ds.y_train, labels, arms, spec, outcomes=names != ("dr_learner",))
    scorers += [build_scorer(name, fitted, ds.X_train) for name in names]
    if baseline or grid:
        scorers.append(two_model_default(X_tr, ds.y_train, labels, arms, spec, ds.X_train))
    out += [_learner_candidate(model, s, data, spec, X_te) for s in scorers]
    if baseline or grid:
        out[-1].tags["role"] = "baseline"
    if data.truth_train is not None and data.truth_test is not None:
        ceiling = arm_ceiling(X_tr, labels, data, spec)
        for c in out:
            arm_gaps(c, ceiling, data, X_te)
    return out


def arm_ceiling(X: np.ndarray, labels: np.ndarray, data: UpliftData, spec: FeatureSpec) -> Ceiling:
    """The feature ceiling of a grid: a regression of the true uplift of each training row's arm (a random
    arm's for a control row) on the features and the arm's codes, on up to CEILING_ROWS rows."""
    rng = np.random.default_rng(0)
    col = pd.Index(data.arms).get_indexer(labels)
    col = np.where(col >= 0, col, rng.integers(0, len(data.arms), len(labels)))
    keep = np.sort(rng.choice(len(labels), min(len(labels), CEILING_ROWS), replace=False))
    arm_of = np.asarray(data.arms, dtype=object)[col[keep]]
    names, categorical = coded_names(spec)
    return fit_ceiling(coded(X[keep], arm_of), data.truth_train[keep, col[keep]], spec, target="effect",
                       names=names, categorical=categorical)


def arm_gaps(c: Candidate, ceiling: Ceiling, data: UpliftData, X_te: np.ndarray) -> None:
    """Mean per-arm Qini of model, ceiling and oracle on the test rows, the gaps, the ratio to the ceiling
    (`qini_vs_ceiling_ratio`: the mean over arms of the model's Qini over the mean of the ceiling's), and
    the pooled Qini curves."""
    y, labels, arms, t = data.ds.y_test, data.arm_test, data.arms, data.t_test
    effect = np.stack([ceiling.predict(coded(X_te, np.full(len(X_te), arm, dtype=object))) for arm in arms], axis=1)
    model = {a: c.metrics[_metric_name("oot_qini", a)] for a in arms if _metric_name("oot_qini", a) in c.metrics}
    if len(arms) == 1:
        model = {arms[0]: c.metrics["oot_qini"]}
    ceiling_qini = per_arm(y, labels, arms, effect)
    oracle_qini = per_arm(y, labels, arms, data.truth_test)
    shown = [a for a in model if a in ceiling_qini]
    mean = {name: float(np.mean([q[a] for a in shown])) for name, q in
            (("model", model), ("ceiling", ceiling_qini), ("oracle", oracle_qini))}
    metrics = gap_metrics(mean["oracle"], mean["ceiling"], mean["model"], "qini")
    if mean["ceiling"] > 0:
        metrics["qini_vs_ceiling_ratio"] = mean["model"] / mean["ceiling"]
    metrics.update({_metric_name("ceiling_qini", a): ceiling_qini[a] for a in shown if len(arms) > 1})
    rankings = {"model": c.test_scores, "feature ceiling": assigned_column(effect, labels, arms),
                "oracle": assigned_column(data.truth_test, labels, arms)}
    curves = {f"{label} ({qini_coefficient(y, t, r):.4f})": qini_curve(y, t, r) for label, r in rankings.items()}
    attach_gaps(c, ceiling, metrics, figures.qini_curves(curves, "Model, feature ceiling and oracle (out-of-time, "
                                                                 "pooled over arms)"), "qini")
