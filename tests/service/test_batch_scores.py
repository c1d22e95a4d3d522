"""Batch scores (`python -m training score`) are the service's: the same scores, bands, segments and
reasons for the same users, on Spark (mlflow.pyfunc.spark_udf) and on one machine alike."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from scoring.scorer import TOP_REASONS
from scoring.settings import Settings
from training.score import score_duckdb
from training.spark_score import score_spark


def _batch(folder) -> pd.DataFrame:
    out = pd.read_parquet(folder).set_index("user_id").sort_index()
    out["band"] = out["band"].astype(int)  # a partition column reads back as a category
    return out


def test_spark_and_duckdb_batch_scores_equal_the_services(server, keys, spark: SparkSession,
                                                          all_champions: Settings, tmp_path):
    # Every tenth user of the serving snapshot: what the commands do to a whole one, at a tenth of the cost.
    features = tmp_path / "features.parquet"
    pd.read_parquet(all_champions.snapshot_dir / "features.parquet").iloc[::10].to_parquet(features, index=True)
    users = pd.read_parquet(features).index
    on_spark = score_spark(spark, all_champions, "churn@champion", features, tmp_path / "spark")
    on_duckdb = score_duckdb(all_champions, "churn@champion", features, tmp_path / "duckdb", chunk_rows=700)
    assert on_spark == on_duckdb == len(users)
    spark_scores, duck_scores = _batch(tmp_path / "spark"), _batch(tmp_path / "duckdb")
    assert sorted(p.name for p in (tmp_path / "spark").glob("band=*")) == [f"band={b}" for b in sorted(
        map(str, spark_scores["band"].unique()))]
    pd.testing.assert_frame_equal(spark_scores, duck_scores[spark_scores.columns], check_dtype=False)

    ids = users[:: len(users) // 400].tolist()[:400]
    r = httpx.post(f"{server.url}/v1/churn/score", json={"user_ids": ids},
                   headers={"Authorization": f"Bearer {keys['campaign']}"}, timeout=60)
    assert r.status_code == 200, r.text
    # The service scores a model's own population only (churn: the recently active); batch scores are every user's.
    service = [x for x in r.json()["results"] if "score" in x]
    assert len(service) > 100
    got = spark_scores.loc[[x["user_id"] for x in service]]
    np.testing.assert_allclose(got["score"], [x["score"] for x in service], rtol=0, atol=1e-6)
    assert got["band"].tolist() == [x["band"] for x in service]
    assert got["segment"].tolist() == [x["segment"] for x in service]
    for k in range(TOP_REASONS):
        assert got[f"reason_{k + 1}_feature"].tolist() == [x["reasons"][k]["feature"] for x in service]
        np.testing.assert_allclose(got[f"reason_{k + 1}_contribution"],
                                   [x["reasons"][k]["contribution"] for x in service], rtol=0, atol=1e-6)
