"""GET /v1/monitoring/drift and the drift gauges on /metrics, over the real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, timedelta

import httpx
import pandas as pd
import pytest

from scoring.registry import MODEL_NAMES
from scoring.settings import Settings
from tests.service.conftest import ROOT, server_env, start_server, stop_server
from training.data.snapshots import SnapshotPaths, publish_serving, write_manifest

DRIFT = "/v1/monitoring/drift"


def served_features(trained, response_run, credit_run) -> dict[str, list[str]]:
    """Each champion's features as its spec lists them."""
    return {"churn": trained["churn"][1].scorer.spec.names, "abuse": trained["abuse"][1].scorer.spec.names,
            "response": response_run.scorer.spec.names,
            "credit": credit_run[1].scorer.spec.names}


def test_drift_covers_every_model_and_feature_for_either_scope(server, keys, trained, response_run, credit_run):
    expected = served_features(trained, response_run, credit_run)
    for scope in ("campaign", "risk"):
        r = httpx.get(server.url + DRIFT, headers={"Authorization": f"Bearer {keys[scope]}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body["models"]) == set(MODEL_NAMES)
        for endpoint, d in body["models"].items():
            assert d["name"] == MODEL_NAMES[endpoint] and d["reference_rows"] > 0
            assert [f["feature"] for f in d["features"]] == expected[endpoint]
            assert d["score"]["band"] in ("stable", "moderate", "significant") and d["score"]["psi"] >= 0
        # One serving snapshot so far: nothing to compare it with.
        assert body["consecutive"] is None
    # Churn is measured on the users it was trained on: those active in the 30 days before.
    assert 0 < body["models"]["churn"]["rows_compared"] < body["models"]["abuse"]["rows_compared"]


def test_drift_needs_a_key(server):
    assert httpx.get(server.url + DRIFT).status_code == 401
    assert httpx.get(server.url + DRIFT, headers={"Authorization": "Bearer ops_x_nonsense"}).status_code == 401


def test_the_gauges_are_on_metrics_with_bounded_labels(server, keys):
    drift = httpx.get(server.url + DRIFT, headers={"Authorization": f"Bearer {keys['risk']}"}).json()
    metrics = httpx.get(server.url + "/metrics").text
    churn = drift["models"]["churn"]
    assert f'opscore_drift_score_psi{{model="churn"}} {churn["score"]["psi"]}' in metrics
    age = next(f for f in churn["features"] if f["feature"] == "age")
    assert f'opscore_drift_feature_psi{{feature="age",model="churn"}} {age["psi"]}' in metrics
    assert 'opscore_drift_feature_unseen_share{feature="acquisition_channel",model="credit"}' in metrics
    series = [line for line in metrics.splitlines() if line.startswith("opscore_drift_feature_psi{")]
    assert len(series) == sum(len(d["features"]) for d in drift["models"].values())


@pytest.fixture(scope="module")
def shifted(all_champions: Settings, tmp_path_factory) -> Settings:
    """A second serving snapshot a month later, published over a copy of the first: credit_line four
    times larger and a third of the users from an acquisition channel no model has seen."""
    root = tmp_path_factory.mktemp("shifted")
    s = Settings(data_dir=root / "data", mlruns_dir=all_champions.mlruns_dir, keys_file=all_champions.keys_file,
                 audit_log=root / "audit.log")
    shutil.copytree(all_champions.snapshot_dir, s.snapshot_dir)
    frame = pd.read_parquet(all_champions.snapshot_dir / "features.parquet")
    frame["credit_line"] = frame["credit_line"] * 4
    frame.loc[frame.index[::3], "acquisition_channel"] = "telepathy"
    old = pd.read_json(all_champions.snapshot_dir / "manifest.json", typ="series")["as_of"]
    as_of = date.fromisoformat(str(old)[:10]) + timedelta(days=30)
    paths = SnapshotPaths(root / "features" / f"as_of={as_of}")
    paths.root.mkdir(parents=True)
    frame.to_parquet(paths.features)
    write_manifest(paths, as_of, len(frame))
    publish_serving(paths, s.snapshot_dir, s.drift_rows)
    return s


@pytest.fixture(scope="module")
def shifted_server(shifted: Settings, keys, tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml-shifted")
    r = subprocess.run([sys.executable, "-m", "service", "import-models"], cwd=ROOT, env=server_env(shifted, home),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server = start_server(shifted, home, tmp_path_factory.mktemp("shifted-server") / "serve.log")
    yield server
    stop_server(server)


def test_a_shifted_snapshot_shows_in_its_features_against_training_and_the_snapshot_before(shifted_server, keys):
    body = httpx.get(shifted_server.url + DRIFT, headers={"Authorization": f"Bearer {keys['risk']}"}).json()
    for d in body["models"].values():
        by_feature = {f["feature"]: f for f in d["features"]}
        assert by_feature["credit_line"]["band"] == "significant"
        assert by_feature["acquisition_channel"]["unseen_share"] == pytest.approx(1 / 3, abs=0.02)
        assert by_feature["age"]["psi"] < 0.1
    consecutive = {f["feature"]: f for f in body["consecutive"]["features"]}
    assert consecutive["credit_line"]["psi"] > 1 and consecutive["acquisition_channel"]["band"] == "significant"
    assert consecutive["age"]["psi"] == 0.0  # unchanged between the two snapshots
    assert body["consecutive"]["previous_as_of"] < body["snapshot_as_of"]
    metrics = httpx.get(shifted_server.url + "/metrics").text
    assert 'opscore_drift_snapshot_feature_psi{feature="credit_line"}' in metrics
