"""Evaluation plots logged to MLflow: ROC, KS, lift/gain, calibration, importance, SHAP summary."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: plots go to files, never a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from training.metrics import deciles  # noqa: E402


def roc(y, score, oracle=None):
    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(y, score)
    ax.plot(fpr, tpr, label="model")
    if oracle is not None:
        ofpr, otpr, _ = roc_curve(y, oracle)
        ax.plot(ofpr, otpr, "--", label="oracle (true probability)")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (out-of-time)")
    ax.legend()
    return fig


def roc_curves(y, curves, title):
    """One ROC curve per named score on the same rows (e.g. model, feature ceiling, oracle)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for (label, score), style in zip(curves.items(), ("-", "-.", "--", ":")):
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, style, label=label)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=8)
    return fig


def ks_plot(y, score):
    order = np.argsort(-score)
    y = np.asarray(y)[order]
    pos, neg = np.cumsum(y) / max(y.sum(), 1), np.cumsum(1 - y) / max((1 - y).sum(), 1)
    x = np.arange(1, len(y) + 1) / len(y)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(x, pos, label="positives")
    ax.plot(x, neg, label="negatives")
    i = int(np.argmax(pos - neg))
    ax.vlines(x[i], neg[i], pos[i], colors="red", label=f"KS = {pos[i] - neg[i]:.3f}")
    ax.set(xlabel="share of users by descending score", ylabel="cumulative share", title="KS")
    ax.legend()
    return fig


def lift_gain(y, score):
    t = deciles(np.asarray(y), np.asarray(score))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    a1.bar(t.index, t["lift"])
    a1.axhline(1, color="grey", ls=":")
    a1.set(xlabel="decile (1 = highest score)", ylabel="lift", title="Lift by decile")
    a2.plot(np.r_[0, t.index / 10], np.r_[0, t["cum_gain"]], marker="o")
    a2.plot([0, 1], [0, 1], ":", color="grey")
    a2.set(xlabel="share targeted", ylabel="share of positives captured", title="Cumulative gain")
    return fig


def calibration(y, score):
    frac, mean = calibration_curve(y, score, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(mean, frac, marker="o")
    lim = max(mean.max(), frac.max())
    ax.plot([0, lim], [0, lim], ":", color="grey")
    ax.set(xlabel="mean predicted", ylabel="observed rate", title="Calibration (out-of-time)")
    return fig


def importance(names, gains, top=20):
    order = np.argsort(gains)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1))
    ax.barh(np.asarray(names)[order], np.asarray(gains)[order])
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def shap_summary(names, contrib, X, top=15):
    """Beeswarm-style summary: each dot a user, x its SHAP value, colour its feature value rank."""
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(mean_abs)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1))
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        v = X[:, j]
        finite = np.isfinite(v)
        rank = np.full(len(v), 0.5)
        if finite.sum() > 1:
            rank[finite] = v[finite].argsort().argsort() / (finite.sum() - 1)
        ax.scatter(contrib[:, j], row + rng.uniform(-0.3, 0.3, len(v)), c=rank, cmap="coolwarm", s=4, alpha=0.6)
    ax.set_yticks(range(len(order)), np.asarray(names)[order])
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="SHAP value (log-odds); colour: low → high feature value", title="SHAP summary")
    fig.tight_layout()
    return fig


def qini(share, gain, oracle_share=None, oracle_gain=None):
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(share, gain, label="model")
    if oracle_share is not None:
        ax.plot(oracle_share, oracle_gain, "--", label="oracle uplift")
    ax.plot([0, 1], [0, gain[-1]], ":", color="grey", label="random")
    ax.set(xlabel="share targeted", ylabel="incremental conversions", title="Qini curve")
    ax.legend()
    return fig


def qini_curves(curves, title):
    """One Qini curve per named ranking, each given as (share, gain) on the same rows."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for (label, (share, gain)), style in zip(curves.items(), ("-", "-.", "--", ":")):
        ax.plot(share, gain, style, label=label)
    ax.plot([0, 1], [0, gain[-1]], ":", color="grey", label="random")
    ax.set(xlabel="share targeted", ylabel="incremental conversions", title=title)
    ax.legend(fontsize=8)
    return fig


def woe_bins(charts: dict[str, tuple[list[str], list[float]]], cols: int = 4):
    """One small bar chart per scorecard feature: WOE by bin (positive = safer than average)."""
    rows = max(1, -(-len(charts) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, (labels, woe)) in zip(axes.flat, charts.items()):
        ax.bar(range(len(woe)), woe, color=["tab:green" if w >= 0 else "tab:red" for w in woe])
        ax.set_xticks(range(len(woe)), labels, rotation=45, ha="right", fontsize=6)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(name, fontsize=8)
    for ax in axes.flat[len(charts):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def psi_bars(panels: dict[str, dict[str, float]], bounds: tuple[float, float] = (0.1, 0.25)):
    """PSI per feature, one panel per comparison (a model's training rows, the previous snapshot), with
    the moderate and significant bounds drawn across."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.2 * len(panels)), squeeze=False)
    for ax, (title, psi) in zip(axes[:, 0], panels.items()):
        names, values = list(psi), np.asarray(list(psi.values()))
        colours = np.where(values >= bounds[1], "tab:red", np.where(values >= bounds[0], "tab:orange", "tab:green"))
        ax.bar(range(len(values)), values, color=colours)
        for bound, style in zip(bounds, ("--", "-")):
            ax.axhline(bound, color="grey", linestyle=style, linewidth=1)
        ax.set_xticks(range(len(values)), names, rotation=90, fontsize=6)
        ax.set(ylabel="PSI", title=title)
    fig.tight_layout()
    return fig


def forecast_vs_actual(frame, title):
    """A backtest: each origin's forecast and interval against the actual volume (frame: origin, date,
    actual, forecast, lower, upper)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    actual = frame.drop_duplicates("date").sort_values("date")
    ax.plot(actual["date"], actual["actual"], color="black", lw=1.2, label="actual")
    for i, (_, part) in enumerate(frame.groupby("origin")):
        ax.plot(part["date"], part["forecast"], color="C0", lw=1, label="forecast" if i == 0 else None)
        ax.fill_between(part["date"], part["lower"], part["upper"], color="C0", alpha=0.12,
                        label="interval" if i == 0 else None)
    ax.set(ylabel="draw-down volume (CNY)", title=title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def forecast_ahead(history, ahead, title):
    """The recent history (a Series by day) and the stored forecast with its interval (frame by date)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(history.index, history.to_numpy(), color="black", lw=1.2, label="actual")
    days = pd.to_datetime(ahead["date"])
    ax.plot(days, ahead["forecast"], color="C1", label="forecast")
    ax.fill_between(days, ahead["lower"], ahead["upper"], color="C1", alpha=0.2, label="interval")
    ax.set(ylabel="draw-down volume (CNY)", title=title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def realised_vs_predicted(frame: pd.DataFrame, title: str):
    """Realised uplift per group (`realised_uplift` ± `uplift_ci`) beside the predicted, one row each."""
    frame = frame.sort_values("predicted_uplift")
    y = np.arange(len(frame))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(frame) + 1.5))
    ax.errorbar(frame["realised_uplift"], y, xerr=frame["uplift_ci"], fmt="o", label="realised (95% interval)")
    ax.scatter(frame["predicted_uplift"], y, marker="x", color="C3", label="predicted", zorder=3)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, frame["group"])
    ax.set_xlabel("uplift: conversion rate contacted − held out")
    ax.set_title(title)
    ax.legend(loc="best", framealpha=0.9)
    fig.tight_layout()
    return fig
