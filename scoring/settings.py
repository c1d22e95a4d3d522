"""One settings object for training and service, read from OPSCORE_* env vars and .env."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


DEV_AUDIT_SECRET = "opscore-dev-audit-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSCORE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    mlruns_dir: Path = Path("mlruns")
    keys_file: Path = Path("data/keys.json")
    audit_log: Path = Path("data/audit.log")
    # Keyed hash for user ids in the audit log; override in any real deployment (the service warns).
    audit_secret: SecretStr = SecretStr(DEV_AUDIT_SECRET)

    churn_window_days: int = 30
    label_window_days: int = 30
    # Earlier snapshots, one label window apart, whose campaign logs and loan applications add
    # training rows to response and credit: one window holds four or five campaigns and a few
    # hundred defaults (at 200k users, 3 lifted the uplift Qini from 0.47x to 0.57x the oracle's).
    history_snapshots: int = Field(3, ge=0)
    # Credit's earlier snapshots, one label window apart before its training snapshot: a window holds
    # a few hundred defaults at 200k users, and the scorecard's learner gap closes with more.
    credit_history_snapshots: int = Field(7, ge=0)
    review_capacity: float = Field(0.01, description="share of users the abuse team can review")
    max_batch: int = 10_000
    max_body_mb: int = Field(64, ge=1, description="request bodies above this are refused (413) before they are read")
    # Request heads: what common servers allow (nginx, Apache), far above any legal call (the longest
    # route and a key are under 200 bytes); see service/limits.py.
    max_target_bytes: int = Field(8192, ge=256, description="longer request targets (path and query) are 414")
    max_header_bytes: int = Field(32768, ge=1024, description="larger header blocks are 431")
    serve_workers: int = Field(2, ge=1, description="BentoML worker processes (about one per core)")
    scoring_threads: int = Field(2, ge=1, description="LightGBM threads for one large batch (small ones use one)")
    lookalike_min_seed: int = 100
    # Models trained from a user's own table (`train ... --table`), served from records at
    # /v1/tables/<name>/score to keys of the scopes given: OPSCORE_TABLE_MODELS='{"german_credit": ["risk"]}'.
    table_models: dict[str, list[Literal["campaign", "risk"]]] = Field(default_factory=dict)
    # The batch lane (service/batches.py): calls above INLINE_ROWS users, and lookalike, run on this
    # many threads per worker at this nice value, the scoring calls in as many processes forked from the
    # worker, under SCHED_IDLE (threads hold the interpreter lock the event loop needs: README, Benchmarks,
    # has the single-user p99 beside batches both ways); this many more may wait, the rest get 429.
    batch_slots: int = Field(1, ge=1, description="large calls running at once in each worker")
    batch_processes: bool = Field(True, description="large scoring calls in processes forked from each worker "
                                  "(false: on the lane's threads, beside the event loop's interpreter lock)")
    batch_queue: int = Field(4, ge=0, description="large calls that may wait in each worker before 429")
    batch_nice: int = Field(10, ge=0, le=19, description="CPU priority of the batch lane (Linux nice; 0 = as singles)")
    # Each worker scores this many snapshot rows with every model at start to measure drift.
    drift_rows: int = Field(50_000, ge=1000, description="rows of a snapshot drift is measured on (a fixed sample)")
    # `--engine spark` (features, batch scores): this box by default; a cluster's master URL (yarn,
    # spark://host:7077, k8s://...) and any Spark conf, e.g. OPSCORE_SPARK_CONF='{"spark.executor.memory": "8g"}'.
    spark_master: str = Field("local[2]", description="Spark master URL")
    # On one box the driver is the executor too; it collects the finished snapshot (about 0.5 GB per million users).
    spark_conf: dict[str, str] = Field(default_factory=lambda: {"spark.sql.shuffle.partitions": "8",
                                                                "spark.driver.memory": "4g"})
    # The disbursement forecast: days stored ahead of the data's last day (the endpoint serves 1..this),
    # the interval's coverage, and the rolling-origin backtest (weekly origins over this many weeks,
    # each forecasting this many days).
    forecast_horizon_days: int = Field(28, ge=1, le=366)
    forecast_level: float = Field(0.8, gt=0, lt=1)
    forecast_backtest_weeks: int = Field(8, ge=1)
    forecast_backtest_days: int = Field(14, ge=1)
    # What one conversion is worth (CNY) in the operating report's campaign ROI.
    report_conversion_value: float = Field(50.0, gt=0)

    # `simulate` past this many users runs in chunks of it, this many at once (memory: about 3.5 GB each).
    simulate_chunk_users: int = Field(500_000, ge=1000, description="users simulated in one process at a time")
    simulate_processes: int = Field(2, ge=1, description="chunks simulated at once")
    # DuckDB's own default is 80% of the machine; past this it spills to data/.duckdb-tmp instead.
    duckdb_memory_gib: float = Field(8.0, gt=0, description="memory DuckDB may use for the features")

    # Contact caps count the sends of this many days (the plan's send date among them).
    contact_window_days: int = Field(30, ge=1)

    @property
    def plans_db(self) -> Path:
        """The campaign plan store (scoring/plans.py)."""
        return self.data_dir / "plans.sqlite"

    @property
    def warehouse_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def warehouse_db(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def truth_dir(self) -> Path:
        return self.data_dir / "truth"

    @property
    def derived_dir(self) -> Path:
        """Arrays derived from the serving snapshot and the champions, shared by the workers (scoring/derived.py)."""
        return self.data_dir / "derived"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshot"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlruns_dir.resolve()}/mlflow.db"

    @property
    def artifact_root(self) -> str:
        return (self.mlruns_dir / "artifacts").resolve().as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()
