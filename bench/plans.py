"""The campaign planner's figures: a whole base planned over HTTP, and the plan's true worth against
the plans a team could make without it.

Every plan is given the same budget on the large world and valued by the simulator's truth: the
true expected incremental conversions of the sends it makes (P(convert | arm) − P(convert | control)
of each contacted user). The reference plans are the same optimiser fed the true per-arm
probabilities (the oracle plan), the users most likely to convert sent the one arm our plan uses
most (the propensity plan), and random users each sent a random arm (the random plan). Each is made at
two budgets: one that reaches the whole base (the figures' plain names) and one that reaches a fifth of
it (`_targeted`), where whom to contact matters as much as with what.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import HOST, add_key, env_for, log, py, serving, timed
from scoring.arms import ARMS
from scoring.campaign import campaign_of
from scoring.optimise import NONE
from scoring.plan import ArmTable, alike, plan
from scoring.plan_request import PlanRequest
from scoring.settings import Settings

# A campaign over the whole base whose budget binds on incentives only: a push costs 0.005, so a reminder
# reaches everyone for 5,000 and the plans differ in which arm each user gets, not in whom they contact.
BUDGET = 20_000.0
# A campaign whose budget binds on whom it contacts: a fifth of the base's pushes. Here choosing whom to
# contact counts, which is what the propensity plan (the likeliest converters) is the usual answer to.
TARGETED_BUDGET = 1_000.0
TIMED_PLANS = 3
WARM_PLANS = 6
# The measured plan's holdout: half its users, so that the realised uplift's interval is as narrow as it can be.
MEASURED_HOLDOUT = 0.5


def _call(port: int, method: str, path: str, key: str, body: dict | None = None) -> tuple[bytes, float]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        out = resp.read()
    return out, time.perf_counter() - start


def plan_call(port: int, key: str, body: dict, deadline_s: float = 1800) -> tuple[bytes, float]:
    """A plan call once the worker it reaches has its per-arm table: until then (minutes at 1M users
    on a busy box) the service answers 503 with a Retry-After. The time is the answered call's."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return _call(port, "POST", "/v1/campaigns/plan", key, body)
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > end:
                raise
            time.sleep(min(int(e.headers.get("Retry-After", "10")), 30))


def warm_planning(port: int, key: str, large: Path) -> date:
    """Plans from each worker, so that the per-arm table each computes at start (minutes at 1M users,
    on a thread beside everything else it serves) is done before anything is timed; the send date."""
    manifest = json.loads((large / "snapshot" / "manifest.json").read_text())
    send_date = date.fromisoformat(manifest["as_of"]) + timedelta(days=1)
    for _ in range(WARM_PLANS):
        plan_call(port, key, request_body(send_date))
    return send_date


def request_body(send_date: date, budget: float = BUDGET) -> dict:
    """The plan every figure compares: the whole base, every arm at its trained costs, no holdout (the
    value of the sends, not the measurement), no exclusions beyond the warehouse's."""
    return {"audience": {"all": True}, "send_date": send_date.isoformat(), "budget": budget, "holdout_share": 0.0,
            "exclusions": {"opt_outs": False}}


def true_value(arm: np.ndarray, p_control: np.ndarray, p_arm: np.ndarray) -> float:
    """True expected incremental conversions of sending each user `arm` (an index into ARMS; NONE: no send)."""
    sent = np.flatnonzero(arm != NONE)
    return float((p_arm[sent, arm[sent]] - p_control[sent]).sum())


def within_budget(order: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """The users of `order` taken while their expected costs fit the budget."""
    return order[np.cumsum(cost[order]) <= budget]


def reference_plans(ours: np.ndarray, true: ArmTable, model: ArmTable, body: dict) -> dict[str, np.ndarray]:
    """The oracle, propensity and random plans' arm per user (indices into ARMS, NONE for no send)."""
    campaign = campaign_of(PlanRequest.model_validate(body))
    n = len(true.p_control)
    rows = np.arange(n)
    everyone = np.ones((n, len(alike(campaign))), dtype=bool)
    oracle = plan(true, rows, campaign, everyone, np.zeros(n)).arm
    cost = model.p_arm(slice(None), np.arange(len(ARMS))) * campaign.incentive_cost[None, :] + campaign.contact_cost[None, :]
    top = np.bincount(ours[ours != NONE], minlength=len(ARMS)).argmax()
    propensity = np.full(n, NONE)
    propensity[within_budget(np.argsort(-model.p_control, kind="stable"), cost[:, top], campaign.budget)] = top
    rng = np.random.default_rng(0)
    drawn = rng.integers(0, len(ARMS), n)
    random = np.full(n, NONE)
    taken = within_budget(rng.permutation(n), cost[rows, drawn], campaign.budget)
    random[taken] = drawn[taken]
    return {"oracle": oracle, "propensity": propensity, "random": random}


def model_table(snapshot: pd.DataFrame, mlruns: Path) -> ArmTable:
    """The response champion's per-arm probabilities for the whole snapshot, as the service computes them."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{mlruns.resolve()}/mlflow.db")
    scorer = mlflow.pyfunc.load_model("models:/marketing_response@champion").unwrap_python_model().scorer
    p_control, p_arm = scorer.arm_probabilities(scorer.spec.to_matrix(snapshot.reindex(columns=scorer.spec.names)), ARMS)
    return ArmTable.of(ARMS, p_control, p_arm)


def bench_plan(large: Path, mlruns: Path, work: Path, figures: dict) -> None:
    from training.data.truth import true_arm_probabilities

    env = env_for(large, mlruns, work / "bentoml")
    log("campaign planner: import champions with the large snapshot")
    timed(py("-m", "service", "import-models", "--allow-missing"), env)
    key = add_key(env, "bench-plan", "campaign")
    with serving("service.service:Opscore", env) as port:
        send_date = warm_planning(port, key, large)
        body = request_body(send_date)
        seconds = []
        for _ in range(TIMED_PLANS):
            out, s = plan_call(port, key, body)
            seconds.append(s)
        summary = json.loads(out)
        assignments = {BUDGET: assignments_of(port, key, summary["plan_id"]),
                       TARGETED_BUDGET: assignments_of(port, key, json.loads(plan_call(
                           port, key, request_body(send_date, TARGETED_BUDGET))[0])["plan_id"])}
        measured = json.loads(plan_call(port, key, {**body, "holdout_share": MEASURED_HOLDOUT})[0])["plan_id"]
    n = int(summary["audience_size"])
    figures[f"plan_{'1m' if n == 1_000_000 else f'{n // 1000}k'}_ms"] = 1000 * statistics.median(seconds)
    log(f"plan over the whole base: {1000 * statistics.median(seconds):.0f} ms (median of {TIMED_PLANS}); "
        f"{summary['contacted_users']:,} contacted, spend {summary['expected']['spend']:,.0f}")

    snapshot = pd.read_parquet(large / "snapshot" / "features.parquet").sort_index()
    ids = snapshot.index.to_numpy()
    p_control, p_arm = true_arm_probabilities(Settings(data_dir=large), ids, send_date, ARMS)
    true, model = ArmTable.of(ARMS, p_control, p_arm), model_table(snapshot, mlruns)
    index = {a.id: k for k, a in enumerate(ARMS)}
    for budget, frame in assignments.items():
        ours = np.full(len(ids), NONE)
        ours[np.searchsorted(ids, frame.user_id.to_numpy())] = frame.arm.map(index).to_numpy()
        value = {"ours": true_value(ours, p_control, p_arm)}
        for name, arm in reference_plans(ours, true, model, request_body(send_date, budget)).items():
            value[name] = true_value(arm, p_control, p_arm)
        suffix = "" if budget == BUDGET else "_targeted"
        for name in ("oracle", "propensity", "random"):
            figures[f"plan_value_vs_{name}_plan_ratio{suffix}"] = value["ours"] / value[name] if value[name] > 0 else float("nan")
        figures[f"plan_true_incremental_conversions{suffix}"] = value["ours"]
        log("true incremental conversions at a budget of {:,.0f} ({:,} contacted): ".format(budget, int((ours != NONE).sum()))
            + ", ".join(f"{k} {v:,.1f}" for k, v in value.items()))
    bench_evaluation(env, measured, figures)


def assignments_of(port: int, key: str, plan_id: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(_call(port, "GET", f"/v1/campaigns/{plan_id}/assignments?format=parquet", key)[0]))


def bench_evaluation(env: dict[str, str], plan_id: str, figures: dict) -> None:
    """The same plan with a holdout, sent through the simulator and measured from the warehouse."""
    log("simulate-campaign and evaluate-campaign of the plan with a holdout")
    timed(py("-m", "training", "simulate-campaign", plan_id), env)
    _, _, out = timed(py("-m", "training", "evaluate-campaign", plan_id, "--json", "--no-log"), env)
    e = json.loads(out)
    figures["evaluate_campaign_rel_error"] = e["rel_error"]
    log(f"incremental conversions realised {e['realised_conversions']:,.1f} ± {e['conversions_ci']:,.1f}, "
        f"predicted {e['predicted_conversions']:,.1f}")
