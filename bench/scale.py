"""`make bench-scale`: the scale figures of issue 17, added to bench-results.json (kept apart from
`make bench`: it takes longer). Works in a temporary folder.

- simulate_features_<n>_s / _peak_gib: `simulate --users N` then `features` (DuckDB), N = --users;
- duckdb_features_<m>_s / spark_features_<m>_s: `features` on a world of --spark-users (M) users with each
  engine (Spark on OPSCORE_SPARK_MASTER, local[2] by default: one box, so expect it slower);
- duckdb_score_<m>_s / spark_score_<m>_s: `score --model churn@champion` of that world's serving snapshot,
  the churn model trained on a small world of the same simulator.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.__main__ import env_for, log, py, timed

TRAIN_USERS = 20_000


def tag(users: int) -> str:
    return f"{users // 1_000_000}m" if users % 1_000_000 == 0 else f"{users // 1000}k"


def bench_simulate_features(work: Path, users: int, figures: dict) -> None:
    env = env_for(work / "big", work / "big-mlruns")
    log(f"simulate + features (DuckDB), {users:,} users")
    s1, m1, _ = timed(py("-m", "training", "simulate", "--users", str(users)), env)
    s2, m2, _ = timed(py("-m", "training", "features"), env)
    figures[f"simulate_features_{tag(users)}_s"] = s1 + s2
    figures[f"simulate_features_{tag(users)}_peak_gib"] = max(m1, m2)


def bench_engines(work: Path, users: int, figures: dict) -> None:
    data, mlruns = work / "engines", work / "engines-mlruns"
    env = env_for(data, mlruns)
    log(f"features on DuckDB and on Spark, {users:,} users")
    timed(py("-m", "training", "simulate", "--users", str(users)), env)
    for engine in ("duckdb", "spark"):
        seconds, _, _ = timed(py("-m", "training", "features", "--engine", engine), env)
        figures[f"{engine}_features_{tag(users)}_s"] = seconds
    small, small_mlruns = work / "small", work / "small-mlruns"
    small_env = env_for(small, small_mlruns)
    log(f"churn trained on {TRAIN_USERS:,} users (not timed)")
    timed(py("-m", "training", "simulate", "--users", str(TRAIN_USERS)), small_env)
    timed(py("-m", "training", "features"), small_env)
    timed(py("-m", "training", "train", "churn"), small_env)
    for engine in ("duckdb", "spark"):
        log(f"batch scores of {users:,} users on {engine}")
        seconds, _, _ = timed(py("-m", "training", "score", "--engine", engine, "--model", "churn@champion",
                                 "--snapshot", str(data / "snapshot"), "--out", str(work / f"scores-{engine}")),
                              small_env)
        figures[f"{engine}_score_{tag(users)}_s"] = seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000_000, help="users simulated + featurised (default 10M)")
    parser.add_argument("--spark-users", type=int, default=1_000_000,
                        help="users of the world both engines featurise and score (default 1M)")
    parser.add_argument("--parts", default="sim,engines", help="comma-separated subset to run")
    parser.add_argument("--out", default="bench-results.json", help="figures are added to this file")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="opscore-bench-scale-") as tmp:
        if "sim" in parts:
            bench_simulate_features(Path(tmp), args.users, figures)
        if "engines" in parts:
            bench_engines(Path(tmp), args.spark_users, figures)
    out = Path(args.out)
    merged = {**(json.loads(out.read_text()) if out.exists() else {}), **{k: round(v, 4) for k, v in figures.items()}}
    out.write_text(json.dumps(merged, indent=2) + "\n")
    for k, v in figures.items():
        print(f"{k:40s}{v:,.4f}")
    print(f"added to {out}")


if __name__ == "__main__":
    main()
