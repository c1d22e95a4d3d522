"""Metrics for binary scores (AUC, KS, lift, precision at capacity), for uplift (Qini, AUUC), for drift (PSI)
and the split of the oracle's gap at the feature ceiling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

PSI_FLOOR = 1e-4  # share given to an empty bucket so the log stays finite
TOP_SHARE = 0.3  # budget share for the low-noise check of an uplift ranking against the oracle (`*_top30`)


def ks(y: np.ndarray, score: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.max(tpr - fpr))


def deciles(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Rate, lift and cumulative gain by score decile (decile 1 = highest scores)."""
    order = np.argsort(-score, kind="stable")
    d = np.empty(len(score), dtype=int)
    d[order] = np.arange(len(score)) * 10 // len(score) + 1
    t = pd.DataFrame({"decile": d, "y": y, "score": score}).groupby("decile").agg(
        n=("y", "size"), positives=("y", "sum"), rate=("y", "mean"), mean_score=("score", "mean")
    )
    t["lift"] = t["rate"] / max(np.mean(y), 1e-12)
    t["cum_gain"] = t["positives"].cumsum() / max(np.sum(y), 1)
    return t


def at_capacity(y: np.ndarray, score: np.ndarray, share: float) -> tuple[float, float]:
    """Precision and recall when the top `share` of scores is reviewed."""
    k = max(1, int(round(len(score) * share)))
    top = np.argsort(-score, kind="stable")[:k]
    hits = float(np.sum(y[top]))
    return hits / k, hits / max(float(np.sum(y)), 1.0)


def binary_metrics(y: np.ndarray, score: np.ndarray, prefix: str = "") -> dict[str, float]:
    y = np.asarray(y).astype(int)
    return {
        f"{prefix}auc": float(roc_auc_score(y, score)),
        f"{prefix}pr_auc": float(average_precision_score(y, score)),
        f"{prefix}ks": ks(y, score),
        f"{prefix}lift_top_decile": float(deciles(y, score)["lift"].iloc[0]),
        f"{prefix}positive_rate": float(y.mean()),
        f"{prefix}rows": float(len(y)),
    }


def gap_metrics(oracle: float, ceiling: float, model: float, unit: str) -> dict[str, float]:
    """The oracle's gap split in two: what no feature carries (oracle − ceiling) and what the learner left
    (ceiling − model); the two add up to oracle − model."""
    return {f"ceiling_{unit}": ceiling, f"information_gap_{unit}": oracle - ceiling,
            f"learner_gap_{unit}": ceiling - model}


def qini_curve(y: np.ndarray, treatment: np.ndarray, uplift: np.ndarray, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Incremental conversions among the top share of users ranked by uplift (Radcliffe's Qini)."""
    order = np.argsort(-uplift, kind="stable")
    y, t = np.asarray(y)[order].astype(float), np.asarray(treatment)[order].astype(float)
    cum_t, cum_c = np.cumsum(t), np.cumsum(1 - t)
    cum_yt, cum_yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    idx = np.unique(np.linspace(0, len(y) - 1, points + 1).astype(int))
    gain = cum_yt[idx] - np.divide(cum_yc[idx] * cum_t[idx], cum_c[idx], out=np.zeros(len(idx)), where=cum_c[idx] > 0)
    share = (idx + 1) / len(y)
    return np.concatenate([[0.0], share]), np.concatenate([[0.0], gain])


def qini_coefficient(y: np.ndarray, treatment: np.ndarray, uplift: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting diagonal, per treated user."""
    share, gain = qini_curve(y, treatment, uplift)
    area = np.trapezoid(gain, share) - gain[-1] / 2
    return float(area / max(np.sum(treatment), 1))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, resamples: int = 200,
                       level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic` (a function of row indices) over `resamples` draws of n rows
    with replacement. The same seed draws the same rows, so intervals of several statistics are paired."""
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def uplift_by_decile(y: np.ndarray, treatment: np.ndarray, uplift: np.ndarray) -> pd.DataFrame:
    order = np.argsort(-uplift, kind="stable")
    d = np.empty(len(uplift), dtype=int)
    d[order] = np.arange(len(uplift)) * 10 // len(uplift) + 1
    df = pd.DataFrame({"decile": d, "y": y, "t": treatment, "pred": uplift})
    g = df.groupby("decile")
    rate_t = g.apply(lambda x: x.y[x.t == 1].mean(), include_groups=False)
    rate_c = g.apply(lambda x: x.y[x.t == 0].mean(), include_groups=False)
    return pd.DataFrame({"predicted_uplift": g.pred.mean(), "observed_uplift": rate_t - rate_c, "n": g.size()})


def auuc(y: np.ndarray, treatment: np.ndarray, uplift: np.ndarray) -> float:
    """Area under the uplift curve: (treated rate − control rate) among the top share, times the share.

    Unlike the Qini coefficient it is not net of random targeting, so it also grows with the average effect.
    """
    order = np.argsort(-uplift, kind="stable")
    y, t = np.asarray(y)[order].astype(float), np.asarray(treatment)[order].astype(float)
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    rate_t = np.divide(np.cumsum(y * t), n_t, out=np.zeros(len(y)), where=n_t > 0)
    rate_c = np.divide(np.cumsum(y * (1 - t)), n_c, out=np.zeros(len(y)), where=n_c > 0)
    share = np.arange(1, len(y) + 1) / len(y)
    return float(np.trapezoid(np.r_[0.0, (rate_t - rate_c) * share], np.r_[0.0, share]))


def mean_by_decile(values: np.ndarray, score: np.ndarray) -> pd.Series:
    """Mean of `values` per score decile (decile 1 = highest), e.g. the true uplift per predicted-uplift decile."""
    order = np.argsort(-score, kind="stable")
    d = np.empty(len(score), dtype=int)
    d[order] = np.arange(len(score)) * 10 // len(score) + 1
    return pd.Series(values).groupby(d).mean().rename_axis("decile")


def expected_auc(p_true: np.ndarray, score: np.ndarray) -> float:
    """AUC of `score` averaged over outcomes drawn from the true probabilities (simulator only).

    With a few dozen realised positives the plain AUC is mostly noise; this asks the same ranking
    question of the true probabilities, so only the model's own error remains.
    """
    p = np.asarray(p_true, dtype=float)
    s = np.asarray(score, dtype=float)
    # The weighted AUC over every (positive copy, negative copy) pair, less each user paired with
    # itself: weight p·(1 − p), always a tie (half a correct pair).
    pairs = p.sum() * (1 - p).sum()
    self_pairs = float(np.sum(p * (1 - p)))
    auc = roc_auc_score(np.r_[np.ones(len(p)), np.zeros(len(p))], np.r_[s, s], sample_weight=np.r_[p, 1 - p])
    return float((auc * pairs - 0.5 * self_pairs) / (pairs - self_pairs))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on expected's quantile buckets.

    Repeated quantiles collapse, so a discrete feature gets one bucket per value; missing
    values are a bucket of their own, because a rise in missing data is drift too.
    """
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    finite = e[~np.isnan(e)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.empty(0)

    def shares(v: np.ndarray) -> np.ndarray:
        bucket = np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
        return np.maximum(np.bincount(bucket, minlength=len(edges) + 2) / max(len(v), 1), PSI_FLOOR)

    pe, pa = shares(e), shares(a)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def true_uplift_captured(oracle: np.ndarray, ranking: np.ndarray, share: float = TOP_SHARE) -> float:
    """Mean true uplift among the top `share` by a ranking: the oracle's expectation, not noisy outcomes."""
    top = np.argsort(-ranking, kind="stable")[: max(1, int(round(share * len(ranking))))]
    return float(oracle[top].mean())
