"""Command line of the offline side: `python -m training --help`.

Each command imports what it needs when it runs, so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from scoring.registry import MODEL_NAMES as MODELS
from scoring.settings import Settings, get_settings
from training.campaigns.cli import campaign_commands

if TYPE_CHECKING:
    from training.data.spark_features import SparkEngine


def _cmd_simulate(args: argparse.Namespace) -> None:
    from training.data.simulate import SimConfig
    from training.data.simulate_chunks import simulate_into

    settings = get_settings()
    counts = simulate_into(SimConfig(users=args.users, days=args.days, seed=args.seed), settings)
    for name, n in counts.items():
        print(f"{name:22s} {n:>12,d} rows")
    print(f"warehouse: {settings.warehouse_db} (Parquet in {settings.warehouse_dir}); truth: {settings.truth_dir}")


def _cmd_load(args: argparse.Namespace) -> None:
    from training.data.warehouse import ContractError, load_dir

    try:
        counts = load_dir(Path(args.dir), get_settings())
    except ContractError as e:
        sys.exit(str(e))
    for name, n in counts.items():
        print(f"{name:22s} {n:>12,d} rows loaded")


def _cmd_features(args: argparse.Namespace) -> None:
    from training.data.snapshots import build_serving_snapshot, build_snapshot, default_dates

    settings = get_settings()
    if args.catalog_db and args.engine != "spark":
        sys.exit("--catalog-db reads the tables from a Spark catalog: add --engine spark")
    engine = _spark_engine(settings, args.catalog_db) if args.engine == "spark" else None
    if args.as_of:
        paths = build_snapshot(settings, args.as_of, engine=engine)
        print(f"features and labels as of {args.as_of}: {paths.root}")
        return
    dates = default_dates(settings, engine)
    for as_of in (dates.train, dates.oot):
        print(f"features and labels as of {as_of}: {build_snapshot(settings, as_of, engine=engine).root}")
    build_serving_snapshot(settings, dates.serving, engine)
    print(f"serving snapshot as of {dates.serving}: {settings.snapshot_dir}")


def _spark_engine(settings: Settings, catalog_db: str | None) -> SparkEngine:
    try:
        from training.data.spark_features import SparkEngine, spark_session
    except ImportError:
        sys.exit("--engine spark needs the spark extra: pip install -e '.[spark]' (and Java 17)")
    spark = spark_session(settings)
    return SparkEngine(spark, catalog_db=catalog_db) if catalog_db else SparkEngine(spark, settings.warehouse_dir)


def _cmd_train(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from training.data.snapshots import default_dates
    from training.tracking import setup_tracking
    from training.train import Table, train_one

    settings = get_settings()
    setup_tracking(settings)
    if args.dataset == "german":
        from training.german import train_german

        for k, v in train_german(settings).items():
            print(f"german {k} = {v:.4f}")
        return
    if args.dataset == "hillstrom":
        _train_hillstrom(args)
        return
    if args.model == "forecast":
        _train_forecast(args)
        return
    names = list(MODELS) if args.model == "all" else [args.model]
    if args.table and len(names) != 1:
        sys.exit("--table trains one model: name it (e.g. `train churn --table PATH --target COLUMN`)")
    if args.table and not args.target:
        sys.exit("--table needs --target COLUMN")
    if args.table and names == ["response"] and not args.treatment:
        sys.exit("`train response --table` needs --treatment COLUMN (the 0/1 randomised assignment)")
    dates = None if args.table else default_dates(settings)
    table = None
    if args.table:
        ids = args.id_columns.split(",") if args.id_columns else None
        table = Table(Path(args.table), args.target, args.positive, args.treatment, ids, args.date_column, args.name,
                      args.test_share)
    for name in names:
        try:
            r = train_one(name, settings, dates, args.force_promote, table)
        except (FileNotFoundError, KeyError, ValueError) as e:
            sys.exit(f"{name}: {e}")
        except MlflowException as e:  # the tracking store refused or is unreachable: say so, without a traceback
            sys.exit(f"{name}: MLflow: {e.message}")
        keys = ("oot_auc", "oot_qini", "oracle", "precision", "recall", "qini", "ceiling", "information_gap",
                "learner_gap")
        figures = ", ".join(f"{k}={v:.4f}" for k, v in r.metrics.items() if k.startswith(keys))
        print(f"{table.registered if table else MODELS[name]} v{r.version} (run {r.run_id}): {figures}; "
              f"{r.decision.reason}")


def _train_forecast(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from training.forecast.job import train_forecast

    try:
        r = train_forecast(get_settings(), args.force_promote)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"forecast: {e}")
    except MlflowException as e:
        sys.exit(f"forecast: MLflow: {e.message}")
    for name, m in r.metrics.items():
        print(f"{name:15s} sMAPE {m['backtest_smape']:.4f} ({m['smape_vs_naive_ratio']:.2f}x seasonal naive), "
              f"MAE {m['backtest_mae']:,.0f}, interval coverage {m['backtest_coverage']:.3f}")
    print(f"disbursement_forecast v{r.version} (run {r.run_id}): {r.chosen}, {r.stored.horizon} days from "
          f"{r.stored.origin}; {r.decision.reason}")


def _train_hillstrom(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from training.hillstrom import EXPERIMENT, render, train_hillstrom

    if args.model != "response":
        sys.exit("--dataset hillstrom is an uplift experiment: `train response --dataset hillstrom`")
    try:
        results = train_hillstrom(get_settings(), args.force_promote)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"hillstrom: {e}")
    except MlflowException as e:
        sys.exit(f"hillstrom: MLflow: {e.message}")
    print(render(results))
    print(f"logged to MLflow: experiment {EXPERIMENT}")


def _cmd_seeds(args: argparse.Namespace) -> None:
    from training.data.seeds import materialise

    for name, n in materialise(get_settings()).items():
        print(f"seed {name:28s} {n:>9,d} users")


def _cmd_lookalike(args: argparse.Namespace) -> None:
    from training.lookalike_index import build_lookalike

    for k, v in build_lookalike(get_settings()).items():
        print(f"{k:20s} {v:,.4f}")


def _cmd_monitor(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from scoring.artifacts import ArtifactError
    from training.monitor import log_run, measure, render
    from training.tracking import setup_tracking

    settings = get_settings()
    setup_tracking(settings)
    try:
        rep, missing = measure(settings)
        run_id = None if args.no_log else log_run(rep, settings)
    except (FileNotFoundError, ArtifactError) as e:
        sys.exit(f"monitor: {e}: run `python -m training features` (and train) first")
    except MlflowException as e:
        sys.exit(f"monitor: MLflow: {e.message}")
    print(render(rep, missing))
    if run_id:
        print(f"logged to MLflow: experiment monitoring, run {run_id}")


def _cmd_score(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    settings = get_settings()
    try:
        if args.engine == "spark":
            from training.spark_score import score_spark

            rows = score_spark(_spark_engine(settings, None).spark, settings, args.model, args.snapshot, args.out)
        else:
            from training.score import score_duckdb

            rows = score_duckdb(settings, args.model, Path(args.snapshot), Path(args.out), args.chunk_rows)
    except MlflowException as e:
        sys.exit(f"score: MLflow: {e.message}")
    except ValueError as e:
        sys.exit(f"score: {e}")
    print(f"{rows:,d} users scored by {args.model}: {args.out} (Parquet, partitioned by band)")


def _cmd_report(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from training.report.page import write
    from training.tracking import setup_tracking

    settings = get_settings()
    setup_tracking(settings)
    try:
        out = write(settings, args.as_of, Path(args.out) if args.out else None, log=not args.no_log)
    except FileNotFoundError as e:
        sys.exit(f"report: {e}")
    except MlflowException as e:
        sys.exit(f"report: MLflow: {e.message}")
    print(f"operating metrics report: {out}" + ("" if args.no_log else " (logged to MLflow: experiment operations_report)"))


def _data_commands(sub) -> None:
    p = sub.add_parser("simulate", help="simulate the app's users and events into the warehouse")
    p.add_argument("--users", type=int, default=20_000,
                   help="number of users (default 20,000); past OPSCORE_SIMULATE_CHUNK_USERS (500,000) simulated in "
                        "chunks, OPSCORE_SIMULATE_PROCESSES (2) at a time, each chunk a world of its own")
    p.add_argument("--days", type=int, default=180, help="days of events (default 180; at least 120)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("load", help="validate <table>.parquet|csv files in DIR against the contract and load them")
    p.add_argument("dir", help="folder with one file per contract table (see README, 'Warehouse contract')")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser(
        "features",
        help="point-in-time features and labels",
        description="Without --as-of: the train snapshot, the out-of-time snapshot one label window later "
        "(the latest with a full label window) and the serving snapshot at the end of the data.",
    )
    p.add_argument("--as-of", type=date.fromisoformat, help="one snapshot date, YYYY-MM-DD (events strictly before it)")
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="duckdb (default): this machine; spark: the same SQL on Spark SQL (OPSCORE_SPARK_MASTER, "
                        "default local[2]; OPSCORE_SPARK_CONF), for bases one machine cannot hold")
    p.add_argument("--catalog-db", metavar="NAME",
                   help="with --engine spark: read the contract's tables from this Spark catalog database "
                        "(e.g. Hive tables NAME.users, NAME.daily_activity, ...) instead of data/warehouse/*.parquet")
    p.set_defaults(func=_cmd_features)


def _train_command(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train, evaluate out-of-time, log to MLflow and gate the champion",
        description="Trains on the train snapshot and validates on the out-of-time one; with --table, on your own "
        "flat feature table instead. Runs, metrics and plots go to MLflow (MLFLOW_TRACKING_URI, default "
        "sqlite:///mlruns/mlflow.db); the new version becomes @champion only if it beats the current one.",
    )
    p.add_argument("model", choices=["all", *MODELS, "forecast"],
                   help="which model (all: the four scoring models; forecast: the daily disbursement forecast, "
                        "which needs a warehouse of at least 730 days, e.g. `simulate --days 760`)")
    p.add_argument("--force-promote", action="store_true", help="make the new version champion whatever the gate says")
    p.add_argument("--table", help="a Parquet/CSV file of features, one row per entity, instead of the snapshots")
    p.add_argument("--target", help="with --table: the binary label column")
    p.add_argument("--positive", help="with --table: the label value that is the event (e.g. bad, churned); "
                                      "needed unless the labels are 0/1 or true/false")
    p.add_argument("--test-share", type=float, default=0.2,
                   help="with --table: the share held out for the out-of-time (or random) test (default 0.2)")
    p.add_argument("--name", help="with --table: the registered model name (default: the table file's name)")
    p.add_argument("--id-columns", help="with --table: comma-separated id columns (default: detected, names like *_id)")
    p.add_argument("--date-column", help="with --table: split out-of-time on this column (default: detected)")
    p.add_argument("--treatment", help="with `response --table`: the 0/1 column of the randomised assignment")
    p.add_argument("--dataset", choices=["simulated", "german", "hillstrom"], default="simulated",
                   help="german: run the credit pipeline on the German credit data (5-fold CV) instead; "
                        "hillstrom (with `response`): each e-mail arm of Hillstrom's experiment through the "
                        "table path, against a fixed two-model LightGBM on the same 70/30 split")
    p.set_defaults(func=_cmd_train)


def _score_command(sub) -> None:
    p = sub.add_parser(
        "score",
        help="batch scores of a whole snapshot (score, band, segment, top reasons), Parquet partitioned by band",
        description="Scores every user of a snapshot with a registered model, exactly as the service scores them "
        "(the same scores and decision-path reasons), and writes OUT/band=1/ ... band=10/ (replacing OUT). "
        "--engine duckdb reads the snapshot in chunks on this machine; --engine spark runs the model as a Spark "
        "UDF (mlflow.pyfunc.spark_udf) on OPSCORE_SPARK_MASTER, where SNAPSHOT and OUT may be cluster paths.",
    )
    p.add_argument("--model", required=True, help="registered model and alias or version: churn@champion, churn/3")
    p.add_argument("--snapshot", default="data/snapshot",
                   help="a snapshot folder or its features.parquet (default: the serving snapshot, data/snapshot)")
    p.add_argument("--out", required=True, help="output folder (replaced)")
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb", help="duckdb (default) or spark")
    p.add_argument("--chunk-rows", type=int, default=100_000, help="with duckdb: users scored per chunk (bounds memory)")
    p.set_defaults(func=_cmd_score)


def _serving_commands(sub) -> None:
    p = sub.add_parser("seeds", help="materialise the seed audiences in seeds/ (SQL or id lists) into the snapshot")
    p.set_defaults(func=_cmd_seeds)

    p = sub.add_parser("lookalike-index", help="embed the serving snapshot, build its faiss index and log it to MLflow")
    p.set_defaults(func=_cmd_lookalike)

    p = sub.add_parser(
        "monitor",
        help="drift (PSI) of the serving snapshot against each champion's training rows, logged to MLflow",
        description="Population stability index of every feature and of each champion's score: the serving "
        "snapshot against the rows the champion was trained on (kept with the model as decile bin edges or "
        "categories and their shares), and against the serving snapshot before it when there was one. Bands: "
        "PSI < 0.1 stable, 0.1-0.25 moderate (*), >= 0.25 significant (**). Missing values and categories the "
        "model never saw (unseen) are bins of their own, and their shares are reported. Churn is compared on "
        "the users it stands for (active in the last 30 days); the other models on every user. Prints a table "
        "and logs a run in the MLflow experiment 'monitoring' (metrics psi/<model>/<feature>, "
        "drift/report.json, drift/psi.csv, plots/psi_per_feature.png).",
    )
    p.add_argument("--no-log", action="store_true", help="print the table only, log nothing to MLflow")
    p.set_defaults(func=_cmd_monitor)

    p = sub.add_parser(
        "report",
        help="the operating metrics as one self-contained HTML page, logged to MLflow",
        description="DAU, MAU, DAU/MAU, launches; retention by signup month (day 1/7/30); the share of active "
        "users under 30 and with a draw-down in 90 days; the top 20%%'s share of fund value; the lifecycle x "
        "value grid and its change over 30 days; per campaign reach, conversion, incremental conversion against "
        "control (95%% interval), cost and ROI, by channel and incentive. Every figure is a SQL query over the "
        "warehouse contract. Written to data/reports/operations_<date>.html and logged to the MLflow "
        "experiment operations_report.",
    )
    p.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD, events strictly before it "
                                                            "(default: the day after the last activity)")
    p.add_argument("--out", help="the page's path (default data/reports/operations_<date>.html)")
    p.add_argument("--no-log", action="store_true", help="write the page only, log nothing to MLflow")
    p.set_defaults(func=_cmd_report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_data_commands, _train_command, _score_command, _serving_commands, campaign_commands):
        add(sub)
    args = parser.parse_args(argv)
    # MLflow's hints about integer schemas and dataset sources are noise for users of this CLI.
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "days", 120) < 120:
        parser.error("--days must be at least 120: two snapshots need 90 days of history and 30-day label windows")
    args.func(args)


if __name__ == "__main__":
    main()
