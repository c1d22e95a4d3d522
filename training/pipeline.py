"""Wiring of the offline stages: simulate → warehouse → point-in-time snapshots."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import date

import pandas as pd

from training import features, warehouse
from training.settings import Settings
from training.simulate import SimConfig, simulate

log = logging.getLogger(__name__)


def run_simulation(cfg: SimConfig, settings: Settings, progress: bool = True) -> dict[str, int]:
    world = simulate(cfg, progress=progress)
    warehouse.write_tables(world.tables, settings)
    warehouse.write_truth(world.truth, world.meta, settings)
    return {name: len(df) for name, df in world.tables.items()}


@dataclass(frozen=True)
class SnapshotDates:
    train: date
    oot: date
    serving: date


def default_dates(settings: Settings) -> SnapshotDates:
    """Train and out-of-time snapshots one label window apart, each with a full window after it."""
    with warehouse.connect(settings) as con:
        end = warehouse.data_end(con)
    w = pd.Timedelta(days=settings.label_window_days)
    return SnapshotDates(train=(end - 2 * w).date(), oot=(end - w).date(), serving=end.date())


def build_snapshot(settings: Settings, as_of: date, with_labels: bool = True) -> features.SnapshotPaths:
    paths = features.snapshot_paths(settings, as_of)
    paths.root.mkdir(parents=True, exist_ok=True)
    with warehouse.connect(settings) as con:
        if with_labels:
            end = warehouse.data_end(con)
            if pd.Timestamp(as_of) + pd.Timedelta(days=settings.label_window_days) > end:
                raise ValueError(
                    f"as-of {as_of} leaves no full {settings.label_window_days}-day label window before the data ends ({end.date()})"
                )
        feats = features.compute_features(con, as_of)
        feats.to_parquet(paths.features)
        if with_labels:
            features.compute_labels(con, as_of, settings.label_window_days).to_parquet(paths.labels)
            features.compute_response(con, as_of, settings.label_window_days).to_parquet(paths.response, index=False)
    features.write_manifest(paths, as_of, len(feats))
    return paths


def build_serving_snapshot(settings: Settings, as_of: date) -> None:
    """Features as of the end of the data: what the service looks users up in."""
    paths = build_snapshot(settings, as_of, with_labels=False)
    settings.snapshot_dir.mkdir(parents=True, exist_ok=True)
    for p in (paths.features, paths.manifest):
        shutil.copy2(p, settings.snapshot_dir / p.name)
