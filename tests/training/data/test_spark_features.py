"""The Spark engine computes the DuckDB engine's snapshot from the same SQL: every column, the rings, the labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from scoring.settings import Settings
from scoring.vocabulary import SNAPSHOT_COLUMNS
from tests.conftest import make_settings
from training.data import features, warehouse
from training.data.engine import DuckDBEngine
from training.data.schema import TABLES
from training.data.simulate import SimConfig, simulate
from training.data.snapshots import SnapshotDates, default_dates
from training.data.spark_features import SparkEngine
from training.data.warehouse import write_world

# Smaller than the session's world: enough rings, campaigns and loans for every column, at a tenth of the cost.
SMALL = SimConfig(users=3_000, days=150, seed=11)


@dataclass
class SparkWorld:
    settings: Settings
    dates: SnapshotDates
    engine: SparkEngine


@pytest.fixture(scope="module")
def spark_world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> SparkWorld:
    s = make_settings(tmp_path_factory.mktemp("spark-world"))
    write_world(simulate(SMALL, progress=False), s)
    return SparkWorld(s, default_dates(s), SparkEngine(spark, s.warehouse_dir))


def _assert_same_frame(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Counts (integers on either side) equal exactly, the other numbers to 1e-9 relative, text equal."""
    assert list(spark.columns) == list(duck.columns)
    assert spark.index.equals(duck.index)
    for col in duck.columns:
        d, s = duck[col], spark[col]
        assert d.isna().equals(s.isna()), col
        if not pd.api.types.is_numeric_dtype(d):
            assert (d[d.notna()] == s[s.notna()]).all(), col
            continue
        dv, sv = d.to_numpy(dtype=float, na_value=np.nan), s.to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_integer_dtype(d) or pd.api.types.is_integer_dtype(s):
            np.testing.assert_array_equal(sv, dv, err_msg=col)
        else:
            np.testing.assert_allclose(sv, dv, rtol=1e-9, atol=0, err_msg=col)


def test_every_feature_column_equals_duckdbs(spark_world: SparkWorld):
    as_of = spark_world.dates.train
    with warehouse.connect(spark_world.settings) as con:
        duck = features.compute_features(con, as_of)
    got = spark_world.engine.features(as_of)
    assert tuple(got.columns) == SNAPSHOT_COLUMNS
    assert (got["ring_size"] > 1).sum() > 50  # rings exist, so the graph columns are tested
    _assert_same_frame(duck, got)


def test_rings_partition_users_as_duckdbs(spark_world: SparkWorld):
    as_of = spark_world.dates.serving
    rings = spark_world.engine.components(as_of).toPandas().set_index("user_id")["ring"].sort_index()
    with warehouse.connect(spark_world.settings) as con:
        duck = pd.Series(features.components(con, as_of, rings.index.to_numpy()), index=rings.index)
    pairs = pd.DataFrame({"duck": duck, "spark": rings})
    assert pairs.groupby("duck")["spark"].nunique().eq(1).all()
    assert pairs.groupby("spark")["duck"].nunique().eq(1).all()
    # Each ring is labelled by its smallest member.
    assert (rings == rings.groupby(rings).transform(lambda r: r.index.min())).all()


def test_labels_response_and_dates_equal_duckdbs(spark_world: SparkWorld):
    s, engine = spark_world.settings, spark_world.engine
    as_of, window = spark_world.dates.train, s.label_window_days
    with warehouse.connect(s) as con:
        duck = DuckDBEngine(con)
        end = duck.data_end()
        # Credit's snapshot too, where loans' 12-month defaults are known.
        for when in (as_of, spark_world.dates.credit_oot):
            _assert_same_frame(duck.labels(when, window, end), engine.labels(when, window, end))
        assert duck.labels(spark_world.dates.credit_oot, window, end)["default_12m"].notna().sum() > 20
        _assert_same_frame(duck.response(as_of, window), engine.response(as_of, window))
    assert default_dates(s, engine) == spark_world.dates


def test_tables_read_from_a_catalog_database(spark: SparkSession, spark_world: SparkWorld):
    """`--catalog-db`: the contract's tables as a bank's Hive tables; the same rows come out."""
    spark.sql("CREATE DATABASE IF NOT EXISTS bank")
    for name in TABLES:
        spark.read.parquet(str(spark_world.settings.warehouse_dir / f"{name}.parquet")).write.mode(
            "overwrite").saveAsTable(f"bank.{name}")
    catalog = SparkEngine(spark, catalog_db="bank")
    as_of, window = spark_world.dates.train, spark_world.settings.label_window_days
    end = catalog.data_end()
    _assert_same_frame(spark_world.engine.labels(as_of, window, end), catalog.labels(as_of, window, end))
    assert catalog.data_end() == spark_world.engine.data_end()


def test_engine_needs_one_source(spark: SparkSession, tmp_path: Path):
    with pytest.raises(ValueError, match="one of the two"):
        SparkEngine(spark, tmp_path, catalog_db="bank")
