"""Wiring of the offline stages: simulate → warehouse → point-in-time snapshots."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date

import numpy as np
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
    history: tuple[date, ...] = ()  # earlier training snapshots, newest first


def default_dates(settings: Settings) -> SnapshotDates:
    """Train and out-of-time snapshots one label window apart, each with a full window after it, and up to
    `settings.history_snapshots` earlier ones (back to the first campaign) whose windows add training rows."""
    with warehouse.connect(settings) as con:
        end = warehouse.data_end(con)
        first = con.execute("SELECT min(send_date) FROM campaigns").fetchone()[0]
    w = pd.Timedelta(days=settings.label_window_days)
    train = end - 2 * w
    earlier = [train - k * w for k in range(1, settings.history_snapshots + 1)]
    history = tuple(d.date() for d in earlier if first is not None and d > pd.Timestamp(first))
    return SnapshotDates(train=train.date(), oot=(end - w).date(), serving=end.date(), history=history)


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


def build_lookalike(settings: Settings) -> dict[str, float]:
    """Embed the serving snapshot, index it, save beside it and log the version to MLflow."""
    import time

    import mlflow

    from training.lookalike import Lookalike, expand
    from training.models import write_checksums
    from training.registry import experiment, git_commit, setup_tracking
    from training.seeds import load_seed, seed_folder

    frame = pd.read_parquet(settings.snapshot_dir / "features.parquet").sort_index()
    started = time.perf_counter()
    lk = Lookalike.build(frame)
    build_s = time.perf_counter() - started
    folder = settings.snapshot_dir / "lookalike"
    paths = lk.save(folder)
    write_checksums(paths, folder)
    figures = {"index_build_s": build_s, "users": float(len(frame)), "dims": float(lk.vectors.shape[1])}
    try:
        seed = load_seed(seed_folder(settings), "top_value_20pct").to_numpy()
        rows, found = lk.rows(seed)
        check = expand(lk, frame, rows[found], k=max(1, len(frame) // 10), allowed=np.ones(len(frame), bool))
        figures.update(selfcheck_recall=check.recall_heldout, selfcheck_random=check.recall_random)
    except KeyError:
        log.info("no top_value_20pct seed yet: run `python -m training seeds` for the self-check figure")
    setup_tracking(settings)
    mlflow.set_experiment(experiment_id=experiment("lookalike", settings))
    manifest = json.loads((settings.snapshot_dir / "manifest.json").read_text())
    with mlflow.start_run(run_name=f"embedding-{manifest['as_of']}"):
        mlflow.set_tags({"git_commit": git_commit(), "snapshot_as_of": manifest["as_of"],
                         "snapshot_sha256": manifest["sha256"]["features.parquet"],
                         "index": type(lk.index).__name__})
        mlflow.log_metrics(figures)
        mlflow.log_artifact(str(paths["space"]), "embedding")
        mlflow.log_artifact(str(folder / "checksums.json"), "embedding")
    return figures
