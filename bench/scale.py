"""`make bench-scale`: the scale figures of issue 17, added to bench-results.json (kept apart from
`make bench`: it takes longer). Works in a temporary folder.

- simulate_features_<n>_s / _peak_gib: `simulate --users N` then `features` (DuckDB), N = --users;
- duckdb_features_<m>_s / spark_features_<m>_s: `features` on a world of --spark-users (M) users with each
  engine (Spark on OPSCORE_SPARK_MASTER, local[2] by default: one box, so expect it slower);
- duckdb_score_<m>_s / spark_score_<m>_s: `score --model churn@champion` of that world's serving snapshot,
  the churn model trained on a small world of the same simulator;
- serve_<n>_pss_gib / serve_<n>_one_worker_pss_gib / serve_<n>_pss_vs_one_worker_ratio / serve_<n>_start_s:
  the service on the --users world's snapshot (the champions trained on a small world) with one worker, then
  with two: the proportional set size summed over the server's processes (shared pages counted once), after
  every user has been scored, a lookalike expansion and a plan over the whole base; the seconds until
  /readyz with two workers, which find the arrays derived from the snapshot (scoring.derived) as a restarted
  server does; serve_<n>_first_start_s: the one worker's, which derives them (every user's abuse score);
  with two workers after the warm-up, single_user_<n>_p99_ms (churn, 8 clients) and batch_10k_<n>_ms (p50).
- lookalike_<n>_top50k_ms / lookalike_<n>_recall_vs_exact / lookalike_<n>_index_gib: on the --users world served
  by two workers, the median time of POST /v1/lookalike with 1,000 random seed users and k = 50,000 (the
  self-check's second search included); the share of an exact search's top 50k (same seeds, same vote, true
  nearest neighbours in the full embedding: bench/lookalike_exact.py) that the served index's ranking returns,
  computed in-process; and the size of the index file, all a worker maps of the lookalike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

from bench.common import HOST, add_key, env_for, log, pss_by_mapping_gib, py, server_log, timed, tree_pss_gib
from bench.loadgen import build_request, run_load
from bench.lookalike_exact import recall_vs_exact
from scoring.arms import ARMS
from scoring.lookalike import Lookalike
from scoring.snapshot import Snapshot
from service.launch import bentoml_serve, free_port, start, stop

TRAIN_USERS = 20_000
LOOKALIKE_SEEDS, LOOKALIKE_K, LOOKALIKE_CALLS = 1000, 50_000, 5


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


def trained_world(work: Path) -> tuple[Path, dict[str, str]]:
    """Every champion and the forecast trained on small worlds (not timed): the service is ready only with all."""
    small, mlruns = work / "served-small", work / "served-mlruns"
    env = env_for(small, mlruns)
    if not (mlruns / "all").exists():
        log(f"all champions trained on {TRAIN_USERS:,} users, the forecast on a 760-day world (not timed)")
        timed(py("-m", "training", "simulate", "--users", str(TRAIN_USERS)), env)
        timed(py("-m", "training", "features"), env)
        timed(py("-m", "training", "train", "all"), env)
        forecast_env = env_for(work / "forecast", mlruns)
        timed(py("-m", "training", "simulate", "--users", str(TRAIN_USERS), "--days", "760"), forecast_env)
        timed(py("-m", "training", "train", "forecast"), forecast_env)
        (mlruns / "all").touch()
    return mlruns, env


def serve_world(work: Path, users: int) -> dict[str, str]:
    """The --users world ready to serve: simulated and featurised (unless it is), seeds, lookalike index
    and the champions imported with its snapshot (not timed; once per work folder)."""
    big = work / "big"
    mlruns, _ = trained_world(work)
    env = env_for(big, mlruns, work / "bentoml")
    if not (big / "snapshot" / "manifest.json").exists():
        log(f"simulate + features, {users:,} users (not timed here)")
        timed(py("-m", "training", "simulate", "--users", str(users)), env)
        timed(py("-m", "training", "features"), env)
    if not (big / "served").exists():
        log("seeds, lookalike index and import of the champions with the large snapshot (not timed)")
        timed(py("-m", "training", "seeds"), env)
        timed(py("-m", "training", "lookalike-index"), env)
        timed(py("-m", "service", "import-models"), env)
        (big / "served").touch()
    return env


def bench_serve_memory(work: Path, users: int, figures: dict) -> None:
    big = work / "big"
    env = serve_world(work, users)
    key = add_key(env, "bench-scale", "campaign,risk")
    ids = pq.read_table(big / "snapshot" / "features.parquet", columns=["user_id"]).column(0).to_pylist()
    send_date = json.loads((big / "snapshot" / "manifest.json").read_text())["as_of"]
    shutil.rmtree(big / "derived", ignore_errors=True)  # the first server derives its arrays afresh
    for workers in (1, 2):
        port = free_port()
        started = time.perf_counter()
        server = start(bentoml_serve("service.service:Opscore", port, HOST), {**env, "OPSCORE_SERVE_WORKERS": str(workers)},
                       port, server_log(), timeout=1800, workers=workers)
        try:
            ready_s = time.perf_counter() - started
            touch_every_row(port, key, ids, send_date)
            pss = tree_pss_gib(server.process.pid)
            log("PSS by mapping (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in pss_by_mapping_gib(server.process.pid).items()))
            if workers == 2:
                latencies(port, key, ids, tag(users), figures)
        finally:
            stop(server)
            server.log.unlink(missing_ok=True)
        log(f"{workers} worker(s): ready in {ready_s:.0f} s, PSS {pss:.2f} GiB after touching every row")
        if workers == 1:
            figures[f"serve_{tag(users)}_one_worker_pss_gib"] = pss
            figures[f"serve_{tag(users)}_first_start_s"] = ready_s
        else:
            figures[f"serve_{tag(users)}_pss_gib"] = pss
            figures[f"serve_{tag(users)}_start_s"] = ready_s
    figures[f"serve_{tag(users)}_pss_vs_one_worker_ratio"] = (figures[f"serve_{tag(users)}_pss_gib"]
                                                             / figures[f"serve_{tag(users)}_one_worker_pss_gib"])


def latencies(port: int, key: str, ids: list, name: str, figures: dict) -> None:
    """Single users at 8 clients and one 10k batch at a time, on the churn endpoint, over random users."""
    auth = {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(0)
    singles = [build_request(HOST, port, "/v1/churn/score", json.dumps({"user_ids": [int(u)]}).encode(), auth)
               for u in rng.choice(ids, 2000, replace=False)]
    r = run_load(HOST, port, singles, concurrency=8, seconds=15)
    figures[f"single_user_{name}_p99_ms"] = r.pct(99)
    batch = [build_request(HOST, port, "/v1/churn/score",
                           json.dumps({"user_ids": [int(u) for u in rng.choice(ids, 10_000, replace=False)]}).encode(), auth)]
    r = run_load(HOST, port, batch, concurrency=1, seconds=10, warmup=2)
    figures[f"batch_10k_{name}_ms"] = r.pct(50)
    log(f"single user p99 {figures[f'single_user_{name}_p99_ms']:.1f} ms; 10k batch {r.pct(50):.0f} ms")


def bench_lookalike(work: Path, users: int, figures: dict) -> None:
    big = work / "big"
    env = serve_world(work, users)
    key = add_key(env, "bench-lookalike", "campaign")
    snapshot = Snapshot.load(big / "snapshot")
    seed_rows = np.sort(np.random.default_rng(2).choice(len(snapshot.ids), LOOKALIKE_SEEDS, replace=False))
    body = {"seed_user_ids": snapshot.ids[seed_rows].tolist(), "k": LOOKALIKE_K}
    port = free_port()
    server = start(bentoml_serve("service.service:Opscore", port, HOST), {**env, "OPSCORE_SERVE_WORKERS": "2"},
                   port, server_log(), timeout=1800, workers=2)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=600) as client:
            ms = []
            for _ in range(2 + LOOKALIKE_CALLS):  # one warm-up call for each worker
                started = time.perf_counter()
                client.post("/v1/lookalike", json=body).raise_for_status()
                ms.append(1000 * (time.perf_counter() - started))
    finally:
        stop(server)
        server.log.unlink(missing_ok=True)
    figures[f"lookalike_{tag(users)}_top50k_ms"] = float(np.median(ms[2:]))
    log(f"lookalike {LOOKALIKE_SEEDS} seeds → {LOOKALIKE_K:,} over HTTP: {np.median(ms[2:]):.0f} ms (median)")
    lk = Lookalike.load(big / "snapshot" / "lookalike", snapshot)
    figures[f"lookalike_{tag(users)}_index_gib"] = (big / "snapshot" / "lookalike" / "index.faiss").stat().st_size / 2**30
    figures[f"lookalike_{tag(users)}_recall_vs_exact"] = recall_vs_exact(lk, seed_rows, LOOKALIKE_K)
    log(f"lookalike recall of the exact top {LOOKALIKE_K:,}: {figures[f'lookalike_{tag(users)}_recall_vs_exact']:.4f}")


def touch_every_row(port: int, key: str, ids: list, send_date: str) -> None:
    """Every user scored by each model (the response model for one arm named: every row's features read,
    and 2 of the 49 predictions of all arms), a lookalike expansion and a plan over the whole base from
    each worker (the plan waits for the per-arm table), so that every page the service maps has been read.

    All 48 arms answered live for every user took most of the warm-up's time (a request a second at 10M)."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://{HOST}:{port}", headers=auth, timeout=600) as client:
        for endpoint, extra in (("churn", {}), ("abuse", {}), ("credit", {}), ("response", {"arms": [ARMS[0].id]})):
            for start in range(0, len(ids), 10_000):
                client.post(f"/v1/{endpoint}/score", json={"user_ids": ids[start:start + 10_000], **extra}).raise_for_status()
        client.post("/v1/lookalike", json={"seed_user_ids": ids[:1000], "k": 50_000}).raise_for_status()
        body = {"audience": {"all": True}, "send_date": send_date, "budget": 20_000.0, "holdout_share": 0.0}
        for _ in range(4):
            while (r := client.post("/v1/campaigns/plan", json=body)).status_code == 503:
                time.sleep(float(r.headers.get("Retry-After", "5")))
            r.raise_for_status()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000_000, help="users simulated + featurised (default 10M)")
    parser.add_argument("--spark-users", type=int, default=1_000_000,
                        help="users of the world both engines featurise and score (default 1M)")
    parser.add_argument("--parts", default="sim,engines,serve,lookalike", help="comma-separated subset to run: sim, engines, "
                        "serve (the --users world served with one and two workers), lookalike (the same world with two workers: "
                        "lookalike time and recall against an exact search)")
    parser.add_argument("--work", type=Path, help="keep the worlds in this folder (default: a temporary one, removed)")
    parser.add_argument("--out", default="bench-results.json", help="figures are added to this file")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="opscore-bench-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "sim" in parts:
            bench_simulate_features(work, args.users, figures)
        if "engines" in parts:
            bench_engines(work, args.spark_users, figures)
        if "serve" in parts:
            bench_serve_memory(work, args.users, figures)
        if "lookalike" in parts:
            bench_lookalike(work, args.users, figures)
    out = Path(args.out)
    merged = {**(json.loads(out.read_text()) if out.exists() else {}), **{k: round(v, 4) for k, v in figures.items()}}
    out.write_text(json.dumps(merged, indent=2) + "\n")
    for k, v in figures.items():
        print(f"{k:40s}{v:,.4f}")
    print(f"added to {out}")


if __name__ == "__main__":
    main()
