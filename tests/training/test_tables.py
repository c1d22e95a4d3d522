"""A user's own table, trained and scored as it is: the logged model takes the table's own columns and
dtypes (ints, bools, nullable ints, text, a missing optional column) through the pyfunc and
`mlflow models serve` alike, registers under the table's name, and its PD is P(the event named)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import invocations
from training.train import Table, train_credit, train_one


def round_trip(name: str, table: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """The table's scores through the logged pyfunc, equal to those of `mlflow models serve`."""
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    local = model.predict(table)
    served = invocations(f"models:/{name}@champion", table, tmp_path / f"{name}.log")
    np.testing.assert_allclose(served["score"].to_numpy(), local["score"].to_numpy(), atol=1e-9)
    without_optional = model.predict(table.drop(columns=["income"]))
    assert np.isfinite(without_optional["score"]).all()
    with pytest.raises(Exception, match="tenure_months"):  # a column training never saw missing is required
        model.predict(table.drop(columns=["tenure_months"]))
    return local


def test_a_credit_table_labelled_good_bad_needs_the_event_named(tracking, table_path):
    with pytest.raises(ValueError, match=r"\['bad', 'good'\]"):
        train_credit(tracking, None, table=Table(table_path, "status"))


def test_a_credit_table_scores_itself_with_a_pd_of_the_named_event(table_models, table_path, tmp_path):
    result = table_models["bank_customers"]
    assert MlflowClient().get_model_version_by_alias("bank_customers", "champion").run_id == result.run_id
    table = pd.read_parquet(table_path)
    scored = round_trip("bank_customers", table, tmp_path)
    pd_by_late = scored["score"].groupby(table["late_payments"].fillna(-1).clip(upper=3)).mean()
    print(f"mean PD by late payments: {pd_by_late.round(3).to_dict()}")
    assert pd_by_late.loc[3] > pd_by_late.loc[1] > pd_by_late.loc[0]  # a PD that rises with risk
    assert scored["score"][table["status"] == "bad"].mean() > scored["score"][table["status"] == "good"].mean()


def test_a_churn_table_scores_itself_under_its_own_name(table_models, table_path, tmp_path):
    own = Table(table_path, "status", positive="bad", name="own_churn")
    result = table_models["own_churn"]
    assert MlflowClient().get_model_version_by_alias("own_churn", "champion").run_id == result.run_id
    table = pd.read_parquet(table_path)
    scored = round_trip("own_churn", table, tmp_path)
    test_rows = own.dataset().X_test.index  # the same table scored as training scored its test rows
    np.testing.assert_allclose(scored.loc[test_rows, "score"], result.test_scores, atol=1e-9)
    assert not {k for k in result.metrics if "ceiling" in k or "_gap_" in k}  # a table has no truth to fit one to


def test_a_campaign_log_scores_itself(table_models, campaign_path, tmp_path):
    scored = round_trip("own_campaign", pd.read_parquet(campaign_path), tmp_path)
    np.testing.assert_allclose(scored["score"], scored["p_treated"] - scored["p_control"], atol=1e-9)


def test_a_model_that_does_not_beat_the_baselines_is_not_registered(tracking, tmp_path):
    """On a straight-line signal the one-hot logistic regression wins: nothing is registered, and the
    comparison that said so is logged."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        churned=(rng.random(3000) < 1 / (1 + np.exp(-(x @ [1.0, -0.7, 0.4])))).astype(int))
    path = tmp_path / "linear_table.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="does not beat the baselines"):
        train_one("churn", tracking, None, table=Table(path, "churned"))
    runs = mlflow.search_runs(experiment_names=["linear_table"])
    assert (runs["tags.registered"] == "False").all() and (runs["tags.beats_baselines"] == "False").all()
    artifacts = {a.path for a in MlflowClient().list_artifacts(runs["run_id"].iloc[0], "tables")}
    assert "tables/cv_comparison.csv" in artifacts
    assert not MlflowClient().search_model_versions("name='linear_table'")
