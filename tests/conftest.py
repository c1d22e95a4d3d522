"""Shared fixtures: one small simulated world per session, in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.pipeline import (SnapshotDates, build_lookalike, build_serving_snapshot, build_snapshot, default_dates,
                               run_simulation)
from training.seeds import materialise
from training.settings import Settings
from training.simulate import SimConfig

SIM = SimConfig(users=20_000, days=180, seed=7)


def make_settings(root: Path) -> Settings:
    return Settings(data_dir=root / "data", mlruns_dir=root / "mlruns", keys_file=root / "keys.json",
                    audit_log=root / "audit.log")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A simulated warehouse with train, out-of-time and serving snapshots, seeds and lookalike index."""
    s = make_settings(tmp_path_factory.mktemp("world"))
    run_simulation(SIM, s, progress=False)
    dates = default_dates(s)
    build_snapshot(s, dates.train)
    build_snapshot(s, dates.oot)
    build_serving_snapshot(s, dates.serving)
    materialise(s)
    build_lookalike(s)
    return s


@pytest.fixture(scope="session")
def dates(settings: Settings) -> SnapshotDates:
    return default_dates(settings)


@pytest.fixture(scope="session")
def tracking(settings: Settings) -> Settings:
    """MLflow pointed at a sqlite store in the session's temporary folder."""
    import os

    from training.registry import setup_tracking

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    setup_tracking(settings)
    return settings


@pytest.fixture(scope="session")
def trained(tracking: Settings, dates: SnapshotDates) -> dict:
    """Churn and promo-abuse champions trained on the session's world."""
    from training import datasets
    from training.train import train_binary

    out = {}
    for name, registered in (("churn", "churn"), ("abuse", "promo_abuse")):
        ds = getattr(datasets, name)(tracking, dates)
        capacity = tracking.review_capacity if name == "abuse" else None
        out[name] = (ds, train_binary(ds, registered, tracking, review_capacity=capacity))
    return out


@pytest.fixture(scope="session")
def all_champions(trained, tracking: Settings, dates: SnapshotDates) -> Settings:
    """Champions of all four models in the session's registry."""
    from training.scorecard import train_credit
    from training.uplift import train_response

    train_response(tracking, dates)
    train_credit(tracking, dates)
    return tracking
