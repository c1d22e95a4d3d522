"""The training jobs: a model's data, its family's fit, and tracking's record and gate, wired together."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from scoring.registry import MODEL_NAMES
from scoring.settings import Settings
from scoring.spec import FeatureSpec
from training.data import datasets
from training.data.datasets import Dataset, UpliftData
from training.data.snapshots import SnapshotDates
from training.fit.binary import fit_binary
from training.fit.candidate import Candidate
from training.fit.scorecard import fit_credit, fit_scorecard
from training.fit.select import FOLDS, compare_card, select
from training.fit.uplift import BASELINE, CV_FOLDS, cv_qini, fit_uplift
from training.tracking import (ROWS_TAG, TrainResult, experiment, log_candidate, log_inputs, record, register,
                               rows_digest)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A user's own table: its label (and, for uplift, the randomised assignment) and how to read it."""

    path: Path
    target: str
    positive: str | None = None  # the label value that is the event; needed unless labels are 0/1 or true/false
    treatment: str | None = None
    id_columns: list[str] | None = None
    date_column: str | None = None
    name: str | None = None  # the registered name; by default the file's
    test_share: float = 0.2  # held out (the latest rows when dated, a random share otherwise)

    @property
    def registered(self) -> str:
        """Never the simulated model's name: a table's model must not compete with it or be served as it."""
        return self.name or self.path.stem

    def dataset(self) -> Dataset:
        return datasets.from_table(self.path, self.target, self.id_columns, self.date_column, self.test_share,
                                   positive=self.positive)


def train_binary(ds: Dataset, registered_name: str, settings: Settings, force: bool = False,
                 params: dict | None = None, review_capacity: float | None = None) -> TrainResult:
    """Train one binary model, log everything a data scientist compares, register it, run the gate."""
    mlflow.set_experiment(experiment_id=experiment(registered_name, settings))
    candidate = fit_binary(ds, registered_name, params, review_capacity)
    return record(candidate, ds, {"split": ds.split}, registered_name, "oot_auc", force)


def train_table_binary(ds: Dataset, name: str, settings: Settings, force: bool = False,
                       review_capacity: float | None = None) -> TrainResult:
    """A user's table: the LightGBM setting chosen by cross-validation on the training rows, fitted and
    registered only if it beats the plain baselines there; the comparison is logged either way."""
    spec = FeatureSpec.fit(ds.X_train, exclude=ds.exclude)
    selection = select(spec, spec.to_matrix(ds.X_train), ds.y_train)
    mlflow.set_experiment(experiment_id=experiment(name, settings))
    candidate = fit_binary(ds, name, selection.params, review_capacity)
    candidate.tables["tables/cv_comparison.csv"] = selection.comparison
    candidate.metrics.update({f"cv_auc_{c}": float(v) for c, v in selection.comparison["cv_auc"].items()})
    candidate.tags.update(selected_setting=selection.chosen, beats_baselines=str(selection.beats_baselines))
    if not selection.beats_baselines:
        log_candidate(candidate, {"split": ds.split, "registered": "False"}, ds)
        table = selection.comparison["cv_auc"].round(4).to_dict()
        raise ValueError(f"the best LightGBM setting does not beat the baselines in {FOLDS}-fold cross-validation "
                         f"on the training rows ({table}): nothing registered; the comparison is logged")
    return record(candidate, ds, {"split": ds.split}, name, "oot_auc", force)


def response_data(settings: Settings, dates: SnapshotDates | None, table: Table | None) -> UpliftData:
    if table is None:
        if dates is None:
            raise ValueError("training on the snapshots needs their dates")
        return datasets.response(settings, dates)
    if not table.treatment:
        raise ValueError("training response on a table needs its treatment column (--treatment)")
    return datasets.response_table(table.path, table.target, table.treatment, table.positive, table.test_share)


def train_response(settings: Settings, dates: SnapshotDates | None, force: bool = False,
                   table: Table | None = None) -> TrainResult:
    """Compare uplift learners and a plain response-propensity model; register the best learner by OOT Qini."""
    name = table.registered if table else MODEL_NAMES["response"]
    data = response_data(settings, dates, table)
    ds = data.ds
    mlflow.set_experiment(experiment_id=experiment(name, settings))
    tags = {"split": ds.split, "data": "table" if table else "simulated", "comparison": uuid.uuid4().hex,
            ROWS_TAG: rows_digest(ds)}
    candidates = fit_uplift(data, name, baseline=table is not None)
    cv = table_cv(data, candidates) if table else None
    run_ids = [log_candidate(c, tags) for c in candidates]
    learners = [(run_id, c) for run_id, c in zip(run_ids, candidates)
                if c.scorer is not None and c.tags.get("role") != "baseline"]
    # A table's learner by its cross-validated Qini on the training rows; the snapshots' by the
    # out-of-time Qini, as their test rows are a later window the learner never saw.
    choose = "cv_qini" if cv is not None else "oot_qini"
    best_run, best = max(learners, key=lambda rc: rc[1].metrics[choose])
    if cv is not None and not best.metrics["cv_qini"] > cv.loc[BASELINE, "cv_qini"]:
        raise ValueError(f"{name}: no uplift learner beats the plain two-model LightGBM in {CV_FOLDS}-fold "
                         f"cross-validation on the training rows ({cv['cv_qini'].round(5).to_dict()}): "
                         "nothing registered; the comparison is logged in every learner's run")
    comparison = pd.DataFrame({c.params["learner"]: c.metrics for c in candidates}).T
    with mlflow.start_run(run_id=best_run):
        mlflow.set_tag("selected", "True")
        # Inputs once, in the registered model's run: the other runs share them (tag "comparison"), and
        # MLflow's schema inference costs seconds per run on a few thousand rows.
        log_inputs(ds, data.target)
        mlflow.log_text(comparison.to_csv(), "tables/learners.csv")
    version, decision = register(best_run, best, ds, name, "oot_qini", force)
    return TrainResult(best_run, version, best.metrics, decision, best.scorer, best.test_scores)


def table_cv(data: UpliftData, candidates: list[Candidate]) -> pd.DataFrame:
    """The learners' and the baseline's cross-validated Qini, put in each candidate's metrics and tables."""
    spec = next(c.scorer.spec for c in candidates if c.scorer is not None)
    cv = cv_qini(data, spec, spec.to_matrix(data.ds.X_train))
    for c in candidates:
        c.tables["tables/cv_comparison.csv"] = cv
        if c.params["learner"] in cv.index:
            c.metrics["cv_qini"] = float(cv.loc[c.params["learner"], "cv_qini"])
    return cv


def train_credit(settings: Settings, dates: SnapshotDates | None, force: bool = False,
                 table: Table | None = None) -> TrainResult:
    """Challenger first, then the scorecard: fit, validate out-of-time, log, register, gate on OOT AUC."""
    name = table.registered if table else MODEL_NAMES["credit"]
    ds = table.dataset() if table else datasets.credit(settings, dates)
    mlflow.set_experiment(experiment_id=experiment(name, settings))
    challenger, card = fit_credit(ds, name)
    challenger_run = log_candidate(challenger, {"split": ds.split}, ds)
    register(challenger_run, challenger, ds, None, "oot_auc")
    if table:
        card_beats_baseline(card, ds, name)
    result = record(card, ds, {"split": ds.split, "challenger_run_id": challenger_run}, name, "oot_auc", force)
    log.info("%s v%s: scorecard OOT AUC %.4f, LightGBM challenger %.4f", name, result.version,
             card.metrics["oot_auc"], challenger.metrics["oot_auc"])
    return result


def card_beats_baseline(card: Candidate, ds: Dataset, name: str) -> None:
    """A table's card, compared in cross-validation on the training rows, goes on to registration only
    if it beats the one-hot logistic regression; the comparison is in its run either way."""
    spec = card.scorer.spec
    table, beats = compare_card(spec, spec.to_matrix(ds.X_train), ds.y_train,
                                lambda X, y: fit_scorecard(X, y, spec)[0])
    card.tables["tables/cv_comparison.csv"] = table
    card.metrics.update({f"cv_auc_{c}": float(v) for c, v in table["cv_auc"].items()})
    card.tags["beats_baselines"] = str(beats)
    if not beats:
        log_candidate(card, {"split": ds.split, "registered": "False"}, ds)
        raise ValueError(f"{name}: the scorecard does not beat the one-hot logistic regression in {FOLDS}-fold "
                         f"cross-validation on the training rows ({table['cv_auc'].round(4).to_dict()}): "
                         "nothing registered; the comparison is logged")


def train_one(model: str, settings: Settings, dates: SnapshotDates | None, force: bool = False,
              table: Table | None = None) -> TrainResult:
    """The job of one model by its CLI name: on the snapshots, or on a user's own table."""
    if model == "response":
        return train_response(settings, dates, force, table)
    if model == "credit":
        return train_credit(settings, dates, force, table)
    capacity = settings.review_capacity if model == "abuse" else None
    if table:
        return train_table_binary(table.dataset(), table.registered, settings, force, capacity)
    ds = getattr(datasets, model)(settings, dates)
    return train_binary(ds, MODEL_NAMES[model], settings, force=force, review_capacity=capacity)
