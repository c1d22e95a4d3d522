"""Batch scores of a whole snapshot: every user's score, band, segment and top reasons, as the service
gives them (the registered pyfunc loaded with the service's attributions), written as Parquet partitioned
by band (`band=1/`, ..., `band=10/`). This module scores on one machine, DuckDB reading the snapshot in
chunks; `training.spark_score` runs the same model on Spark."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from scoring.settings import Settings
from training.tracking import setup_tracking

# What the pyfunc is loaded with for batch scores: the service's scores and reasons, not TreeSHAP.
SERVICE_REASONS = {"reasons": "service"}


def model_uri(model: str) -> str:
    """`churn@champion` or `churn/3` as a registry URI; a full `models:/` or `runs:/` URI as it is."""
    return model if ":/" in model else f"models:/{model}"


def service_reasons_uri(model: str) -> str:
    """The model's URI, once sure its pyfunc takes the service's reasons (models logged before they could
    would silently answer with TreeSHAP's)."""
    uri = model_uri(model)
    config = mlflow.models.get_model_info(uri).flavors["python_function"].get("config") or {}
    if set(SERVICE_REASONS) - set(config):
        raise ValueError(f"{model} was logged before batch scores could take the service's reasons: retrain it "
                         "(python -m training train <model> --force-promote)")
    return uri


def features_file(snapshot: Path) -> Path:
    """A snapshot folder's features, or the Parquet file (or folder of files) named."""
    return snapshot / "features.parquet" if (snapshot / "features.parquet").exists() else snapshot


def score_duckdb(settings: Settings, model: str, snapshot: Path, out: Path, chunk_rows: int = 100_000) -> int:
    """Score every row of the snapshot chunk by chunk into `out` (replaced); the rows written."""
    setup_tracking(settings)
    pyfunc = mlflow.pyfunc.load_model(service_reasons_uri(model), model_config=SERVICE_REASONS)
    names = pyfunc.metadata.get_input_schema().input_names()
    shutil.rmtree(out, ignore_errors=True)
    source = str(features_file(snapshot) / "*.parquet" if features_file(snapshot).is_dir() else features_file(snapshot))
    written = 0
    with duckdb.connect() as con:
        total = con.execute("SELECT count(*) FROM read_parquet(?)", [source]).fetchone()[0]
        batches = con.execute("SELECT * FROM read_parquet(?)", [source]).fetch_record_batch(chunk_rows)
        for i, batch in enumerate(tqdm(batches, total=math.ceil(total / chunk_rows), desc="scoring", unit="chunk")):
            frame = batch.to_pandas(ignore_metadata=True)  # user_id a column, not the index pandas saved
            scores = pyfunc.predict(frame[names]).reset_index(drop=True)
            scores.insert(0, "user_id", frame["user_id"].to_numpy())
            pq.write_to_dataset(pa.Table.from_pandas(scores, preserve_index=False), out, partition_cols=["band"],
                                basename_template=f"part-{i:05d}-{{i}}.parquet")
            written += len(scores)
    return written
