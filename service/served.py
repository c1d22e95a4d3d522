"""What the service holds per model: the verified champion, its layout and the snapshot in its feature order."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import bentoml
import mlflow
import numpy as np

from scoring.answer import Layout, rows
from scoring.drift import Reference
from scoring.forecast import StoredForecast
from scoring.population import Population
from scoring.pyfunc import score_frame
from scoring.registry import FORECAST_MODEL
from scoring.scorer import TOP_REASONS, Scorer
from scoring.snapshot import FeatureRows, Snapshot


class NotReady(RuntimeError):
    """A model or the snapshot failed to load or verify."""


class Preparing(NotReady):
    """Not ready yet, but on its way: `retry_after` is whole seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class ServedModel:
    endpoint: str
    registry_name: str
    version: str
    run_id: str
    trained_at: str
    metrics: dict[str, float]
    scorer: Scorer
    features: FeatureRows | None = field(default=None, repr=False)  # the snapshot's rows in its feature order
    reference: Reference | None = None  # the training rows' distribution, for drift
    # Per snapshot row: inside the population the model was trained on (None: every user is).
    in_population: np.ndarray | None = field(default=None, repr=False)

    @property
    def population(self) -> Population | None:
        return self.reference.population if self.reference is not None else None

    def predict_all(self) -> np.ndarray:
        """The model's score of every snapshot user, computed a chunk of rows at a time."""
        return self.features.map(self.scorer.predict)

    @cached_property
    def identity(self) -> dict[str, str]:
        return {"name": self.registry_name, "version": self.version, "run_id": self.run_id}

    @cached_property
    def layout(self) -> Layout:
        return Layout.of(self.scorer, self.identity, ring_size=self.endpoint == "abuse")


def load_served_model(endpoint: str, bento_model: bentoml.Model, snapshot: Snapshot | None) -> ServedModel:
    """Load an imported model, verify its checksums and warm it up on the logged input example; without
    a snapshot (a model trained from a user's own table), it scores records only."""
    path = Path(bento_model.path_of("mlflow_model"))
    pyfunc = bentoml.mlflow.load_model(bento_model)  # runs load_context, which verifies checksums
    python_model = pyfunc.unwrap_python_model()
    scorer = python_model.scorer
    example = mlflow.models.Model.load(str(path)).load_input_example(str(path))
    if example is None or len(score_frame(scorer, example)) != len(example):
        raise NotReady(f"{endpoint}: warm-up on the logged input example failed")
    labels, meta = bento_model.info.labels, bento_model.info.metadata
    served = ServedModel(
        endpoint=endpoint, registry_name=labels["registry_name"], version=labels["version"], run_id=labels["run_id"],
        trained_at=meta.get("trained_at", ""), metrics=json.loads(meta.get("metrics", "{}")), scorer=scorer,
        features=snapshot.features_for(scorer.spec) if snapshot is not None else None,
        reference=python_model.reference,
    )
    if snapshot is not None and served.population is not None:
        served.in_population = served.population.contains(snapshot.column(served.population.feature))
    # The serving path too (its per-leaf attribution tables are built on first use), so that the
    # first caller does not pay for it.
    if len(rows(served.layout, scorer.spec.to_matrix(example), TOP_REASONS)) != len(example):
        raise NotReady(f"{endpoint}: warm-up of the serving path failed")
    return served


@dataclass
class ServedForecast:
    version: str
    run_id: str
    trained_at: str
    metrics: dict[str, float]
    stored: StoredForecast

    @property
    def identity(self) -> dict[str, str]:
        return {"name": FORECAST_MODEL, "version": self.version, "run_id": self.run_id}

    def answer(self, days: int) -> dict:
        """The first `days` days of the stored forecast with the model's identity; ValueError outside 1..horizon."""
        ahead = self.stored.ahead(days)
        return {"model": {**self.identity, "forecaster": self.stored.model},
                "origin": self.stored.origin, "level": self.stored.level, "horizon": self.stored.horizon,
                "days": [asdict(d) for d in ahead]}


def load_served_forecast(bento_model: bentoml.Model) -> ServedForecast:
    """Load the imported forecast, its checksums verified (in load_context) and its input example answered."""
    path = Path(bento_model.path_of("mlflow_model"))
    pyfunc = bentoml.mlflow.load_model(bento_model)
    example = mlflow.models.Model.load(str(path)).load_input_example(str(path))
    if example is None or len(pyfunc.predict(example)) != int(example["days"].max()):
        raise NotReady(f"{FORECAST_MODEL}: warm-up on the logged input example failed")
    labels, meta = bento_model.info.labels, bento_model.info.metadata
    return ServedForecast(labels["version"], labels["run_id"], meta.get("trained_at", ""),
                          json.loads(meta.get("metrics", "{}")), pyfunc.unwrap_python_model().forecast)
