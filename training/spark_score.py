"""Batch scores on Spark: the registered pyfunc as a Spark UDF (`mlflow.pyfunc.spark_udf`, this
environment's packages), with the service's scores and reasons, one LightGBM thread per task (the
scorers predict with num_threads=1); written as Parquet partitioned by band, as `training.score` does."""

from __future__ import annotations

from pathlib import Path

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from scoring.settings import Settings
from training.score import SERVICE_REASONS, features_file, service_reasons_uri
from training.tracking import setup_tracking


def score_spark(spark: SparkSession, settings: Settings, model: str, snapshot: Path | str, out: Path | str) -> int:
    """Score every row of the snapshot (a path Spark reads: local, HDFS, S3) into `out` (replaced); the rows written."""
    setup_tracking(settings)
    uri = service_reasons_uri(model)
    signature = mlflow.models.get_model_info(uri).signature
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=signature.outputs.as_spark_schema(), env_manager="local",
                                  model_config=SERVICE_REASONS)
    local = Path(snapshot)
    source = str(features_file(local)) if local.exists() else str(snapshot)  # else a cluster path, as it is
    rows = spark.read.parquet(source)
    inputs = F.struct(*[F.col(c) for c in signature.inputs.input_names()])
    scored = rows.select("user_id", udf(inputs).alias("answer")).select("user_id", "answer.*")
    scored.write.mode("overwrite").partitionBy("band").parquet(str(out))
    return spark.read.parquet(str(out)).count()
