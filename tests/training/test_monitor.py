"""`python -m training monitor` on the session's world: a run in a real MLflow sqlite store and a table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
from mlflow import MlflowClient

from scoring.registry import MODEL_NAMES
from scoring.settings import Settings
from training.monitor import EXPERIMENT


def test_monitor_logs_a_run_with_every_figure_and_prints_the_table(all_champions: Settings, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCORE_", "MLFLOW_"))}
    env.update(OPSCORE_DATA_DIR=str(all_champions.data_dir), OPSCORE_MLRUNS_DIR=str(all_champions.mlruns_dir))
    r = subprocess.run([sys.executable, "-m", "training", "monitor"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "PSI: < 0.1 stable" in r.stdout and "(score)" in r.stdout
    assert all(endpoint in r.stdout for endpoint in MODEL_NAMES)

    client = MlflowClient(mlflow.get_tracking_uri())
    exp = client.get_experiment_by_name(EXPERIMENT)
    run = client.search_runs([exp.experiment_id], order_by=["attribute.start_time DESC"], max_results=1)[0]
    assert run.info.run_id in r.stdout
    report = json.loads(open(client.download_artifacts(run.info.run_id, "drift/report.json", str(tmp_path))).read())
    for endpoint, d in report["models"].items():
        assert run.data.metrics[f"psi/{endpoint}/score"] == d["score"]["psi"]
        for f in d["features"]:
            assert run.data.metrics[f"psi/{endpoint}/{f['feature']}"] == f["psi"]
            assert run.data.metrics[f"missing_share/{endpoint}/{f['feature']}"] == f["missing_share"]
    assert run.data.metrics["unseen_share/credit/acquisition_channel"] == 0.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/psi_per_feature.png"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {"drift/report.json", "drift/psi.csv"}
