"""The training jobs: a model's data, its family's fit, and tracking's record and gate, wired together."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import mlflow
import pandas as pd

from scoring.registry import MODEL_NAMES
from scoring.settings import Settings
from training.data import datasets
from training.data.datasets import Dataset, UpliftData
from training.data.snapshots import SnapshotDates
from training.fit.binary import fit_binary
from training.fit.scorecard import fit_credit
from training.fit.uplift import fit_uplift
from training.tracking import TrainResult, experiment, log_candidate, log_inputs, record, register

log = logging.getLogger(__name__)


def train_binary(ds: Dataset, registered_name: str, settings: Settings, force: bool = False,
                 params: dict | None = None, review_capacity: float | None = None) -> TrainResult:
    """Train one binary model, log everything a data scientist compares, register it, run the gate."""
    mlflow.set_experiment(experiment_id=experiment(registered_name, settings))
    candidate = fit_binary(ds, registered_name, params, review_capacity)
    return record(candidate, ds, {"split": ds.split}, registered_name, "oot_auc", force)


def response_data(settings: Settings, dates: SnapshotDates | None, table: Path | None, target: str | None,
                  treatment: str | None) -> UpliftData:
    if table is None:
        if dates is None:
            raise ValueError("training on the snapshots needs their dates")
        return datasets.response(settings, dates)
    if not target or not treatment:
        raise ValueError("training response on a table needs its target and treatment columns (--target, --treatment)")
    return datasets.response_table(table, target, treatment)


def train_response(settings: Settings, dates: SnapshotDates | None, force: bool = False, table: Path | None = None,
                   target: str | None = None, treatment: str | None = None) -> TrainResult:
    """Compare uplift learners and a plain response-propensity model; register the best learner by OOT Qini."""
    name = MODEL_NAMES["response"]
    data = response_data(settings, dates, table, target, treatment)
    ds = data.ds
    mlflow.set_experiment(experiment_id=experiment(name, settings))
    tags = {"split": ds.split, "data": "table" if table else "simulated", "comparison": uuid.uuid4().hex}
    candidates = fit_uplift(data)
    run_ids = [log_candidate(c, tags) for c in candidates]
    learners = [(run_id, c) for run_id, c in zip(run_ids, candidates) if c.scorer is not None]
    best_run, best = max(learners, key=lambda rc: rc[1].metrics["oot_qini"])
    comparison = pd.DataFrame({c.params["learner"]: c.metrics for c in candidates}).T
    with mlflow.start_run(run_id=best_run):
        mlflow.set_tag("selected", "True")
        # Inputs once, in the registered model's run: the other runs share them (tag "comparison"), and
        # MLflow's schema inference costs seconds per run on a few thousand rows.
        log_inputs(ds, data.target)
        mlflow.log_text(comparison.to_csv(), "tables/learners.csv")
    version, decision = register(best_run, best, best.scorer.spec.frame(ds.X_test.head(5)), name, "oot_qini", force)
    return TrainResult(best_run, version, best.metrics, decision, best.scorer, best.test_scores)


def train_credit(settings: Settings, dates: SnapshotDates | None, force: bool = False, table: Path | None = None,
                 target: str | None = None) -> TrainResult:
    """Challenger first, then the scorecard: fit, validate out-of-time, log, register, gate on OOT AUC."""
    name = MODEL_NAMES["credit"]
    ds = datasets.from_table(table, target) if table else datasets.credit(settings, dates)
    mlflow.set_experiment(experiment_id=experiment(name, settings))
    challenger, card = fit_credit(ds, name)
    challenger_run = log_candidate(challenger, {"split": ds.split}, ds)
    register(challenger_run, challenger, challenger.scorer.spec.frame(ds.X_test.head(5)), None, "oot_auc")
    result = record(card, ds, {"split": ds.split, "challenger_run_id": challenger_run}, name, "oot_auc", force)
    log.info("%s v%s: scorecard OOT AUC %.4f, LightGBM challenger %.4f", name, result.version,
             card.metrics["oot_auc"], challenger.metrics["oot_auc"])
    return result


def train_one(name: str, settings: Settings, dates: SnapshotDates | None, force: bool = False, table: Path | None = None,
              target: str | None = None, treatment: str | None = None, id_columns: list[str] | None = None,
              date_column: str | None = None) -> TrainResult:
    """The job of one model by its CLI name: on the snapshots, or on a user's own table."""
    if name == "response":
        return train_response(settings, dates, force, table, target, treatment)
    if name == "credit":
        return train_credit(settings, dates, force, table, target)
    ds = datasets.from_table(table, target, id_columns, date_column) if table else getattr(datasets, name)(settings, dates)
    capacity = settings.review_capacity if name == "abuse" else None
    return train_binary(ds, MODEL_NAMES[name], settings, force=force, review_capacity=capacity)
