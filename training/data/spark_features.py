"""The same snapshot on Spark: the feature SQL of `training.data.features`, transpiled (`spark_sql`), over
the contract's tables read from Parquet or a Spark catalog, and the abuse graph's components found in Spark."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType

from scoring.settings import Settings
from training.data import features
from training.data.schema import TABLES
from training.data.spark_sql import spark_type, to_spark


def spark_session(settings: Settings, app: str = "opscore") -> SparkSession:
    """A session on `settings.spark_master` (local[2] by default); dates are calendar days in UTC."""
    builder = SparkSession.builder.master(settings.spark_master).appName(app)
    conf = {"spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.ui.enabled": "false", **settings.spark_conf}
    if settings.spark_master.startswith("local"):
        # Python workers (batch scores) run this environment; pyspark reads the variable, not a conf.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine:
    """The contract's tables as temporary views on a Spark session, and the snapshot's SQL run on them."""

    def __init__(self, spark: SparkSession, warehouse_dir: Path | None = None, catalog_db: str | None = None):
        if (warehouse_dir is None) == (catalog_db is None):
            raise ValueError("read the tables from a warehouse folder or a catalog database, one of the two")
        self.spark = spark
        raw = {name: spark.table(f"{catalog_db}.{name}") if catalog_db
               else spark.read.parquet(str(warehouse_dir / f"{name}.parquet")) for name in TABLES}
        integral = isinstance(raw["users"].schema["user_id"].dataType, IntegralType)
        self.user_id_type = "BIGINT" if integral else "VARCHAR"
        for name, table in TABLES.items():
            # The contract's types, as the DuckDB warehouse's views cast them.
            casts = [f"CAST({c} AS {spark_type(t)}) AS {c}" for c, t in table.sql_types(self.user_id_type).items()]
            raw[name].selectExpr(*casts).createOrReplaceTempView(name)

    def sql(self, duckdb_sql: str) -> DataFrame:
        return self.spark.sql(to_spark(duckdb_sql, self.user_id_type))

    def data_end(self) -> pd.Timestamp:
        """The day after the last recorded activity, as `warehouse.data_end`."""
        last = self.spark.sql("SELECT max(activity_date) FROM daily_activity").first()[0]
        return pd.Timestamp(last) + pd.Timedelta(days=1)

    def first_send(self) -> date | None:
        return self.spark.sql("SELECT min(send_date) FROM campaigns").first()[0]

    def first_loan(self) -> date | None:
        return self.spark.sql("SELECT min(applied_date) FROM loans").first()[0]

    def components(self, as_of: date, max_rounds: int = 100) -> DataFrame:
        """(user_id, ring): each user's component over shared devices and invite links, labelled by its
        smallest user id. Min-label propagation over the edges, each round followed by a pointer jump
        (a label takes its label's label), so chains of n links settle in about log n rounds."""
        literal = features.date_literal(as_of)
        device, invite = (self.sql(sql.format(as_of=literal)) for sql in features.EDGES_SQL)
        edges = device.union(invite)
        edges = edges.union(edges.select(F.col("b").alias("a"), F.col("a").alias("b"))).localCheckpoint()
        users = self.sql(f"SELECT user_id FROM users WHERE signup_date < {literal}")
        labels = users.select("user_id", F.col("user_id").alias("ring")).localCheckpoint()
        for _ in range(max_rounds):
            heard = edges.join(labels, edges.b == labels.user_id).select(edges.a.alias("user_id"), "ring")
            lowest = labels.union(heard).groupBy("user_id").agg(F.min("ring").alias("ring"))
            via = lowest.select(F.col("user_id").alias("hop"), F.col("ring").alias("hop_ring"))
            jumped = (lowest.join(via, lowest.ring == via.hop)
                      .select("user_id", F.least("ring", "hop_ring").alias("ring")).localCheckpoint())
            changed = jumped.join(labels.withColumnRenamed("ring", "before"), "user_id").where("ring <> before").limit(1)
            labels = jumped
            if changed.count() == 0:
                return labels
        raise RuntimeError(f"components did not settle in {max_rounds} rounds")

    def features(self, as_of: date) -> pd.DataFrame:
        """The snapshot `features.compute_features` makes with DuckDB, computed on Spark."""
        rows = self.sql(features.feature_sql(as_of))
        rows = rows.join(self.components(as_of), "user_id").orderBy("user_id")
        df = rows.toPandas()
        comp = pd.factorize(df.pop("ring"))[0]
        return features.finish_features(df, np.asarray(comp))

    def write_features(self, as_of: date, path: Path) -> int:
        """The snapshot written to `path` (collected on the driver); its rows."""
        df = self.features(as_of)
        df.to_parquet(path, index=True)
        return len(df)

    def labels(self, as_of: date, window: int, data_end: date) -> pd.DataFrame:
        return self.sql(features.label_sql(as_of, window, data_end)).toPandas().set_index("user_id")

    def response(self, as_of: date, window: int) -> pd.DataFrame:
        return self.sql(features.response_sql(as_of, window)).toPandas()

    def opt_outs(self, as_of: date) -> pd.DataFrame:
        return self.sql(features.opt_outs_sql(as_of)).toPandas()
