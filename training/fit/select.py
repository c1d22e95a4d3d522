"""A table's binary model chosen by cross-validation on its training rows, beside plain baselines.

A user's table is not the simulator: its size, signal and noise are unknown, so the settings tuned
on the snapshots need not suit it. Each LightGBM setting of a small grid is scored by its mean AUC
over the folds of the training rows (early stopping on the held fold), beside two baselines a data
scientist would try first: LightGBM with its defaults, and a one-hot logistic regression. The
chosen setting is refitted on all training rows only if it beats both there.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from scoring.spec import FeatureSpec
from training.fit.binary import LGBM_PARAMS, MAX_ROUNDS

FOLDS = 3
GRID = [{"num_leaves": leaves, "learning_rate": rate} for leaves in (7, 15, 31) for rate in (0.05, 0.1)]
# LightGBM as it comes: 31 leaves, learning rate 0.1, 100 rounds, no early stopping.
DEFAULT_LGBM = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
DEFAULT_ROUNDS = 100


@dataclass
class Selection:
    params: dict  # the chosen LightGBM setting (on top of LGBM_PARAMS)
    comparison: pd.DataFrame  # one row per candidate and baseline: mean and spread of the fold AUCs
    beats_baselines: bool

    @property
    def chosen(self) -> str:
        return setting_name(self.params)


def setting_name(params: dict) -> str:
    return f"lgbm_leaves{params['num_leaves']}_lr{params['learning_rate']}"


def _lgbm_fold(params: dict, spec: FeatureSpec, X: np.ndarray, y: np.ndarray, tr: np.ndarray,
               te: np.ndarray) -> float:
    cat = spec.categorical_index
    train = lgb.Dataset(X[tr], y[tr], feature_name=spec.names, categorical_feature=cat, free_raw_data=False)
    held = lgb.Dataset(X[te], y[te], reference=train, categorical_feature=cat)
    booster = lgb.train({**LGBM_PARAMS, **params}, train, MAX_ROUNDS, valid_sets=[held],
                        callbacks=[lgb.early_stopping(50, verbose=False)])
    return float(roc_auc_score(y[te], booster.predict(X[te])))


def _default_fold(spec: FeatureSpec, X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> float:
    data = lgb.Dataset(X[tr], y[tr], feature_name=spec.names, categorical_feature=spec.categorical_index)
    return float(roc_auc_score(y[te], lgb.train(DEFAULT_LGBM, data, DEFAULT_ROUNDS).predict(X[te])))


def onehot_lr(spec: FeatureSpec):
    """Median-imputed, standardised numbers with missing-value flags, and one-hot categories (unseen ignored)."""
    numeric = list(range(len(spec.numeric)))
    return make_pipeline(
        ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                                 StandardScaler()), numeric),
                           ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1),
                                                 OneHotEncoder(handle_unknown="ignore")), spec.categorical_index)]),
        LogisticRegression(C=1.0, max_iter=2000),
    )


def _lr_fold(spec: FeatureSpec, X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> float:
    # A column that is all missing in a fold has no median: numbers there count as missing everywhere.
    X = np.where(np.isnan(X).all(axis=0), 0.0, X)
    return float(roc_auc_score(y[te], onehot_lr(spec).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]))


def select(spec: FeatureSpec, X: np.ndarray, y: np.ndarray, seed: int = 0) -> Selection:
    """The grid's best setting by mean fold AUC, and whether it beats both baselines on the same folds."""
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(X, y))
    scores = {setting_name(p): [_lgbm_fold(p, spec, X, y, tr, te) for tr, te in folds] for p in GRID}
    baselines = {"baseline_lgbm_default": [_default_fold(spec, X, y, tr, te) for tr, te in folds],
                 "baseline_onehot_lr": [_lr_fold(spec, X, y, tr, te) for tr, te in folds]}
    table = pd.DataFrame({name: {"cv_auc": np.mean(v), "cv_auc_std": np.std(v), "baseline": name in baselines}
                          for name, v in {**scores, **baselines}.items()}).T
    table.index.name = "candidate"
    best = max(GRID, key=lambda p: np.mean(scores[setting_name(p)]))
    best_auc = np.mean(scores[setting_name(best)])
    return Selection(best, table, all(best_auc > np.mean(v) for v in baselines.values()))


def compare_card(spec: FeatureSpec, X: np.ndarray, y: np.ndarray, fit_card, seed: int = 0) -> tuple[pd.DataFrame, bool]:
    """The scorecard's mean fold AUC beside the one-hot logistic regression it must beat (a linear model,
    as the card is) and a default LightGBM, reported as the card's challenger: a credit model must give
    points per attribute, which a booster cannot, so it informs the risk team rather than the gate."""
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(X, y))
    scores = {
        "scorecard": [float(roc_auc_score(y[te], fit_card(X[tr], y[tr]).predict(X[te]))) for tr, te in folds],
        "baseline_onehot_lr": [_lr_fold(spec, X, y, tr, te) for tr, te in folds],
        "challenger_lgbm_default": [_default_fold(spec, X, y, tr, te) for tr, te in folds],
    }
    table = pd.DataFrame({name: {"cv_auc": np.mean(v), "cv_auc_std": np.std(v)} for name, v in scores.items()}).T
    table.index.name = "candidate"
    return table, bool(table.loc["scorecard", "cv_auc"] > table.loc["baseline_onehot_lr", "cv_auc"])
