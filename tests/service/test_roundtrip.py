"""Each family's training table, as it is (ints, floats, text, missing values), scores the same through
the logged pyfunc, `mlflow models serve` and the service's records path."""

from __future__ import annotations

import json

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import invocations
from training.data import datasets

FAMILIES = {"churn": ("churn", "campaign"), "abuse": ("promo_abuse", "campaign"),
            "response": ("marketing_response", "campaign"), "credit": ("credit_features", "risk")}
def training_table(settings, dates, endpoint: str) -> pd.DataFrame:
    """Test rows of the family's training table, reduced to the model's columns."""
    if endpoint == "response":
        return datasets.response(settings, dates).ds.X_test.head(40)
    return getattr(datasets, endpoint)(settings, dates).X_test.head(40)


@pytest.mark.parametrize("endpoint", sorted(FAMILIES))
def test_a_training_table_scores_alike_three_ways(endpoint, server, keys, all_champions, dates, tmp_path):
    registry, scope = FAMILIES[endpoint]
    model = mlflow.pyfunc.load_model(f"models:/{registry}@champion")
    spec = model.unwrap_python_model().scorer.spec
    table = spec.frame(training_table(all_champions, dates, endpoint))
    local = model.predict(table)["score"].to_numpy()
    served = invocations(f"models:/{registry}@champion", table, tmp_path / "mlflow-serve.log")["score"].to_numpy()
    np.testing.assert_allclose(served, local, atol=1e-9)
    body = {"records": json.loads(table.to_json(orient="records"))}
    r = httpx.post(f"{server.url}/v1/{endpoint}/score", json=body, headers={"Authorization": f"Bearer {keys[scope]}"},
                   timeout=60)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose([x["score"] for x in r.json()["results"]], local, atol=1e-6)  # sent to 6 decimals
