"""The MLflow registry side: tracking set-up and the champion/challenger gate."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# Endpoint / CLI name → registered model name.
MODEL_NAMES = {"churn": "churn", "abuse": "promo_abuse", "response": "marketing_response", "credit": "credit_features"}


def setup_tracking(settings: Settings) -> None:
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def experiment(name: str, settings: Settings) -> str:
    """The experiment of one model, created with its artifacts under mlruns/."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return mlflow.create_experiment(name, artifact_location=f"{settings.artifact_root}/{name}")
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
    except MlflowException:
        return None
    value = client.get_run(mv.run_id).data.metrics.get(metric)
    return (mv.version, value) if value is not None else (mv.version, float("-inf"))


def gate(name: str, version: str, metric: str, value: float, force: bool = False) -> GateDecision:
    """Make `version` the champion if it beats the current one on `metric` (higher is better)."""
    client = MlflowClient()
    current = champion_metric(client, name, metric)
    if current is None:
        decision = GateDecision(True, "first model: becomes champion", value, None, None)
    elif force:
        decision = GateDecision(True, "forced promotion", value, current[1], current[0])
    elif value > current[1]:
        decision = GateDecision(True, f"beats champion v{current[0]} on {metric}", value, current[1], current[0])
    else:
        decision = GateDecision(False, f"does not beat champion v{current[0]} on {metric}", value, current[1], current[0])
    client.set_registered_model_alias(name, CHAMPION if decision.promoted else CHALLENGER, version)
    mlflow.set_tags({"gate.promoted": str(decision.promoted), "gate.reason": decision.reason, "gate.metric": metric})
    mlflow.log_metric("gate_challenger_value", value)
    if decision.champion_value is not None and decision.champion_value != float("-inf"):
        mlflow.log_metric("gate_champion_value", decision.champion_value)
    log.info("%s v%s: %s (%s %.4f vs %s)", name, version, decision.reason, metric, value, decision.champion_value)
    return decision
