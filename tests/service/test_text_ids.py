"""Text user ids end to end: a warehouse whose ids are text loads, gets its features, seeds and lookalike
index, and the real server scores, reports unknown ids, pseudonymises and expands audiences by them."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pandas as pd
import pytest

from scoring.snapshot import Snapshot
from service.audit import pseudonym
from tests.conftest import make_settings
from tests.service.conftest import ROOT, server_env, start_server, stop_server
from training.data.schema import TABLES, USER_ID
from training.data.seeds import materialise
from training.data.snapshots import build_serving_snapshot, default_dates
from training.data.warehouse import load_dir
from training.lookalike_index import build_lookalike

AUDIT_SECRET = b"test-audit-secret"  # what tests/service/conftest.py gives the server


def as_text(ids: pd.Series) -> pd.Series:
    return ("U-" + ids.astype("Int64").astype(str)).where(ids.notna())


@pytest.fixture(scope="module")
def text_world(all_champions, tmp_path_factory):
    """The session's warehouse with every user id as text, loaded through the contract into a world of its own."""
    export = tmp_path_factory.mktemp("text-ids-export")
    for name, table in TABLES.items():
        df = pd.read_parquet(all_champions.warehouse_dir / f"{name}.parquet")
        for col in (c.name for c in table.columns if c.dtype == USER_ID):
            df[col] = as_text(df[col])
        df.to_csv(export / f"{name}.csv", index=False)
    world = make_settings(tmp_path_factory.mktemp("text-ids"))
    world = world.model_copy(update={"keys_file": all_champions.keys_file, "mlruns_dir": all_champions.mlruns_dir})
    load_dir(export, world)
    build_serving_snapshot(world, default_dates(world).serving)
    materialise(world)
    build_lookalike(world)
    return world


@pytest.fixture(scope="module")
def text_server(text_world, keys, tmp_path_factory):
    home = tmp_path_factory.mktemp("text-ids-bentoml")
    r = subprocess.run([sys.executable, "-m", "service", "import-models"], cwd=ROOT,
                       env=server_env(text_world, home), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server = start_server(text_world, home, tmp_path_factory.mktemp("text-ids-server") / "serve.log")
    yield server
    stop_server(server)


def test_the_snapshot_keeps_text_ids(text_world):
    snapshot = Snapshot.load(text_world.snapshot_dir)
    assert snapshot.text_ids and snapshot.ids[0].startswith("U-")
    pos, found = snapshot.rows([snapshot.ids[5], "U-nobody", 10000001])
    assert found.tolist() == [True, False, False] and pos[0] == 5  # 10000001 is not "U-10000001"


def test_text_ids_are_scored_reported_and_pseudonymised(text_server, text_world, keys):
    ids = pd.read_parquet(text_world.snapshot_dir / "features.parquet").index[:40].tolist()
    asked = ids[:20] + ["U-nobody", 10000001] + ids[20:]
    r = httpx.post(text_server.url + "/v1/churn/score", json={"user_ids": asked},
                   headers={"Authorization": f"Bearer {keys['campaign']}"}, timeout=60)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["user_id"] for x in results] == asked
    assert [("error" in x) for x in results] == [u in ("U-nobody", 10000001) for u in asked]
    alone = httpx.post(text_server.url + "/v1/churn/score", json={"user_ids": [ids[3]]},
                       headers={"Authorization": f"Bearer {keys['campaign']}"}, timeout=60).json()["results"][0]
    assert alone == results[3]
    records = [json.loads(line) for line in text_world.audit_log.read_text().splitlines()]
    assert records[-2]["user_hmacs"] == [pseudonym(AUDIT_SECRET, u) for u in asked]
    assert records[-2]["unknown"] == 2
    assert not any(u in text_world.audit_log.read_text() for u in ids)


def test_a_text_seed_expands_into_text_ids(text_server, keys):
    r = httpx.post(text_server.url + "/v1/lookalike", json={"seed_name": "top_value_20pct", "k": 100},
                   headers={"Authorization": f"Bearer {keys['campaign']}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert all(isinstance(x["user_id"], str) and x["user_id"].startswith("U-") for x in r.json()["results"])
    assert r.json()["self_check"]["recall"] > r.json()["self_check"]["random_recall"]
