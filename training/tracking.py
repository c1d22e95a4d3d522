"""Everything recorded in MLflow: tracking set-up, a candidate's run (params, inputs, figures, tables),
the logged model, the registry and the champion/challenger gate."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema

from scoring.artifacts import CHECKSUMS, write_checksums
from scoring.drift import REFERENCE, Reference, build_reference
from scoring.forecast import FORECAST, ForecastModel, StoredForecast
from scoring.pyfunc import MODEL_CONFIG, ScoringModel, score_frame
from scoring.registry import CHALLENGER, CHAMPION
from scoring.scorer import Scorer
from scoring.settings import Settings
from training.data.datasets import Dataset
from training.fit.candidate import Candidate

log = logging.getLogger(__name__)
# What the registry answers for a model without a champion: unknown model, or no such alias.
NO_CHAMPION = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}
# The run tag holding the digest of the rows a candidate was evaluated on.
ROWS_TAG = "eval_rows"
# Gate metrics where lower is better (errors); every other gate metric is better higher.
LOWER_IS_BETTER = frozenset({"backtest_smape"})


def setup_tracking(settings: Settings) -> None:
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


# MLflow 3's UI opens an experiment without this tag in its GenAI view; these hold training runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment(name: str, settings: Settings) -> str:
    """The experiment of one model, created with its artifacts under mlruns/, tagged as model training."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return mlflow.create_experiment(name, artifact_location=f"{settings.artifact_root}/{name}",
                                        tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if exp.tags.get(key) != value:  # one made before the tag was set
            MlflowClient().set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    challenger_value: float
    champion_value: float | None
    champion_version: str | None


def champion_metric(client: MlflowClient, name: str, metric: str) -> tuple[str, float] | None:
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        # No such model, or no alias yet. Any other failure (the store unreachable) must not read
        # as "no champion", which would promote whatever comes next over the real one.
        if e.error_code in NO_CHAMPION:
            return None
        raise
    value = client.get_run(mv.run_id).data.metrics.get(metric)
    worst = float("inf") if metric in LOWER_IS_BETTER else float("-inf")
    return (str(mv.version), value) if value is not None else (str(mv.version), worst)


def rows_digest(ds: Dataset) -> str:
    """A fingerprint of the evaluation rows (features, index and labels): equal digests, comparable metrics."""
    h = hashlib.sha256(pd.util.hash_pandas_object(ds.X_test, index=True).to_numpy().tobytes())
    h.update(np.asarray(ds.y_test, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def champion_rows(client: MlflowClient, name: str) -> str | None:
    """The evaluation-rows digest the champion's run recorded (None for runs from before it was recorded)."""
    mv = client.get_model_version_by_alias(name, CHAMPION)
    return client.get_run(mv.run_id).data.tags.get(ROWS_TAG)


def gate(name: str, version: str, metric: str, value: float, force: bool = False,
         rows: str | None = None) -> GateDecision:
    """Make `version` the champion if it beats the current one on `metric` (higher is better, lower for
    the metrics in LOWER_IS_BETTER).

    Given the digest of the rows the value was measured on, a champion measured on other rows (a
    new simulated world, a changed table) is not compared: the new version replaces it, and the
    reason says so."""
    client = MlflowClient()
    current = champion_metric(client, name, metric)
    if current is None:
        decision = GateDecision(True, "first model: becomes champion", value, None, None)
    elif rows is not None and champion_rows(client, name) != rows:
        decision = GateDecision(True, f"champion v{current[0]} was evaluated on other rows: not comparable, replaced",
                                value, current[1], current[0])
    elif force:
        decision = GateDecision(True, "forced promotion", value, current[1], current[0])
    elif (value < current[1]) if metric in LOWER_IS_BETTER else (value > current[1]):
        decision = GateDecision(True, f"beats champion v{current[0]} on {metric}", value, current[1], current[0])
    else:
        decision = GateDecision(False, f"does not beat champion v{current[0]} on {metric}", value, current[1], current[0])
    client.set_registered_model_alias(name, CHAMPION if decision.promoted else CHALLENGER, version)
    mlflow.set_tags({"gate.promoted": str(decision.promoted), "gate.reason": decision.reason, "gate.metric": metric})
    mlflow.log_metric("gate_challenger_value", value)
    if decision.champion_value is not None and np.isfinite(decision.champion_value):
        mlflow.log_metric("gate_champion_value", decision.champion_value)
    log.info("%s v%s: %s (%s %.4f vs %s)", name, version, decision.reason, metric, value, decision.champion_value)
    return decision


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    decision: GateDecision
    scorer: Scorer
    test_scores: np.ndarray


def log_inputs(ds: Dataset, y_name: str) -> None:
    for context, X, y in (("training", ds.X_train, ds.y_train), ("evaluation", ds.X_test, ds.y_test)):
        frame = X.assign(**{y_name: y})
        data = mlflow.data.from_pandas(frame, source=ds.sources["train" if context == "training" else "test"],
                                       name=f"{ds.name}_{context}", targets=y_name)
        mlflow.log_input(data, context=context)


def signature(scorer: Scorer, example: pd.DataFrame) -> ModelSignature:
    """Inputs as callers send them: every feature by name, of any type (the model casts them: a
    table's int64, bool, nullable int or text columns alike, where a declared double refuses an
    int64), required unless training saw it missing; outputs as the model answers."""
    inputs = Schema([ColSpec(AnyType(), c, required=c not in scorer.spec.optional) for c in scorer.spec.names])
    return ModelSignature(inputs, infer_signature(example, score_frame(scorer, example)).outputs)


def reference_of(scorer: Scorer, ds: Dataset) -> Reference:
    """The distribution of the training rows, kept beside the model so that the service can watch
    drift without training data (an uplift model's score: the best arm's uplift)."""
    return build_reference(scorer, ds.X_train, f"{ds.name} training rows; {ds.split}", population=ds.population)


def log_scorer(scorer: Scorer, example: pd.DataFrame, registered_name: str | None,
               reference: Reference | None = None) -> mlflow.models.model.ModelInfo:
    """Log a scorer as a pyfunc with its artifacts (and its training rows' reference), their checksum
    manifest, signature and input example."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = scorer.save(folder)
        if reference is not None:
            paths[REFERENCE] = folder / f"{REFERENCE}.json"
            paths[REFERENCE].write_text(json.dumps(reference.to_dict()))
        paths[CHECKSUMS] = write_checksums(paths, folder)
        mlflow.log_dict(json.loads(paths[CHECKSUMS].read_text()), "checksums.json")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=ScoringModel(),
            artifacts={k: str(v) for k, v in paths.items()},
            signature=signature(scorer, example),
            model_config=MODEL_CONFIG,
            input_example=example,
            registered_model_name=registered_name,
        )


def log_forecast(stored: StoredForecast, registered_name: str) -> mlflow.models.model.ModelInfo:
    """Log a stored forecast as a pyfunc (ForecastModel) with its checksum manifest, in the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {FORECAST: stored.write(folder / f"{FORECAST}.json")}
        paths[CHECKSUMS] = write_checksums(paths, folder)
        example = pd.DataFrame({"days": [min(14, stored.horizon)]})
        return mlflow.pyfunc.log_model(
            name="model", python_model=ForecastModel(), artifacts={k: str(v) for k, v in paths.items()},
            signature=infer_signature(example, stored.frame(int(example["days"].iloc[0]))),
            input_example=example, registered_model_name=registered_name,
        )


def log_candidate(c: Candidate, tags: dict[str, str], ds: Dataset | None = None, target: str = "target") -> str:
    """One MLflow run of a candidate: tags, params, metrics, figures, tables (and the inputs, given a
    dataset); the run id. The model itself is logged by `register`, only for the one kept."""
    with mlflow.start_run(run_name=c.run_name) as run:
        mlflow.set_tags({"git_commit": git_commit(), **tags, **c.tags})
        if ds is not None:
            mlflow.set_tag(ROWS_TAG, rows_digest(ds))
        mlflow.log_params(c.params)
        if ds is not None:
            log_inputs(ds, target)
        mlflow.log_metrics(c.metrics)
        for name, fig in c.figures.items():
            mlflow.log_figure(fig, f"plots/{name}.png")
            plt.close(fig)
        for path, table in c.tables.items():
            mlflow.log_text(table.to_csv(), path)
        for path, doc in c.dicts.items():
            mlflow.log_dict(doc, path)
        return run.info.run_id


def register(run_id: str, c: Candidate, ds: Dataset, name: str | None, metric: str,
             force: bool = False) -> tuple[str, GateDecision | None]:
    """Log the candidate's model in its run, with five test rows as its input example and its training
    rows' reference; registered under `name` and gated on `metric` when named (against the champion
    only if it was evaluated on the same rows: see `gate`)."""
    example = c.scorer.spec.frame(ds.X_test.head(5))
    with mlflow.start_run(run_id=run_id):
        info = log_scorer(c.scorer, example, name, reference_of(c.scorer, ds) if name else None)
        if name is None:
            return "", None
        version = str(info.registered_model_version)
        rows = MlflowClient().get_run(run_id).data.tags.get(ROWS_TAG)
        return version, gate(name, version, metric, c.metrics[metric], force=force, rows=rows)


def record(c: Candidate, ds: Dataset, tags: dict[str, str], name: str, metric: str, force: bool = False,
           target: str = "target") -> TrainResult:
    """A candidate's run with its inputs and model, registered under `name` and gated on `metric`."""
    run_id = log_candidate(c, tags, ds, target)
    version, decision = register(run_id, c, ds, name, metric, force)
    return TrainResult(run_id, version, c.metrics, decision, c.scorer, c.test_scores)
