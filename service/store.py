"""Copy the registry's champions and the feature snapshot into the BentoML model store."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import bentoml
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from scoring.drift import PREVIOUS_PROFILE
from scoring.plan import OPT_OUTS_FILE
from scoring.registry import CHAMPION, FORECAST_MODEL, MODEL_NAMES, SNAPSHOT_MODEL
from scoring.settings import Settings
from scoring.snapshot import mapped_files

HEADLINE = ("oot_auc", "oot_ks", "oot_qini", "oracle_auc", "oracle_gap_auc", "qini_vs_oracle_ratio",
            "precision_at_capacity", "recall_at_capacity", "backtest_smape", "backtest_coverage",
            "smape_vs_naive_ratio")


def import_champion(client: MlflowClient, name: str) -> bentoml.Model:
    mv = client.get_model_version_by_alias(name, CHAMPION)
    run = client.get_run(mv.run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if k in HEADLINE}
    trained = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    return bentoml.mlflow.import_model(
        name,
        f"models:/{name}@{CHAMPION}",
        labels={"registry_name": name, "version": str(mv.version), "run_id": mv.run_id},
        metadata={"trained_at": trained, "metrics": json.dumps(metrics)},
    )


def import_snapshot(settings: Settings) -> bentoml.Model:
    manifest = json.loads((settings.snapshot_dir / "manifest.json").read_text())
    with bentoml.models.create(SNAPSHOT_MODEL, labels={"as_of": manifest["as_of"]},
                               metadata={"rows": manifest["rows"]}) as model:
        # Workers map the snapshot's matrix; its Parquet is copied only for a snapshot whose manifest has
        # no checksums of the matrix (built before it had one, or its writing failed): as Snapshot.load decides.
        mapped = mapped_files(settings.snapshot_dir, manifest["sha256"])
        for name in ("manifest.json", OPT_OUTS_FILE, *(mapped or ("features.parquet",))):
            if (settings.snapshot_dir / name).exists():  # opt-outs: snapshots built before they were carried lack them
                shutil.copy2(settings.snapshot_dir / name, model.path_of(name))
        if (settings.snapshot_dir / PREVIOUS_PROFILE).exists():  # the serving snapshot before, profiled for drift
            shutil.copy2(settings.snapshot_dir / PREVIOUS_PROFILE, model.path_of(PREVIOUS_PROFILE))
        # The lookalike index and the seeds are built on this snapshot and travel with it.
        for folder in ("lookalike", "seeds"):
            if (settings.snapshot_dir / folder).exists():
                shutil.copytree(settings.snapshot_dir / folder, model.path_of(folder))
    return model


def import_all(settings: Settings) -> tuple[list[str], list[str]]:
    """Import what exists; return what was imported and what was missing (with why)."""
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)  # so that a missing store reads as missing champions
    # bentoml.mlflow resolves models:/ URIs through MLflow's global tracking and registry URIs.
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient()
    done, missing = [], []
    for name in [*MODEL_NAMES.values(), FORECAST_MODEL, *settings.table_models]:
        try:
            m = import_champion(client, name)
            done.append(f"{m.tag} ← models:/{name}@{CHAMPION} (v{m.info.labels['version']})")
        except MlflowException as e:
            missing.append(f"{name}: no @{CHAMPION} in the registry ({e.error_code})")
    if (settings.snapshot_dir / "manifest.json").exists():
        done.append(f"{import_snapshot(settings).tag} ← {settings.snapshot_dir}")
    else:
        missing.append(f"{SNAPSHOT_MODEL}: no snapshot at {settings.snapshot_dir}: run `python -m training features`")
    return done, missing
