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
# The build's self-check expands from at most this many of the top_value_20pct seed (a 1M-user base's
# whole seed): a 10M base's 2M seeds would be 2M queries, minutes and gigabytes for one figure.
SELFCHECK_MAX_SEEDS = 200_000


def build_lookalike(settings: Settings) -> dict[str, float]:
    """Embed the serving snapshot, index it, save beside it and log the version to MLflow."""
    snapshot = Snapshot.load(settings.snapshot_dir)
    started = time.perf_counter()
    lk = Lookalike.build(snapshot)
    build_s = time.perf_counter() - started
    folder = settings.snapshot_dir / "lookalike"
    paths = lk.save(folder)
    write_checksums(paths, folder)
    n = len(snapshot.ids)
    figures = {"index_build_s": build_s, "users": float(n), "dims": float(lk.index.d),
               "index_gib": paths["index"].stat().st_size / 2**30}
    try:
        seed = id_array(load_seed(seed_folder(settings), "top_value_20pct"))
        rows, found = lk.rows(seed)
        rows = rows[found]
        if len(rows) > SELFCHECK_MAX_SEEDS:
            rows = np.sort(np.random.default_rng(0).choice(rows, SELFCHECK_MAX_SEEDS, replace=False))
        check = expand(lk, rows, k=max(1, n // 10), allowed=np.ones(n, bool))
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
