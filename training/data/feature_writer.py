"""The feature snapshot written to Parquet a batch of rows at a time, for bases whose snapshot does not fit
memory as one frame (`training.data.features` holds the SQL and the frame)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.data.features import components, compute_features, feature_sql, finish_rows, graph_features


def write_features(con: duckdb.DuckDBPyConnection, as_of: date, path: Path, batch_rows: int = 500_000) -> int:
    """The snapshot `compute_features` makes, written to `path` a batch of rows at a time; its rows.

    As one frame a 10M-user snapshot is about 9 GB, twice over while DuckDB hands it to pandas. DuckDB
    writes the SQL's rows to a Parquet file of its own (out of core); the graph features need only the ids
    and one column of every row; the rest is finished a batch at a time, in the frame's dtypes.
    """
    raw = path.with_name(f".{path.name}.sql")
    try:
        con.execute(f"COPY ({feature_sql(as_of)}) TO '{raw}' (FORMAT parquet)")
        pf = pq.ParquetFile(raw)
        if pf.metadata.num_rows == 0:
            compute_features(con, as_of).to_parquet(path, index=True)
            return 0
        head = pf.read(columns=["user_id", "redeemed_offer"])
        ids = head.column("user_id").to_numpy()
        ring_size, share = graph_features(components(con, as_of, ids), head.column("redeemed_offer").to_numpy())
        nullable = _nullable_integers(con, raw, pf.schema_arrow)
        writer, start = None, 0
        try:
            for batch in pf.iter_batches(batch_rows):
                rows = slice(start, start + batch.num_rows)
                table = writer and _finished(batch, ring_size[rows], share[rows], writer.schema)
                if table is None:  # the first batch (whose frame gives the file its schema), or one Arrow cannot finish
                    df = batch.to_pandas()
                    for col, dtype in nullable.items():
                        df[col] = df[col].astype(dtype)  # DuckDB's frame: nullable where a value is missing
                    # The index (user_id) as a column, as `to_parquet(index=True)` writes it, so DuckDB and Spark read it.
                    table = pa.Table.from_pandas(finish_rows(df, ring_size[rows], share[rows]), preserve_index=True,
                                                 schema=writer.schema if writer else None)
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
                start += batch.num_rows
        finally:
            if writer:
                writer.close()
        return start
    finally:
        raw.unlink(missing_ok=True)


def _finished(batch: pa.RecordBatch, ring_size: np.ndarray, share: np.ndarray, schema: pa.Schema) -> pa.Table | None:
    """The table the frame path (`to_pandas`, `finish_rows`, `Table.from_pandas`) makes of a batch, built in
    Arrow in a third of its time: each column cast to the file's type, a float's NaN missing as pandas writes
    it. None where the two could differ: a missing text value, which the frame writes as text."""
    graph = {"ring_size": pa.array(ring_size), "ring_redeem_share": pa.array(share, from_pandas=True)}
    arrays = []
    for field in schema:
        array = graph[field.name] if field.name in graph else batch.column(field.name)
        if pa.types.is_floating(array.type):
            array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
        elif not (pa.types.is_integer(array.type) or pa.types.is_floating(field.type)) and array.null_count:
            return None
        arrays.append(array.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _nullable_integers(con: duckdb.DuckDBPyConnection, raw: Path, schema: pa.Schema) -> dict[str, str]:
    """Integer columns with a missing value anywhere, and the nullable pandas dtype DuckDB gives them."""
    ints = [f for f in schema if pa.types.is_integer(f.type) and f.name != "user_id"]
    if not ints:
        return {}
    counts = con.execute("SELECT " + ", ".join(f'count(*) - count("{f.name}")' for f in ints)
                         + f" FROM read_parquet('{raw}')").fetchone()
    return {f.name: f"Int{f.type.bit_width}" for f, missing in zip(ints, counts) if missing}
