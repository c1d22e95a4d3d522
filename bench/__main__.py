"""`make bench`: every target of DESIGN.md measured side by side in one run, on this machine, into
bench-results.json (figure → number, unit in the name), in a temporary folder. Parts (`--parts`): sim, train,
german, hillstrom, lookalike, serve, plan, forecast, report; `--help` says what each measures."""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.loadgen import Load, LoadResult, Target, build_request, compare, merge, run_load, together
from scoring.answer import Layout
from scoring.answer_json import score_json
from bench.common import BIN, HOST, ROOT, add_key, env_for, log, py, server_log, serving, timed
from bench.plans import bench_plan, warm_planning
from scoring.settings import get_settings
from service.launch import free_port, start, stop

# Served side by side and loaded in interleaved rounds with the same single-user requests.
SINGLE_USER_TARGETS = {
    "serve": "service.service:Opscore",
    "bare": "bench.bare_service:Bare",  # the reference: parses the body, returns a serialised constant
    "bare_dict": "bench.bare_service:BareDict",  # the same constant as a dict, serialised by BentoML
    "batched": "bench.batched_service:Batched",  # adaptive batching, kept only if it helps
}
# The champions' run metrics reported as figures (`<model>_<metric>_<size>`): out-of-time quality, the
# oracle's, and its gap split at the feature ceiling (information the features lack, what the learner left).
QUALITY_FIGURES = ("oot_auc", "oracle", "oot_qini", "qini_vs_oracle", "precision_at", "recall_at", "oot_ks",
                   "ceiling", "information_gap", "learner_gap", "qini_vs_ceiling")
# Mixed traffic: a risk engine's single-user calls, 8 clients paced at 50 calls/s each (400/s, about
# a quarter of what the service answers flat out, so their latency is measured, not the queue of a
# saturated server), beside a campaign system's four 10k batches back to back.
SINGLE_CLIENTS, SINGLE_INTERVAL_S, BATCHES = 8, 0.02, 4
# What a kept work folder (`--work`) has finished building, marked by empty files.
WORLD_BUILT, CHAMPIONS_BUILT, FORECAST_BUILT = ".bench-world-built", ".bench-champions-built", ".bench-forecast-built"


def _built(marker: Path) -> bool:
    """Whether a kept work folder (`--work`) already holds what `marker` stands for (a world, or
    models in a store): reused as it is, its build not timed again."""
    if marker.exists():
        log(f"reusing {marker.parent} ({marker.name})")
        return True
    return False


def bench_sim(work: Path, users: int, figures: dict) -> Path:
    data = work / "large"
    if _built(data / WORLD_BUILT):
        return data
    env = env_for(data, work / "large-mlruns")
    log(f"simulate + features, {users:,} users")
    s1, m1, _ = timed(py("-m", "training", "simulate", "--users", str(users)), env)
    s2, m2, _ = timed(py("-m", "training", "features"), env)
    tag = "1m" if users == 1_000_000 else f"{users // 1000}k"
    figures[f"simulate_features_{tag}_s"] = s1 + s2
    figures[f"simulate_features_{tag}_peak_gib"] = max(m1, m2)
    figures[f"simulate_{tag}_s"] = s1
    (data / WORLD_BUILT).touch()
    return data


def bench_train(work: Path, users: int, figures: dict) -> Path:
    data, mlruns = work / "train", work / "train-mlruns"
    tag = f"{users // 1000}k"
    if not _built(mlruns / CHAMPIONS_BUILT):
        env = env_for(data, mlruns)
        log(f"simulate + features for training, {users:,} users (not timed)")
        timed(py("-m", "training", "simulate", "--users", str(users)), env)
        timed(py("-m", "training", "features"), env)
        log("train all")
        seconds, peak, out = timed(py("-m", "training", "train", "all"), env)
        figures[f"train_all_{tag}_s"] = seconds
        figures[f"train_all_{tag}_peak_gib"] = peak
        (mlruns / CHAMPIONS_BUILT).touch()
    champion_figures(mlruns, tag, figures)
    return mlruns


def champion_figures(mlruns: Path, tag: str, figures: dict) -> None:
    """The champions' quality metrics, as their training runs logged them."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlruns.resolve()}/mlflow.db")
    for name in ("churn", "promo_abuse", "marketing_response", "credit_features"):
        try:
            run = client.get_run(client.get_model_version_by_alias(name, "champion").run_id)
        except Exception:  # noqa: BLE001 - a model not built yet is simply absent
            continue
        for k, v in run.data.metrics.items():
            if k.startswith(QUALITY_FIGURES):
                figures[f"{name}_{k}_{tag}"] = v


def bench_german(work: Path, figures: dict) -> None:
    """German credit's 5-fold CV AUC of each model (`train credit --dataset german`), and the best of them."""
    log("German credit, 5-fold cross-validation")
    _, _, out = timed(py("-m", "training", "train", "credit", "--dataset", "german"),
                      env_for(work / "german", work / "german-mlruns"))
    aucs = {}
    for line in out.splitlines():  # "german scorecard_cv_auc = 0.7910"
        parts = line.split()
        if len(parts) == 4 and parts[0] == "german" and parts[1].endswith("_cv_auc"):
            aucs[parts[1]] = float(parts[3])
    figures.update({f"german_{k}": v for k, v in aucs.items()})
    figures["german_best_cv_auc"] = max(aucs.values())


def bench_hillstrom(work: Path, figures: dict) -> None:
    """Hillstrom's held-out Qini of each e-mail arm's champion over the fixed reference's (the sdist
    already in data/external is reused rather than fetched again)."""
    from training.hillstrom import EXPERIMENT, SDIST

    data, mlruns = work / "hillstrom", work / "hillstrom-mlruns"
    cached = ROOT / "data" / "external" / SDIST
    if cached.exists():
        (data / "external").mkdir(parents=True, exist_ok=True)
        shutil.copy(cached, data / "external" / SDIST)
    log("train response --dataset hillstrom")
    timed(py("-m", "training", "train", "response", "--dataset", "hillstrom"), env_for(data, mlruns))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlruns.resolve()}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], "attributes.run_name = 'hillstrom'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    for arm in ("women", "men"):
        name = f"hillstrom_{arm}_qini_vs_reference_ratio"
        if name in run.data.metrics:
            figures[name] = run.data.metrics[name]


def bench_lookalike_index(large: Path, work: Path, figures: dict) -> None:
    env = env_for(large, work / "large-mlruns")
    timed(py("-m", "training", "seeds"), env)
    log("lookalike index over the large snapshot")
    _, peak, out = timed(py("-m", "training", "lookalike-index"), env)
    # The command prints "name value" lines: build time, the index file's size, the self-check's recall of
    # held-out top_value_20pct seeds (the quality figure an index change must not lower).
    printed = {"index_build_s": "lookalike_index_build_s", "index_gib": "lookalike_index_gib",
               "selfcheck_recall": "lookalike_index_selfcheck_recall"}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in printed:
            figures[printed[parts[0]]] = float(parts[1].replace(",", ""))
    figures["lookalike_index_peak_gib"] = peak


def _ids(large: Path, n: int, seed: int = 0, churn_scores: bool = True) -> list[int]:
    """Random users of the serving snapshot; by default only those churn scores (active in the last
    30 days), so that every call measured is a scored one."""
    import pandas as pd

    frame = pd.read_parquet(large / "snapshot" / "features.parquet", columns=["active_days_30"])
    ids = (frame.index[frame.active_days_30 >= 1] if churn_scores else frame.index).to_numpy()
    return np.random.default_rng(seed).choice(ids, n, replace=False).tolist()


def bench_serve(large: Path, mlruns: Path, work: Path, figures: dict, seconds: float,
                serve_env: dict[str, str] | None = None) -> None:
    home = work / "bentoml"
    env = {**env_for(large, mlruns, home), **(serve_env or {})}
    log("import champions (trained on the training set) with the large snapshot")
    timed(py("-m", "service", "import-models", "--allow-missing"), env)
    key = add_key(env, "bench", "campaign,risk")
    auth = {"Authorization": f"Bearer {key}"}
    singles = [json.dumps({"user_ids": [u]}).encode() for u in _ids(large, 2000)]

    with ExitStack() as servers:
        log(f"starting {', '.join(SINGLE_USER_TARGETS.values())}")
        ports = {name: servers.enter_context(serving(target, env)) for name, target in SINGLE_USER_TARGETS.items()}
        warm_planning(ports["serve"], key, large)
        bench_single_users(ports, singles, auth, seconds, figures)

        port = ports["serve"]
        batch = json.dumps({"user_ids": _ids(large, 10_000, seed=1)}).encode()
        breq = [build_request(HOST, port, "/v1/churn/score", batch, auth)]
        r = run_load(HOST, port, breq, concurrency=1, seconds=max(5, seconds / 2), warmup=2)
        figures["batch_10k_ms"] = r.pct(50)
        figures["batch_10k_p99_ms"] = r.pct(99)
        r = run_load(HOST, port, breq, concurrency=2, seconds=max(5, seconds / 2), warmup=2)
        figures["batch_rows_per_s"] = r.rps * 10_000
        log(f"10k batch: {figures['batch_10k_ms']:.0f} ms; {figures['batch_rows_per_s']:.0f} rows/s")

        bench_mixed(ports, singles, batch, auth, seconds, figures)

        seeds = json.dumps({"seed_user_ids": _ids(large, 1000, seed=2, churn_scores=False), "k": 50_000}).encode()
        lreq = [build_request(HOST, port, "/v1/lookalike", seeds, auth)]
        r = run_load(HOST, port, lreq, concurrency=1, seconds=10, warmup=2)
        if r.errors == 0 and r.requests:
            figures["lookalike_1m_top50k_ms"] = r.pct(50)
            log(f"lookalike 1000 seeds → 50k: {r.pct(50):.0f} ms")

    figures.update(inprocess(large, mlruns))
    if "batch_rows_per_s" in figures:
        figures["batch_rows_per_s_vs_inprocess_ratio"] = figures["batch_rows_per_s"] / figures["inprocess_rows_per_s"]

    port = free_port()
    log("mlflow models serve of the same churn model")
    menv = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{mlruns.resolve()}/mlflow.db"}
    proc = start([str(BIN / "mlflow"), "models", "serve", "-m", "models:/churn@champion", "--env-manager", "local",
                  "-p", str(port), "-h", HOST], menv, port, server_log(), "/ping", timeout=900)
    try:
        rows = mlflow_rows(large, mlruns)
        reqs = [build_request(HOST, port, "/invocations", b, {}) for b in rows]
        r = run_load(HOST, port, reqs, concurrency=8, seconds=seconds)
        figures.update(mlflow_serve_single_rps=r.rps, mlflow_serve_single_p99_ms=r.pct(99))
    finally:
        stop(proc)
        proc.log.unlink(missing_ok=True)


def bench_single_users(ports: dict[str, int], singles: list[bytes], auth: dict, seconds: float, figures: dict) -> None:
    """Single-user calls to every target at 8 clients. Interleaved rounds: the shared machine's background
    load, which moves by tens of percent within a minute, falls on every server alike instead of on
    whichever ran last."""
    results = compare({name: Target(HOST, port, [build_request(HOST, port, "/v1/churn/score", b, auth) for b in singles])
                       for name, port in ports.items()}, concurrency=8, seconds=seconds)
    for name, r in results.items():
        figures.update({f"{name}_single_rps": r.rps, f"{name}_single_p50_ms": r.pct(50),
                        f"{name}_single_p99_ms": r.pct(99), f"{name}_single_errors": float(r.errors)})
        log(f"{SINGLE_USER_TARGETS[name]} single user: {r.rps:.0f} req/s, p99 {r.pct(99):.1f} ms, {r.errors} errors")
    figures["serve_single_rps_vs_bare_ratio"] = results["serve"].rps / results["bare"].rps
    figures["serve_single_rps_vs_bare_dict_ratio"] = results["serve"].rps / results["bare_dict"].rps


def bench_mixed(ports: dict[str, int], singles: list[bytes], batch: bytes, auth: dict, seconds: float,
                figures: dict) -> None:
    """Single users beside large batches, against each alone, in alternating rounds; then 64 clients."""
    port = ports["serve"]
    single = Load(Target(HOST, port, [build_request(HOST, port, "/v1/churn/score", b, auth) for b in singles]),
                  SINGLE_CLIENTS, SINGLE_INTERVAL_S)
    batches = Load(Target(HOST, port, [build_request(HOST, port, "/v1/churn/score", batch, auth)]), BATCHES)
    runs: dict[str, list[LoadResult]] = {"single": [], "batch": [], "mixed_single": [], "mixed_batch": []}
    together({"single": single, "batch": batches}, 3)  # warm-up
    kinds = [("alone", {"single": single}), ("alone", {"batch": batches}), ("mixed", {"single": single, "batch": batches})]
    for r in range(4):  # alternating order: the machine's drifting background load falls on each alike
        for kind, loads in kinds if r % 2 == 0 else kinds[::-1]:
            for name, result in together(loads, seconds / 4).items():
                runs[name if kind == "alone" else f"mixed_{name}"].append(result)
    res = {k: merge(v) for k, v in runs.items()}
    figures.update(solo_single_p99_ms=res["single"].pct(99), mixed_single_p99_ms=res["mixed_single"].pct(99),
                   mixed_single_errors=float(res["mixed_single"].errors), mixed_batch_errors=float(res["mixed_batch"].errors),
                   mixed_single_p99_vs_solo_ratio=res["mixed_single"].pct(99) / res["single"].pct(99),
                   mixed_batch_rows_vs_solo_ratio=res["mixed_batch"].rps / res["batch"].rps)
    log(f"single-user p99 {res['single'].pct(99):.1f} ms alone, {res['mixed_single'].pct(99):.1f} ms beside "
        f"{BATCHES} 10k batches; batches {res['batch'].rps * 10_000:.0f} rows/s alone, "
        f"{res['mixed_batch'].rps * 10_000:.0f} beside singles ({res['mixed_batch'].errors} refused)")
    wide = compare({name: Target(HOST, ports[name], [build_request(HOST, ports[name], "/v1/churn/score", b, auth)
                                                      for b in singles]) for name in ("serve", "bare")},
                   concurrency=64, seconds=seconds)
    figures.update(serve_single_64_p99_ms=wide["serve"].pct(99), bare_single_64_p99_ms=wide["bare"].pct(99),
                   single_64_clients_p99_vs_bare_ratio=wide["serve"].pct(99) / wide["bare"].pct(99))
    log(f"64 clients: p99 {wide['serve'].pct(99):.1f} ms against bare {wide['bare'].pct(99):.1f} ms")


def _churn_scorer(mlruns: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{mlruns.resolve()}/mlflow.db")
    return mlflow.pyfunc.load_model("models:/churn@champion")


def mlflow_rows(large: Path, mlruns: Path) -> list[bytes]:
    import pandas as pd

    model = _churn_scorer(mlruns)
    spec = model.unwrap_python_model().scorer.spec
    frame = spec.frame(pd.read_parquet(large / "snapshot" / "features.parquet").sample(500, random_state=0))
    return [json.dumps({"dataframe_split": frame.iloc[[i]].to_dict(orient="split")}, default=float).encode()
            for i in range(len(frame))]


def inprocess(large: Path, mlruns: Path) -> dict:
    """The same scoring the service does for a 10k batch (predict, reasons, the answer's JSON text), without HTTP."""
    import pandas as pd

    scorer = _churn_scorer(mlruns).unwrap_python_model().scorer
    frame = pd.read_parquet(large / "snapshot" / "features.parquet").sample(10_000, random_state=1)
    X, ids = scorer.spec.to_matrix(frame), frame.index.tolist()
    model = Layout.of(scorer, {"name": "churn", "version": "0", "run_id": "bench"})
    threads = get_settings().scoring_threads
    score_json(model, X, 3, threads, ids)
    gc.freeze()  # as the service does once its models are loaded
    times = []
    for _ in range(5):
        t = time.perf_counter()
        score_json(model, X, 3, threads, ids)
        times.append(time.perf_counter() - t)
    predict_only = []
    for _ in range(5):  # a median, as above: one timed call moved 8x with the box's other load
        t = time.perf_counter()
        scorer.predict(X)
        predict_only.append(time.perf_counter() - t)
    return {"inprocess_rows_per_s": 10_000 / float(np.median(times)),
            "inprocess_predict_only_rows_per_s": 10_000 / float(np.median(predict_only))}


def bench_report(large: Path, work: Path, users: int, figures: dict) -> None:
    """The operating metrics report over the large world's warehouse (page written, not logged)."""
    log(f"operating report, {users:,} users")
    seconds, peak, _ = timed(py("-m", "training", "report", "--no-log", "--out", str(work / "report.html")),
                             env_for(large, work / "large-mlruns"))
    tag = "1m" if users == 1_000_000 else f"{users // 1000}k"
    figures[f"report_{tag}_s"] = seconds
    figures[f"report_{tag}_peak_gib"] = peak


def bench_forecast(work: Path, users: int, figures: dict, mlruns: Path | None) -> None:
    """The disbursement forecast on a 760-day world: the champion's backtest sMAPE against seasonal
    naive's, and its 80% interval's coverage of the backtest days. Tracked in the training world's store
    when there is one (as `make train` does), since the service is not ready without a forecast."""
    data, mlruns = work / "forecast", mlruns or work / "forecast-mlruns"
    # Marked in the store the forecast is tracked in: a rebuilt store needs it trained again.
    if _built(mlruns / FORECAST_BUILT):
        return
    env = env_for(data, mlruns)
    log(f"simulate {users:,} users over 760 days, train forecast")
    timed(py("-m", "training", "simulate", "--users", str(users), "--days", "760"), env)
    seconds, _, _ = timed(py("-m", "training", "train", "forecast"), env)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlruns.resolve()}/mlflow.db")
    run = client.get_run(client.get_model_version_by_alias("disbursement_forecast", "champion").run_id)
    figures["forecast_smape_vs_naive_ratio"] = run.data.metrics["smape_vs_naive_ratio"]
    figures["forecast_interval_coverage"] = run.data.metrics["backtest_coverage"]
    figures["forecast_backtest_smape"] = run.data.metrics["backtest_smape"]
    figures["train_forecast_s"] = seconds
    (mlruns / FORECAST_BUILT).touch()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-users", type=int, default=1_000_000, help="users of the large world (default 1M)")
    parser.add_argument("--train-users", type=int, default=200_000, help="users of the training world (default 200k)")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each load test (default 15)")
    parser.add_argument("--forecast-users", type=int, default=20_000,
                        help="users of the forecast's 760-day world (default 20k)")
    parser.add_argument("--parts", default="sim,train,german,hillstrom,lookalike,serve,plan,forecast,report",
                        help="comma-separated subset: sim (1M users simulate + features), train (200k users, train "
                             "all), german (5-fold CV), hillstrom (Qini vs its reference), lookalike (1M index, "
                             "expansion), serve (single users vs a bare endpoint, 10k batches, mixed load), plan (a whole base "
                             "planned over HTTP; its true value against the oracle, propensity and random plans; the plan with a holdout simulated and evaluated), forecast "
                             "(760-day backtest), report (the operating metrics page)")
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--work", type=Path, help="keep the worlds in this folder (default: a temporary one, removed); "
                        "worlds it already holds are reused, not rebuilt or timed, so one part can be run again")
    parser.add_argument("--serve-env", action="append", default=[], metavar="OPSCORE_NAME=VALUE",
                        help="a setting of the services the serve part starts (repeatable), e.g. "
                             "OPSCORE_BATCH_PROCESSES=true, to compare configurations run by run")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    serve_env = {}
    for item in args.serve_env:
        name, eq, value = item.partition("=")
        if not (eq and name.startswith("OPSCORE_")):
            parser.error(f"--serve-env takes OPSCORE_NAME=VALUE settings, not {item!r}")
        serve_env[name] = value
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opscore-bench-")))
        work.mkdir(parents=True, exist_ok=True)
        large = bench_sim(work, args.large_users, figures) if parts & {"sim", "lookalike", "serve", "plan", "report"} else None
        mlruns = bench_train(work, args.train_users, figures) if parts & {"train", "serve", "plan"} else None
        if parts & {"forecast", "serve", "plan"}:
            bench_forecast(work, args.forecast_users, figures, mlruns)
        if "german" in parts:
            bench_german(work, figures)
        if "hillstrom" in parts:
            bench_hillstrom(work, figures)
        if parts & {"lookalike", "serve", "plan"}:  # the service is ready only with its seeds and lookalike index
            bench_lookalike_index(large, work, figures)
        if "serve" in parts:
            bench_serve(large, mlruns, work, figures, args.seconds, serve_env)
        if "plan" in parts:
            bench_plan(large, mlruns, work, figures)
        if "report" in parts:
            bench_report(large, work, args.large_users, figures)
    figures = {k: round(float(v), 4) for k, v in figures.items()}
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    width = max(map(len, figures), default=len("figure")) + 2
    print("\n" + "figure".ljust(width) + "value")
    for k, v in figures.items():
        print(k.ljust(width) + f"{v:,.4f}")
    print(f"\nwritten to {args.out}; peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")


if __name__ == "__main__":
    main()
