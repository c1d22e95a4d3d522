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
from training.train import Table, train_credit, train_one, train_response

N = 4000


def own_table(seed: int = 0) -> pd.DataFrame:
    """Features as a bank's warehouse holds them, with a risk that rises with late payments."""
    rng = np.random.default_rng(seed)
    late = rng.poisson(1.0, N)
    income = rng.normal(5000, 1500, N)
    df = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(N)],  # a text id, never a feature
        "tenure_months": rng.integers(1, 120, N),  # int64
        "has_card": rng.random(N) < 0.5,  # bool
        "late_payments": pd.array(np.where(rng.random(N) < 0.1, -1, late), dtype="Int64"),  # nullable int
        "region": rng.choice(["north", "south", "east"], N),  # text
        "income": np.where(rng.random(N) < 0.2, np.nan, income),  # optional: missing in training
    })
    df["late_payments"] = df["late_payments"].mask(df["late_payments"] < 0)
    # Thresholds and an interaction, as risk often has them: a straight line in the features misses them.
    east = (df["region"] == "east").to_numpy()
    logit = (-2.0 + 1.6 * (late >= 2) + 1.2 * ((late >= 1) & east) - 0.8 * (income > 6000)
             - 1.0 * (df["tenure_months"] > 60) + 0.8 * (late >= 2) * (df["tenure_months"] < 24))
    df["status"] = np.where(rng.random(N) < 1 / (1 + np.exp(-logit)), "bad", "good")
    df["treated"] = (rng.random(N) < 0.5).astype(int)
    df["converted"] = (rng.random(N) < 0.05 + 0.05 * df["treated"] * (late > 1)).astype(int)
    return df


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("own") / "bank_customers.parquet"
    own_table().to_parquet(path, index=False)
    return path


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


def test_a_credit_table_scores_itself_with_a_pd_of_the_named_event(tracking, table_path, tmp_path):
    result = train_credit(tracking, None, table=Table(table_path, "status", positive="bad"))
    assert MlflowClient().get_model_version_by_alias("bank_customers", "champion").run_id == result.run_id
    table = pd.read_parquet(table_path)
    scored = round_trip("bank_customers", table, tmp_path)
    pd_by_late = scored["score"].groupby(table["late_payments"].fillna(-1).clip(upper=3)).mean()
    print(f"mean PD by late payments: {pd_by_late.round(3).to_dict()}")
    assert pd_by_late.loc[3] > pd_by_late.loc[1] > pd_by_late.loc[0]  # a PD that rises with risk
    assert scored["score"][table["status"] == "bad"].mean() > scored["score"][table["status"] == "good"].mean()


def test_a_churn_table_scores_itself_under_its_own_name(tracking, table_path, tmp_path):
    own = Table(table_path, "status", positive="bad", name="own_churn")
    result = train_one("churn", tracking, None, table=own)
    assert MlflowClient().get_model_version_by_alias("own_churn", "champion").run_id == result.run_id
    table = pd.read_parquet(table_path)
    scored = round_trip("own_churn", table, tmp_path)
    test_rows = own.dataset().X_test.index  # the same table scored as training scored its test rows
    np.testing.assert_allclose(scored.loc[test_rows, "score"], result.test_scores, atol=1e-9)


def test_a_campaign_log_scores_itself(tracking, tmp_path):
    path = tmp_path / "own_campaign.parquet"
    own_table(seed=2).drop(columns=["status"]).to_parquet(path, index=False)
    train_response(tracking, None, table=Table(path, "converted", treatment="treated"))
    scored = round_trip("own_campaign", pd.read_parquet(path), tmp_path)
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
