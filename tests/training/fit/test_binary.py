"""Training pipeline: MLflow runs, registry, gate, parity of the reloaded model, model behaviour."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from scoring.artifacts import CHECKSUMS, ArtifactError, write_checksums
from scoring.binary import BinaryScorer
from training.data import datasets
from training.train import train_binary

PLOTS = {"roc", "ks", "lift_gain", "calibration", "feature_importance", "shap_summary"}


def test_runs_log_metrics_plots_inputs_and_checksums(trained):
    client = MlflowClient()
    for name, (_, result) in trained.items():
        run = client.get_run(result.run_id)
        assert {"oot_auc", "oot_pr_auc", "oot_ks", "oot_lift_top_decile", "oracle_auc", "oracle_gap_auc"} <= set(run.data.metrics)
        assert run.data.tags["git_commit"]
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {f"{name}_training", f"{name}_evaluation"}
        assert all(i.dataset.digest for i in run.inputs.dataset_inputs)
        plots = {a.path.split("/")[-1].removesuffix(".png") for a in client.list_artifacts(result.run_id, "plots")}
        assert PLOTS <= plots
        assert {"checksums.json"} <= {a.path for a in client.list_artifacts(result.run_id)}


def test_aliases_resolve_and_reloaded_model_scores_as_in_training(trained):
    ds, result = trained["churn"]
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    assert model.metadata.run_id == result.run_id
    out = model.predict(result.scorer.spec.frame(ds.X_test))
    assert np.max(np.abs(out["score"].to_numpy() - result.test_scores)) <= 1e-6
    assert set(out.columns) >= {"score", "band", "segment", "reason_1_feature", "reason_1_value", "reason_1_contribution"}
    assert out["band"].between(1, 10).all()
    assert out["reason_1_feature"].isin(result.scorer.spec.names).all()


def test_churn_beats_trivial_baselines_and_tracks_the_oracle(trained):
    ds, result = trained["churn"]
    recency = roc_auc_score(ds.y_test, ds.X_test["days_since_last_active"])
    assert result.metrics["oot_auc"] > 0.7
    assert result.metrics["oot_auc"] > recency + 0.02
    assert result.metrics["oracle_gap_auc"] < 0.08


def test_churn_risk_rises_with_days_since_last_activity(trained):
    ds, result = trained["churn"]
    s = result.scorer
    base = ds.X_test.sample(500, random_state=0)
    recent, stale = base.assign(days_since_last_active=1), base.assign(days_since_last_active=25)
    lo, hi = s.predict(s.spec.to_matrix(recent)), s.predict(s.spec.to_matrix(stale))
    assert hi.mean() > lo.mean()
    assert (hi >= lo).mean() > 0.8


def test_abuse_precision_at_review_capacity_against_full_truth(trained):
    ds, result = trained["abuse"]
    m = result.metrics
    base_rate = ds.y_truth.mean()
    assert m["precision_at_capacity"] > 5 * base_rate
    assert m["oot_truth_auc"] > 0.85
    assert abs(m["oracle_gap_auc"]) < 0.08


def test_gate_refuses_a_worse_challenger_and_force_promotes(trained, tracking, dates):
    client = MlflowClient()
    champion = client.get_model_version_by_alias("churn", "champion").version
    ds = datasets.churn(tracking, dates)
    weak = {"num_leaves": 2, "learning_rate": 0.005, "feature_fraction": 0.1}
    worse = train_binary(ds, "churn", tracking, params=weak)
    assert not worse.decision.promoted
    assert worse.decision.champion_value > worse.decision.challenger_value
    assert client.get_model_version_by_alias("churn", "champion").version == champion
    assert str(client.get_model_version_by_alias("churn", "challenger").version) == worse.version
    assert client.get_run(worse.run_id).data.tags["gate.promoted"] == "False"

    forced = train_binary(ds, "churn", tracking, params=weak, force=True)
    assert forced.decision.promoted
    assert str(client.get_model_version_by_alias("churn", "champion").version) == forced.version
    # Put the real champion back for the tests that follow.
    client.set_registered_model_alias("churn", "champion", champion)


def test_corrupt_artifact_is_refused(trained, tmp_path):
    _, result = trained["churn"]
    paths = result.scorer.save(tmp_path)
    paths[CHECKSUMS] = write_checksums(paths, tmp_path)
    artifacts = {k: str(v) for k, v in paths.items()}
    assert BinaryScorer.load(artifacts).predict(np.zeros((1, len(result.scorer.spec.names)))).shape == (1,)
    with open(paths["booster"], "a") as f:
        f.write("tampered\n")
    with pytest.raises(ArtifactError, match="booster"):
        BinaryScorer.load(artifacts)


def test_bring_your_own_table_out_of_time(trained, tmp_path, tracking):
    ds, _ = trained["churn"]
    table = pd.concat([ds.X_train.assign(churned=ds.y_train, snapshot_date=pd.Timestamp("2025-05-01")),
                       ds.X_test.assign(churned=ds.y_test, snapshot_date=pd.Timestamp("2025-05-31"))])
    table = table.reset_index().rename(columns={"user_id": "customer_id"})
    path = tmp_path / "my_features.parquet"
    table.to_parquet(path)
    own = datasets.from_table(path, "churned")
    assert "customer_id" in own.exclude and "snapshot_date" in own.exclude
    assert "out-of-time" in own.split
    assert len(own.y_test) == len(ds.y_test)
    result = train_binary(own, "churn_own_table", tracking)
    assert result.metrics["oot_auc"] > 0.7
    assert "customer_id" not in result.scorer.spec.names


def test_bring_your_own_table_refuses_bad_targets(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 2]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="binary"):
        datasets.from_table(path, "y")
    with pytest.raises(KeyError, match="nope"):
        datasets.from_table(path, "nope")
