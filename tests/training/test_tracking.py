"""The champion/challenger gate decides which registered version the service serves: the first
version becomes @champion, a better one takes the alias, a worse one only gets @challenger (unless
forced), and the decision is written on the candidate's run. Run against a real MLflow sqlite store
in a temporary folder (one store for the module, since creating its tables takes seconds; each test
registers its own model name). Model versions are registered without logging real models."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking import fluent
from mlflow.tracking._tracking_service import utils as tracking_utils

from scoring.registry import CHALLENGER, CHAMPION
from scoring.settings import Settings
from training.tracking import ROWS_TAG, champion_metric, experiment, gate, setup_tracking

METRIC = "oot_auc"


def isolate_mlflow_uris(mp: pytest.MonkeyPatch) -> None:
    """Undo, at teardown, what set_tracking_uri/set_registry_uri/set_experiment change: their globals
    and env vars (the session's own store and experiment must come back for the tests after these)."""
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        mp.setenv(var, "placeholder")  # records the original value (or its absence) for teardown
        mp.delenv(var)
    mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mp.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    mp.setattr(fluent, "_active_experiment_id", None)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        isolate_mlflow_uris(mp)
        settings = Settings(mlruns_dir=root / "mlruns", _env_file=None)
        setup_tracking(settings)
        exp_id = experiment("gate-tests", settings)
        mlflow.set_experiment(experiment_id=exp_id)
        yield settings, exp_id
        assert mlflow.active_run() is None


@pytest.fixture
def name(store, request):
    """A registered model of this test's own in the shared store."""
    model = f"model_{request.node.name}"
    MlflowClient().create_registered_model(model)
    return model


def new_version(name: str, exp_id: str, value: float | None, metric: str = METRIC) -> tuple[str, str]:
    """A finished run with `metric` logged (unless None) and a model version registered from it."""
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric(metric if value is not None else "other_metric", 0.5 if value is None else value)
    mv = MlflowClient().create_model_version(name, source=run.info.artifact_uri, run_id=run.info.run_id)
    return run.info.run_id, str(mv.version)


def gated(name: str, store, value: float | None, force: bool = False, gate_value: float | None = None):
    """Register a version whose run logged `value`, then gate it inside its run as `register` does."""
    run_id, version = new_version(name, store[1], value)
    with mlflow.start_run(run_id=run_id):
        decision = gate(name, version, METRIC, value if gate_value is None else gate_value, force=force)
    return decision, run_id, version


def alias(name: str, which: str) -> str:
    return str(MlflowClient().get_model_version_by_alias(name, which).version)


def run_data(run_id: str):
    return MlflowClient().get_run(run_id).data


# --- set-up -----------------------------------------------------------------------------------

def test_setup_tracking_points_tracking_and_registry_at_the_sqlite_store(store):
    settings, exp_id = store
    uri = f"sqlite:///{(settings.mlruns_dir).resolve()}/mlflow.db"
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    assert (settings.mlruns_dir / "mlflow.db").is_file()
    exp = mlflow.get_experiment(exp_id)
    assert exp.name == "gate-tests" and exp.artifact_location == f"{settings.artifact_root}/gate-tests"
    assert experiment("gate-tests", settings) == exp_id  # found again, not created twice
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on its runs


def test_setup_tracking_honours_mlflow_tracking_uri(store, tmp_path, monkeypatch):
    isolate_mlflow_uris(monkeypatch)
    other = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    setup_tracking(Settings(mlruns_dir=tmp_path / "mlruns", _env_file=None))
    assert mlflow.get_tracking_uri() == other and mlflow.get_registry_uri() == other


# --- champion_metric --------------------------------------------------------------------------

def test_champion_metric_is_none_without_a_champion(name, store):
    assert champion_metric(MlflowClient(), "no_such_model", METRIC) is None
    new_version(name, store[1], 0.7)  # a version, but no alias yet
    assert champion_metric(MlflowClient(), name, METRIC) is None


def test_champion_metric_reads_the_champion_run(name, store):
    _, v1 = new_version(name, store[1], 0.7)
    MlflowClient().set_registered_model_alias(name, CHAMPION, v1)
    version, value = champion_metric(MlflowClient(), name, METRIC)
    assert str(version) == v1 and value == pytest.approx(0.7)
    assert champion_metric(MlflowClient(), name, "missing_metric")[1] == -math.inf


# --- gate -------------------------------------------------------------------------------------

def test_first_version_becomes_champion(name, store):
    decision, run_id, v1 = gated(name, store, 0.70)
    assert decision.promoted and decision.reason == "first model: becomes champion"
    assert decision.challenger_value == 0.70
    assert decision.champion_value is None and decision.champion_version is None
    assert alias(name, CHAMPION) == v1
    data = run_data(run_id)
    assert data.tags["gate.promoted"] == "True"
    assert data.tags["gate.reason"] == "first model: becomes champion"
    assert data.tags["gate.metric"] == METRIC
    assert data.metrics["gate_challenger_value"] == pytest.approx(0.70)
    assert "gate_champion_value" not in data.metrics


def test_better_version_is_promoted_and_the_alias_moves(name, store):
    _, _, v1 = gated(name, store, 0.70)
    decision, run_id, v2 = gated(name, store, 0.75)
    assert decision.promoted and decision.reason == f"beats champion v{v1} on {METRIC}"
    assert decision.champion_value == pytest.approx(0.70) and str(decision.champion_version) == v1
    assert alias(name, CHAMPION) == v2
    data = run_data(run_id)
    assert data.tags["gate.promoted"] == "True" and data.tags["gate.reason"] == f"beats champion v{v1} on {METRIC}"
    assert data.metrics["gate_challenger_value"] == pytest.approx(0.75)
    assert data.metrics["gate_champion_value"] == pytest.approx(0.70)


def test_worse_version_becomes_challenger_and_the_champion_stays(name, store):
    _, _, v1 = gated(name, store, 0.80)
    decision, run_id, v2 = gated(name, store, 0.75)
    assert not decision.promoted and decision.reason == f"does not beat champion v{v1} on {METRIC}"
    assert decision.champion_value == pytest.approx(0.80)
    assert alias(name, CHAMPION) == v1 and alias(name, CHALLENGER) == v2
    data = run_data(run_id)
    assert data.tags["gate.promoted"] == "False"
    assert data.tags["gate.reason"] == f"does not beat champion v{v1} on {METRIC}"
    assert data.tags["gate.metric"] == METRIC
    assert data.metrics["gate_challenger_value"] == pytest.approx(0.75)
    assert data.metrics["gate_champion_value"] == pytest.approx(0.80)


def test_a_tie_does_not_promote(name, store):
    _, _, v1 = gated(name, store, 0.80)
    decision, _, v2 = gated(name, store, 0.80)
    assert not decision.promoted
    assert alias(name, CHAMPION) == v1 and alias(name, CHALLENGER) == v2


def test_the_champion_is_compared_on_its_run_metric_not_its_gate_value(name, store):
    # v1's run logged 0.60 although it was gated with 0.90: the gate reads the run.
    gated(name, store, 0.60, gate_value=0.90)
    decision, _, v2 = gated(name, store, 0.65)
    assert decision.promoted and decision.champion_value == pytest.approx(0.60)
    assert alias(name, CHAMPION) == v2


def test_force_promotes_a_worse_version(name, store):
    _, _, v1 = gated(name, store, 0.80)
    decision, run_id, v2 = gated(name, store, 0.60, force=True)
    assert decision.promoted and decision.reason == "forced promotion"
    assert decision.champion_value == pytest.approx(0.80) and str(decision.champion_version) == v1
    assert alias(name, CHAMPION) == v2
    data = run_data(run_id)
    assert data.tags["gate.promoted"] == "True" and data.tags["gate.reason"] == "forced promotion"
    assert data.metrics["gate_champion_value"] == pytest.approx(0.80)


def test_a_champion_without_the_metric_counts_as_minus_infinity(name, store):
    _, v1 = new_version(name, store[1], None)  # its run logged only another metric
    MlflowClient().set_registered_model_alias(name, CHAMPION, v1)
    decision, run_id, v2 = gated(name, store, -5.0)  # even a negative value beats it
    assert decision.promoted and decision.reason == f"beats champion v{v1} on {METRIC}"
    assert decision.champion_value == -math.inf
    assert alias(name, CHAMPION) == v2
    # −inf is not logged as the champion's value.
    assert "gate_champion_value" not in run_data(run_id).metrics


def test_a_champion_evaluated_on_other_rows_is_replaced_not_compared(store, name):
    exp_id = store[1]
    run_id, version = new_version(name, exp_id, 0.9)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag(ROWS_TAG, "rows-a")
        gate(name, version, METRIC, 0.9, rows="rows-a")
    worse_same_rows, v2 = new_version(name, exp_id, 0.7)
    with mlflow.start_run(run_id=worse_same_rows):
        assert not gate(name, v2, METRIC, 0.7, rows="rows-a").promoted
    worse_other_rows, v3 = new_version(name, exp_id, 0.7)
    with mlflow.start_run(run_id=worse_other_rows):
        decision = gate(name, v3, METRIC, 0.7, rows="rows-b")
    assert decision.promoted and "other rows" in decision.reason
    assert alias(name, CHAMPION) == v3


def test_the_gate_takes_a_lower_backtest_smape_as_better(name, store):
    metric = "backtest_smape"

    def gated_on_error(value: float):
        run_id, version = new_version(name, store[1], value, metric)
        with mlflow.start_run(run_id=run_id):
            return gate(name, version, metric, value), version

    _, v1 = gated_on_error(0.20)
    worse, _ = gated_on_error(0.25)
    assert not worse.promoted and alias(name, CHAMPION) == v1
    better, v3 = gated_on_error(0.15)
    assert better.promoted and better.reason == f"beats champion v{v1} on {metric}"
    assert alias(name, CHAMPION) == v3
