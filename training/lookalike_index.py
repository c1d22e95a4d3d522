"""The lookalike index of the serving snapshot: embedded, indexed, self-checked, saved beside it, logged to MLflow."""

from __future__ import annotations

import json
import logging
import time

import mlflow
import numpy as np

from scoring.artifacts import write_checksums
from scoring.lookalike import Lookalike, expand
from scoring.seeds import load_seed, seed_folder
from scoring.settings import Settings
from scoring.snapshot import Snapshot, id_array
from training.tracking import experiment, git_commit, setup_tracking

log = logging.getLogger(__name__)


def build_lookalike(settings: Settings) -> dict[str, float]:
    """Embed the serving snapshot, index it, save beside it and log the version to MLflow."""
    snapshot = Snapshot.load(settings.snapshot_dir)
    started = time.perf_counter()
    lk = Lookalike.build(snapshot.frame)
    build_s = time.perf_counter() - started
    folder = settings.snapshot_dir / "lookalike"
    paths = lk.save(folder)
    write_checksums(paths, folder)
    n = len(snapshot.ids)
    figures = {"index_build_s": build_s, "users": float(n), "dims": float(lk.vectors.shape[1])}
    try:
        seed = id_array(load_seed(seed_folder(settings), "top_value_20pct"))
        rows, found = lk.rows(seed)
        check = expand(lk, snapshot, rows[found], k=max(1, n // 10), allowed=np.ones(n, bool))
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
