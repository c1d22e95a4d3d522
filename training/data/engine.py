"""What computes a snapshot: the protocol both engines meet, and the default one, DuckDB over the warehouse.

The Spark engine (`training.data.spark_features`, the `spark` extra) runs the same SQL on a cluster.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd

from training.data import feature_writer, features, warehouse


class Engine(Protocol):
    def data_end(self) -> pd.Timestamp: ...

    def first_send(self) -> date | None: ...

    def features(self, as_of: date) -> pd.DataFrame: ...

    def write_features(self, as_of: date, path: Path) -> int: ...

    def first_loan(self) -> date | None: ...

    def labels(self, as_of: date, window: int, data_end: date) -> pd.DataFrame: ...

    def response(self, as_of: date, window: int) -> pd.DataFrame: ...

    def opt_outs(self, as_of: date) -> pd.DataFrame: ...


class DuckDBEngine:
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def data_end(self) -> pd.Timestamp:
        return warehouse.data_end(self.con)

    def first_send(self) -> date | None:
        return self.con.execute("SELECT min(send_date) FROM campaigns").fetchone()[0]

    def features(self, as_of: date) -> pd.DataFrame:
        return features.compute_features(self.con, as_of)

    def write_features(self, as_of: date, path: Path) -> int:
        return feature_writer.write_features(self.con, as_of, path)

    def first_loan(self) -> date | None:
        return self.con.execute("SELECT min(applied_date) FROM loans").fetchone()[0]

    def labels(self, as_of: date, window: int, data_end: date) -> pd.DataFrame:
        return features.compute_labels(self.con, as_of, window, data_end)

    def response(self, as_of: date, window: int) -> pd.DataFrame:
        return features.compute_response(self.con, as_of, window)

    def opt_outs(self, as_of: date) -> pd.DataFrame:
        return self.con.execute(features.opt_outs_sql(as_of)).df()
