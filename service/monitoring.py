"""Prometheus gauges of the drift report, served on /metrics beside BentoML's own metrics.

Labels are bounded: the four served models and their features (a fixed list per model version).
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace


@lru_cache(maxsize=1)
def gauges() -> SimpleNamespace:
    """The gauges, made once per process. prometheus_client is imported here, not at the top: BentoML
    sets PROMETHEUS_MULTIPROC_DIR in the worker after the service module is imported, and the client
    chooses its multiprocess mode when first imported (see bentoml/metrics.py)."""
    from prometheus_client import Gauge

    # Every worker measures the same snapshot: the most recent value of a live worker is the figure.
    mode = "livemostrecent"
    by_feature = ["model", "feature"]
    return SimpleNamespace(
        score_psi=Gauge("opscore_drift_score_psi", "PSI of the model's score: serving snapshot vs training rows",
                        ["model"], multiprocess_mode=mode),
        psi=Gauge("opscore_drift_feature_psi", "PSI of a feature: serving snapshot vs the model's training rows",
                  by_feature, multiprocess_mode=mode),
        missing=Gauge("opscore_drift_feature_missing_share", "share of missing values in the serving snapshot",
                      by_feature, multiprocess_mode=mode),
        unseen=Gauge("opscore_drift_feature_unseen_share",
                     "share of categories the model never saw in training (categorical features)",
                     by_feature, multiprocess_mode=mode),
        snapshot_psi=Gauge("opscore_drift_snapshot_feature_psi",
                           "PSI of a feature: serving snapshot vs the serving snapshot before it",
                           ["feature"], multiprocess_mode=mode),
    )


def publish(report: dict) -> None:
    """Set every gauge from a drift report (scoring.drift.report)."""
    g = gauges()
    for model, d in report["models"].items():
        if d.get("reference") is None:
            continue
        g.score_psi.labels(model).set(d["score"]["psi"])
        for f in d["features"]:
            g.psi.labels(model, f["feature"]).set(f["psi"])
            g.missing.labels(model, f["feature"]).set(f["missing_share"])
            if f["unseen_share"] is not None:
                g.unseen.labels(model, f["feature"]).set(f["unseen_share"])
    for f in (report["consecutive"] or {}).get("features", ()):
        g.snapshot_psi.labels(f["feature"]).set(f["psi"])
