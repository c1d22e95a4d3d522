"""Models trained from a bank's own tables, served from the table's rows as they are: the same scores as
the logged pyfunc, whatever the columns' types, with refusals that name the field."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.service.conftest import ROOT, server_env, start_server, stop_server

SCOPES = {"bank_customers": ["risk"], "own_churn": ["campaign", "risk"], "own_campaign": ["campaign"]}
TABLE_ENV = {"OPSCORE_TABLE_MODELS": json.dumps(SCOPES)}


@pytest.fixture(scope="module")
def table_server(all_champions, table_models, keys, tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml-tables")
    r = subprocess.run([sys.executable, "-m", "service", "import-models"], cwd=ROOT, capture_output=True, text=True,
                       env={**server_env(all_champions, home), **TABLE_ENV})
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in SCOPES), r.stdout
    s = start_server(all_champions, home, tmp_path_factory.mktemp("tables") / "serve.log", extra_env=TABLE_ENV)
    yield s
    stop_server(s)


def post(server, name: str, body, key: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/tables/{name}/score", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=120)


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a caller's JSON has them: ints, true/false, text, null where a value is missing."""
    return json.loads(frame.to_json(orient="records"))


@pytest.mark.parametrize("name,path_fixture", [("bank_customers", "table_path"), ("own_churn", "table_path"),
                                               ("own_campaign", "campaign_path")])
@pytest.mark.parametrize("rows", [40, 4000])  # scored on the event loop, and on the batch lane
def test_a_table_scores_as_its_pyfunc_does(table_server, keys, request, name, path_fixture, rows):
    table = pd.read_parquet(request.getfixturevalue(path_fixture)).head(rows)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    features = model.unwrap_python_model().scorer.spec.frame(table)
    key = keys[SCOPES[name][0]]
    for frame in (features, features.drop(columns=["income"])):  # an optional column may be left out
        body = {"records": as_records(frame.assign(user_id=table["customer_id"]))}
        r = post(table_server, name, body, key)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["user_id"] for x in results] == table["customer_id"].tolist()
        assert results[0]["model"]["name"] == name
        np.testing.assert_allclose([x["score"] for x in results], model.predict(frame)["score"], atol=1e-6)


BASE = {"tenure_months": 12, "has_card": True, "region": "east", "treated": 0, "converted": 0}  # never missing in training


@pytest.mark.parametrize("change,field", [
    ({"colour": "SENTINEL-7"}, "records[0].colour"),
    ({"tenure_months": "SENTINEL-7"}, "records[0].tenure_months"),
    ({"tenure_months": [12]}, "records[0].tenure_months"),
    ({"tenure_months": None, "has_card": None}, "records.tenure_months"),
    ({"user_id": True}, "records[0].user_id"),
    ({"user_id": 0}, "records[0].user_id"),  # the id contract of every endpoint: a whole number from 1
])
def test_bad_records_are_400_naming_the_field(table_server, keys, change, field):
    record = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    r = post(table_server, "bank_customers", {"records": [record]}, keys["risk"])
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert "SENTINEL" not in r.text, "no value is echoed"


def test_table_models_keep_their_scopes_and_are_listed(table_server, keys):
    one = {"records": [{**BASE, "late_payments": None}]}
    assert post(table_server, "bank_customers", one, keys["campaign"]).status_code == 403
    assert post(table_server, "bank_customers", one, keys["risk"]).status_code == 200
    assert post(table_server, "no_such_table", one, keys["risk"]).status_code == 404
    assert post(table_server, "bank_customers", {"user_ids": [1]}, keys["risk"]).status_code == 400
    listed = httpx.get(f"{table_server.url}/v1/models", headers={"Authorization": f"Bearer {keys['risk']}"}).json()
    endpoints = {m["name"]: m["endpoint"] for m in listed["models"]}
    assert endpoints["bank_customers"] == "/v1/tables/bank_customers/score"
    assert endpoints["churn"] == "/v1/churn/score"
