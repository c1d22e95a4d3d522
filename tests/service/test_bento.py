"""The Bento: built from the store, exported, imported into an empty store and served, it answers every
endpoint with scoring/ and service/ inside it and no training/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pandas as pd
import pytest

from service.launch import BIN, ROOT, bentoml_serve, free_port, start, stop
from tests.service.conftest import server_env

ENDPOINTS = {"/v1/churn/score": "campaign", "/v1/abuse/score": "risk", "/v1/response/score": "campaign",
             "/v1/credit/score": "risk"}


def bentoml(*args: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    r = subprocess.run([str(BIN / "bentoml"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def bento_server(all_champions, bento_home, keys, tmp_path_factory):
    work = tmp_path_factory.mktemp("bento")
    bentoml("build", env=server_env(all_champions, bento_home))
    archive = work / "opscore.bento"
    bentoml("export", "opscore:latest", str(archive), env=server_env(all_champions, bento_home))
    fresh = work / "home"
    env = server_env(all_champions, fresh)
    bentoml("import", str(archive), env=env)
    src = next(p for p in (fresh / "bentos" / "opscore").iterdir() if p.is_dir()) / "src"
    port = free_port()
    server = start(bentoml_serve("opscore:latest", port), env, port, work / "serve.log", cwd=work)
    yield src, server
    stop(server)


def test_the_bento_carries_scoring_and_service_but_not_training(bento_server):
    src, _ = bento_server
    assert (src / "scoring" / "answer.py").is_file() and (src / "service" / "service.py").is_file()
    assert not (src / "training").exists()


def test_the_imported_bento_answers_every_endpoint(bento_server, keys, all_champions):
    _, server = bento_server
    ids = pd.read_parquet(all_champions.snapshot_dir / "features.parquet").index[:3].tolist()
    for path, scope in ENDPOINTS.items():
        r = httpx.post(server.url + path, json={"user_ids": ids}, headers={"Authorization": f"Bearer {keys[scope]}"},
                       timeout=60)
        assert r.status_code == 200, (path, r.text)
        assert [x["user_id"] for x in r.json()["results"]] == ids
    auth = {"Authorization": f"Bearer {keys['campaign']}"}
    r = httpx.post(server.url + "/v1/lookalike", json={"seed_name": "top_value_20pct", "k": 50}, headers=auth, timeout=60)
    assert r.status_code == 200 and len(r.json()["results"]) == 50
    served = {m["name"] for m in httpx.get(server.url + "/v1/models", headers=auth).json()["models"]}
    assert served >= {"churn", "promo_abuse", "marketing_response", "credit_features"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert "/v1/churn/score" in httpx.get(server.url + "/docs.json").json()["paths"]
