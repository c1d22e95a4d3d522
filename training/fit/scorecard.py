"""The scorecard family (credit features): monotone WOE bins, logistic regression, points; a LightGBM challenger.

The pipeline is the textbook one: optbinning finds monotone bins per feature, features with too
little information value are dropped, a logistic regression on the WOE values weighs them and PDO
scaling turns log-odds into points.

The LightGBM challenger is fitted on the same rows and logged as a separate run with the same
metric names, so the two sit side by side in MLflow. It is never registered: `credit_features`
promises points per attribute and reason codes in points, which a booster cannot give, so a
champion/challenger gate between them would compare models that do not honour the same contract.
If the booster keeps winning, that is a finding for the risk team (a feature or interaction the
card misses), not an automatic promotion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from optbinning import OptimalBinning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from scoring.binary import BinaryScorer
from scoring.scorecard import BASE_ODDS, BASE_POINTS, PDO, Characteristic, ScorecardScorer
from scoring.scorer import decile_edges
from scoring.segments import SegmentGrid, grid_for
from scoring.spec import FeatureSpec
from training import figures
from training.data.datasets import Dataset
from training.fit.binary import binary_figures, fit_booster
from training.fit.candidate import Candidate
from training.fit.ceiling import binary_gaps, fit_ceiling
from training.metrics import binary_metrics, deciles, expected_auc, psi

# Below 0.02 a characteristic is conventionally "not predictive" (Siddiqi).
IV_MIN = 0.02
BINNING = {
    "monotonic_trend": "auto_asc_desc",  # monotone bins: points must move one way with a feature
    # Pre-bins of 2%: tens of thousands of loans carry a thousand defaults or more, enough for fine bins.
    "min_prebin_size": 0.02,
    # Every bin keeps both outcomes so its WOE is finite without smoothing (which could break
    # the monotone order the solver guarantees).
    "min_bin_n_event": 1,
    "min_bin_n_nonevent": 1,
}
# Little shrinkage: the card keeps the twenty-odd informative features, weighed on a thousand defaults or more
# (at 200k users C=1 gave 0.744 out of time against 0.732 for C=0.1, and finer pre-bins 0.002 more).
LR_C = 1.0
# The challenger sees the same few hundred applications as the card: small trees, slow learning.
CHALLENGER_PARAMS = {"num_leaves": 4, "min_data_in_leaf": 20, "learning_rate": 0.02, "lambda_l2": 5.0}


def _woe(events: np.ndarray, totals: np.ndarray, n_events: float, n_good: float) -> np.ndarray:
    """ln(%good / %bad) per cell; empty cells get half a count (they arise only in the missing bin)."""
    bad = np.where(events == 0, 0.5, events)
    good = np.where(totals - events == 0, 0.5, totals - events)
    return np.log((good / n_good) / (bad / n_events))


def _optimal_bins(x: np.ndarray, y: np.ndarray, name: str, categorical: bool, binning: dict | None = None) -> list:
    if np.isnan(x).all():  # nothing to bin (say, app activity in a snapshot from before the app's data begins)
        return []
    if categorical:
        # Category codes as strings: optbinning then groups them by event rate.
        values = np.where(np.isnan(x), -1, x).astype(np.int64).astype(str).astype(object)
        values[np.isnan(x)] = np.nan
        dtype = "categorical"
    else:
        values, dtype = x, "numerical"
    return list(OptimalBinning(name=name, dtype=dtype, **(binning or BINNING)).fit(values, y).splits)


def fit_characteristic(x: np.ndarray, y: np.ndarray, name: str, column: int, categories: list[str] | None,
                       binning: dict | None = None) -> Characteristic:
    """Monotone optimal bins of one matrix column, with WOE and IV counted on those bins."""
    splits = _optimal_bins(x, y, name, categories is not None, binning)
    missing = np.isnan(x)
    if categories is None:
        edges = [float(s) for s in splits]
        level = np.searchsorted(np.asarray(edges), x, side="right")
        n_levels = len(edges) + 1
    else:
        # A category's group; categories optbinning left out (none seen in training) go to missing.
        group = np.full(len(categories), -1)
        for g, cats in enumerate(splits):
            group[[int(c) for c in cats]] = g
        edges, n_levels = [], len(splits)
        codes = np.where(missing, 0, x).astype(np.int64)
        level = group[codes]
        missing = missing | (level < 0)
    n_bins = n_levels + 1  # the last one is the missing bin
    cell = np.where(missing, n_levels, level)
    totals = np.bincount(cell, minlength=n_bins).astype(float)
    events = np.bincount(cell, weights=y, minlength=n_bins)
    n_events, n_good = float(y.sum()), float(len(y) - y.sum())
    woe = _woe(events, totals, n_events, n_good)
    woe[totals == 0] = 0.0  # a bin no training row fell in is treated as average
    iv = float(np.sum(((totals - events) / n_good - events / n_events) * woe))
    bin_woe = woe[:-1]
    if categories is not None:
        bin_woe = np.where(group >= 0, bin_woe[np.maximum(group, 0)], woe[-1])
    return Characteristic(name, column, categories is not None, edges, [float(w) for w in bin_woe], float(woe[-1]), iv)


def fit_scorecard(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, segments: SegmentGrid | None = None,
                  iv_min: float = IV_MIN, C: float = LR_C, binning: dict | None = None,
                  cat_binning: dict | None = None) -> tuple[ScorecardScorer, pd.DataFrame]:
    """Bin every feature, keep the informative ones, weigh them; also the per-feature report.

    With WOE = ln(%good/%bad) every weight must come out negative; a positive one means the
    feature is collinear with stronger ones and its points would run against its own bins, so it
    is dropped and the regression refitted.
    """
    y = np.asarray(y, dtype=float)
    chars = [fit_characteristic(X[:, j], y, name, j, spec.categorical.get(name),
                                cat_binning if name in spec.categorical else binning)
             for j, name in enumerate(spec.names)]
    rejected = {c.name: f"iv below {iv_min}" for c in chars if c.iv < iv_min}
    card = [c for c in chars if c.iv >= iv_min]
    while card:
        lr = LogisticRegression(C=C, max_iter=1000).fit(np.column_stack([c.transform(X[:, c.column]) for c in card]), y)
        coef = lr.coef_[0]
        if (coef < 0).all():
            break
        rejected[card.pop(int(np.argmax(coef))).name] = "weight of the wrong sign"
    if not card:
        raise ValueError(f"no feature reaches information value {iv_min}: nothing to build a scorecard on")
    for c, b in zip(card, coef):
        c.coef = float(b)
    scorer = ScorecardScorer(spec, [], segments, card, float(lr.intercept_[0]), rejected=rejected)
    scorer.band_edges = decile_edges(scorer.predict(X))
    report = pd.DataFrame({"iv": [c.iv for c in chars], "levels": [len(c.woe) for c in chars],
                           "weight": [c.coef if c.name not in rejected else np.nan for c in chars],
                           "rejected": [rejected.get(c.name, "") for c in chars]},
                          index=pd.Index(spec.names, name="feature"))
    return scorer, report


def oot_metrics(ds: Dataset, score: np.ndarray) -> dict[str, float]:
    """AUC, KS, Gini and friends on the out-of-time rows; the oracle's figures and the gaps where known."""
    m = binary_metrics(ds.y_test, score, "oot_")
    m["oot_gini"] = 2 * m["oot_auc"] - 1
    if ds.oracle is not None:
        m["oracle_auc"] = float(roc_auc_score(ds.y_test, ds.oracle))
        m["oracle_gap_auc"] = m["oracle_auc"] - m["oot_auc"]
        # The same comparison without the noise of the realised defaults.
        m["oot_expected_auc"] = expected_auc(ds.oracle, score)
        m["oracle_expected_auc"] = expected_auc(ds.oracle, ds.oracle)
        m["oracle_gap_expected_auc"] = m["oracle_expected_auc"] - m["oot_expected_auc"]
    return m


def card_table(scorer: ScorecardScorer) -> pd.DataFrame:
    """The card as risk teams read it: feature, attribute, WOE, points."""
    rows = []
    for c in scorer.characteristics:
        woe = [*c.woe, c.missing_woe]
        points = scorer.attribute_points(c, np.asarray(woe))
        rows += [(c.name, a, w, p) for a, w, p in zip(c.labels(scorer.spec), woe, points)]
    return pd.DataFrame(rows, columns=["feature", "attribute", "woe", "points"]).set_index("feature")


def card_figures(scorer: ScorecardScorer, y: np.ndarray, score: np.ndarray, oracle: np.ndarray | None) -> dict[str, Figure]:
    woe_charts = {c.name: (c.labels(scorer.spec)[:-1], c.woe) for c in scorer.characteristics}
    return {"roc": figures.roc(y, score, oracle), "ks": figures.ks_plot(y, score),
            "lift_gain": figures.lift_gain(y, score), "calibration": figures.calibration(y, score),
            "woe_bins": figures.woe_bins(woe_charts)}


def fit_challenger(ds: Dataset, spec: FeatureSpec, X_tr: np.ndarray, X_te: np.ndarray, name: str) -> Candidate:
    """LightGBM on the card's rows, for comparison (see the module docstring)."""
    booster = fit_booster(X_tr, ds.y_train, spec, CHALLENGER_PARAMS, desc=f"train {name} challenger")
    scorer = BinaryScorer(booster, spec, decile_edges(booster.predict(X_tr)), grid_for(spec.names, ds.X_train))
    score = scorer.predict(X_te)
    return Candidate(
        f"{name}-lgbm-challenger", scorer, score,
        params={**CHALLENGER_PARAMS, "features": len(spec.names), "train_rows": len(ds.y_train), "test_rows": len(ds.y_test)},
        metrics={"best_iteration": float(booster.best_iteration), **oot_metrics(ds, score)},
        tags={"model_family": "lightgbm", "role": "challenger"},
        figures=binary_figures(ds.y_test, score, scorer, X_te, ds.oracle),
        tables={"tables/deciles.csv": deciles(ds.y_test, score)},
    )


def fit_card(ds: Dataset, spec: FeatureSpec, X_tr: np.ndarray, X_te: np.ndarray, name: str) -> Candidate:
    """The scorecard, validated out of time, with its stability (PSI) and the card as tables."""
    scorer, report = fit_scorecard(X_tr, ds.y_train, spec, grid_for(spec.names, ds.X_train))
    score = scorer.predict(X_te)
    report["psi"] = [psi(X_tr[:, j], X_te[:, j]) for j in range(len(spec.names))]
    in_card = [c.name for c in scorer.characteristics]
    metrics = {**oot_metrics(ds, score), "train_auc": float(roc_auc_score(ds.y_train, scorer.predict(X_tr))),
               "card_features": float(len(in_card)),
               "psi_score": psi(scorer.score_points(X_tr), scorer.score_points(X_te)),
               "psi_max_card_feature": float(report.loc[in_card, "psi"].max())}
    return Candidate(
        f"{name}-scorecard", scorer, score, metrics=metrics, tags={"model_family": "scorecard"},
        params={**BINNING, "iv_min": IV_MIN, "lr_C": LR_C, "base_points": BASE_POINTS, "base_odds": BASE_ODDS,
                "pdo": PDO, "features": len(spec.names), "train_rows": len(ds.y_train), "test_rows": len(ds.y_test)},
        figures=card_figures(scorer, ds.y_test, score, ds.oracle),
        tables={"tables/deciles.csv": deciles(ds.y_test, score), "tables/scorecard.csv": card_table(scorer),
                "tables/characteristics.csv": report},
        dicts={"scorecard/dropped_features.json": scorer.rejected},
    )


def fit_credit(ds: Dataset, name: str) -> tuple[Candidate, Candidate]:
    """The LightGBM challenger and the scorecard on the same rows."""
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    X_tr, X_te = spec.to_matrix(ds.X_train), spec.to_matrix(ds.X_test)
    challenger = fit_challenger(ds, spec, X_tr, X_te, name)
    card = fit_card(ds, spec, X_tr, X_te, name)
    card.metrics["challenger_oot_auc"] = challenger.metrics["oot_auc"]
    if ds.truth_train is not None and ds.oracle is not None:
        ceiling = fit_ceiling(X_tr, ds.truth_train, spec)
        for c in (challenger, card):
            binary_gaps(c, ceiling, X_te, ds.y_test, ds.oracle)
    return challenger, card
