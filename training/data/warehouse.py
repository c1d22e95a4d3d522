"""The warehouse: Parquet files per contract table plus a DuckDB database of views over them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring.settings import Settings
from training.data.schema import TABLES, USER_ID, Table, validate
from training.data.simulate import World


class ContractError(ValueError):
    """Input data does not meet the warehouse contract."""


def write_tables(tables: dict[str, pd.DataFrame], settings: Settings) -> None:
    """The tables into the warehouse; an optional table they lack is installed empty."""
    out = settings.warehouse_dir
    out.mkdir(parents=True, exist_ok=True)
    missing = {name: empty_table(t, tables) for name, t in TABLES.items() if t.optional and name not in tables}
    for name, df in {**tables, **missing}.items():
        table = TABLES[name]
        df[table.column_names].to_parquet(out / f"{name}.parquet", index=False)
    create_views(settings)


def write_world(world: World, settings: Settings) -> dict[str, int]:
    """A simulated world into the warehouse, its ground truth beside it; the rows per table."""
    write_tables(world.tables, settings)
    write_truth(world.truth, world.meta, settings)
    return {name: len(df) for name, df in world.tables.items()}


def append_rows(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Rows appended to Parquet tables in `folder` (the warehouse's or the truth's), each file replaced whole
    by one with the old rows and the new: a reader sees the table before or after, never half of it."""
    for name, rows in tables.items():
        path = folder / f"{name}.parquet"
        old = pd.read_parquet(path)
        new = rows[list(old.columns)].astype(old.dtypes.to_dict())
        part = path.with_suffix(".part")
        pd.concat([old, new], ignore_index=True).to_parquet(part, index=False)
        os.replace(part, path)


def write_truth(truth: dict[str, pd.DataFrame], meta: dict, settings: Settings) -> None:
    settings.truth_dir.mkdir(parents=True, exist_ok=True)
    (settings.truth_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    for name, df in truth.items():
        df.to_parquet(settings.truth_dir / f"{name}.parquet", index=False)


def create_views(settings: Settings) -> None:
    settings.warehouse_db.unlink(missing_ok=True)
    users = settings.warehouse_dir / "users.parquet"
    id_type = "BIGINT" if pa.types.is_integer(pq.read_schema(users).field("user_id").type) else "VARCHAR"
    with duckdb.connect(str(settings.warehouse_db)) as con:
        for name, table in TABLES.items():
            path = (settings.warehouse_dir / f"{name}.parquet").resolve()
            casts = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in table.sql_types(id_type).items())
            con.execute(f"CREATE VIEW {name} AS SELECT {casts} FROM read_parquet('{path}')")


def connect(settings: Settings, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    if not settings.warehouse_db.exists():
        raise FileNotFoundError(
            f"no warehouse at {settings.warehouse_db}: run `python -m training simulate` or `python -m training load DIR`"
        )
    con = duckdb.connect(str(settings.warehouse_db), read_only=read_only)
    con.execute(f"SET memory_limit = '{settings.duckdb_memory_gib}GiB'")
    con.execute(f"SET temp_directory = '{settings.data_dir.resolve() / '.duckdb-tmp'}'")
    return con


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def load_dir(src: Path, settings: Settings) -> dict[str, int]:
    """Validate <table>.parquet|csv files in src against the contract and install them.

    Nothing is written unless every table passes, so a bad file never half-replaces a warehouse.
    """
    frames: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for name, table in TABLES.items():
        found = [p for p in (src / f"{name}.parquet", src / f"{name}.csv") if p.exists()]
        if not found and table.optional:
            continue  # installed empty by write_tables
        if not found:
            problems.append(f"{name}: no {name}.parquet or {name}.csv in {src}")
            continue
        df = _read(found[0])
        errs = validate(table, df)
        problems.extend(errs)
        if not errs:
            for col in table.columns:
                if col.dtype == "DATE":
                    df[col.name] = pd.to_datetime(df[col.name]).astype("datetime64[s]")
                elif col.dtype == "TIMESTAMP":
                    df[col.name] = pd.to_datetime(df[col.name]).astype("datetime64[us]")
            frames[name] = df
    if problems:
        raise ContractError("data does not meet the warehouse contract:\n  " + "\n  ".join(problems))
    write_tables(frames, settings)
    return {name: len(df) for name, df in frames.items()}


def empty_table(table: Table, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """An optional table's rows when a warehouse has none: typed as its columns are (ids as users' are)."""
    users = frames.get("users")
    id_dtype = users["user_id"].dtype if users is not None else "int64"
    kinds = {"DATE": "datetime64[s]", "VARCHAR": "str", USER_ID: id_dtype}
    return pd.DataFrame({c.name: pd.Series([], dtype=kinds.get(c.dtype, "float64")) for c in table.columns})


def data_end(con: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    """The day after the last recorded activity: the as-of date of the serving snapshot."""
    last = con.execute("SELECT max(activity_date) FROM daily_activity").fetchone()[0]
    return pd.Timestamp(last) + pd.Timedelta(days=1)
