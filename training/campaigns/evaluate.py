"""`python -m training evaluate-campaign PLAN`: what a sent plan did, measured from the warehouse.

The plan's holdout is a random share of the users it selected, each stored with the arm it would
have had and never contacted; so contacted and held-out users of the same arm (or segment) differ
only by the contact, and their conversion rates' difference is the realised uplift. Incremental
conversions are that uplift times the contacted users, with a normal-approximation 95% interval;
incremental value weighs each conversion by the plan's value per conversion (the request's, or
the user's 90-day value in the snapshot). Spend is what was paid: every send's contact cost and
the incentive of every contacted user who converted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd

from scoring.campaign import campaign_of
from scoring.plan import USER_VALUE_COLUMN
from scoring.plan_request import PlanRequest
from scoring.plans import SENT, PlanStore
from scoring.settings import Settings
from scoring.snapshot import Snapshot
from training.figures import realised_vs_predicted
from training.tracking import experiment, setup_tracking

Z95 = 1.959964


@dataclass
class Effect:
    """Realised against predicted uplift of one group of contacted users, measured on its holdout."""

    contacted: int
    held_out: int
    realised_uplift: float  # conversion rate contacted − held out
    uplift_ci: float  # half-width of its 95% interval
    predicted_uplift: float  # mean expected uplift of the contacted

    @classmethod
    def of(cls, converted: np.ndarray, held: np.ndarray, expected: np.ndarray) -> Effect:
        t, h = converted[~held], converted[held]
        if not len(t) or not len(h):
            return cls(len(t), len(h), float("nan"), float("nan"), float(expected[~held].mean()) if len(t) else 0.0)
        rt, rh = t.mean(), h.mean()
        se = np.sqrt(rt * (1 - rt) / len(t) + rh * (1 - rh) / len(h))
        return cls(len(t), len(h), float(rt - rh), float(Z95 * se), float(expected[~held].mean()))


@dataclass
class Evaluation:
    plan_id: str
    campaign_id: int
    realised_conversions: float  # incremental, over the contacted
    conversions_ci: float  # half-width of the 95% interval
    predicted_conversions: float
    rel_error: float  # |realised − predicted| / predicted
    realised_value: float
    predicted_value: float
    spend: float
    predicted_spend: float
    roi: float | None
    by_arm: dict[str, Effect]
    by_segment: dict[str, Effect]

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_campaign(settings: Settings, plan_id: str) -> Evaluation:
    """The sent plan's realised effect; ValueError when it was not sent or its holdout is empty."""
    store = PlanStore(settings.plans_db)
    plan = store.get(plan_id)
    if plan is None:
        raise ValueError(f"no plan {plan_id} in {settings.plans_db}")
    if plan.status != SENT:
        raise ValueError(f"plan {plan_id} is {plan.status}: send it first (`python -m training simulate-campaign`)")
    campaign_id = store.campaign_id(plan_id)
    rows = store.assignments(plan_id)
    outcomes = pd.read_parquet(settings.warehouse_dir / "campaign_assignments.parquet",
                               filters=[("campaign_id", "=", campaign_id)], columns=["user_id", "converted"])
    rows = rows.merge(outcomes, on="user_id", how="inner", validate="one_to_one")
    held, converted = rows["holdout"].to_numpy(), rows["converted"].to_numpy(dtype=bool)
    if not held.any():
        raise ValueError(f"plan {plan_id} has no holdout (holdout_share 0): its effect cannot be measured")
    expected = rows["expected_uplift"].to_numpy()
    overall = Effect.of(converted, held, expected)
    contacted = int((~held).sum())

    request = PlanRequest.model_validate(store.request(plan_id))
    campaign = campaign_of(request)
    value = _value_per_conversion(settings, request, rows["user_id"].to_numpy())
    k = rows["arm"].map({a.id: i for i, a in enumerate(campaign.arms)}).to_numpy()
    value_rate = np.array([(value * converted)[~held].mean(), (value * converted)[held].mean()])
    redeemed = converted & ~held & np.array([a.incentive != "none" for a in campaign.arms])[k]
    spend = float(campaign.contact_cost[k][~held].sum() + campaign.incentive_cost[k][redeemed].sum())
    realised_value = float(contacted * (value_rate[0] - value_rate[1]))
    expected_figures = plan.summary["expected"]
    predicted = float(expected[~held].sum())
    segments = rows["reasons"].str.split(";").str[0]
    return Evaluation(
        plan_id, campaign_id, contacted * overall.realised_uplift, contacted * overall.uplift_ci, predicted,
        abs(contacted * overall.realised_uplift - predicted) / predicted if predicted > 0 else float("nan"),
        realised_value, float(expected_figures["incremental_value"]), spend, float(expected_figures["spend"]),
        (realised_value - spend) / spend if spend > 0 else None,
        _by(rows["arm"], converted, held, expected), _by(segments, converted, held, expected))


def _by(labels: pd.Series, converted: np.ndarray, held: np.ndarray, expected: np.ndarray) -> dict[str, Effect]:
    codes, names = pd.factorize(labels, sort=True)
    return {str(name): Effect.of(converted[codes == i], held[codes == i], expected[codes == i])
            for i, name in enumerate(names)}


def _value_per_conversion(settings: Settings, request: PlanRequest, user_ids: np.ndarray) -> np.ndarray:
    """What one conversion of each user is worth to the plan's objective (as the planner valued it)."""
    if request.value_per_conversion is not None:
        return np.full(len(user_ids), request.value_per_conversion)
    snapshot = Snapshot.load(settings.snapshot_dir)
    pos, _ = snapshot.rows(user_ids)
    return snapshot.at(pos, USER_VALUE_COLUMN)


def effects_frame(effects: dict[str, Effect]) -> pd.DataFrame:
    return pd.DataFrame([{"group": k, **asdict(e)} for k, e in effects.items()])


def render(e: Evaluation) -> str:
    lo, hi = e.realised_conversions - e.conversions_ci, e.realised_conversions + e.conversions_ci
    lines = [f"plan {e.plan_id} (campaign {e.campaign_id})",
             f"incremental conversions: realised {e.realised_conversions:,.1f} (95% {lo:,.1f} to {hi:,.1f}), "
             f"predicted {e.predicted_conversions:,.1f}; relative error {e.rel_error:.3f}",
             f"incremental value: realised {e.realised_value:,.2f}, predicted {e.predicted_value:,.2f}",
             f"spend: {e.spend:,.2f} (predicted {e.predicted_spend:,.2f}); ROI "
             + (f"{e.roi:.2f}" if e.roi is not None else "none (nothing spent)"),
             "by arm (uplift realised ± 95%, predicted; contacted / held out):",
             *(f"  {k}: {x.realised_uplift:+.4f} ± {x.uplift_ci:.4f}, {x.predicted_uplift:+.4f}; "
               f"{x.contacted:,} / {x.held_out:,}" for k, x in e.by_arm.items())]
    return "\n".join(lines)


def summary_json(e: Evaluation) -> str:
    return json.dumps(e.as_dict(), indent=2, default=float)


def log_evaluation(settings: Settings, e: Evaluation) -> str:
    """The evaluation as a run of the MLflow experiment `campaigns`; the run id."""
    setup_tracking(settings)
    with mlflow.start_run(experiment_id=experiment("campaigns", settings), run_name=f"plan {e.plan_id[:8]}") as run:
        mlflow.log_params({"plan_id": e.plan_id, "campaign_id": e.campaign_id, "arms": len(e.by_arm)})
        mlflow.log_metrics({k: v for k, v in e.as_dict().items()
                            if isinstance(v, float) and np.isfinite(v)})
        mlflow.log_text(summary_json(e), "evaluation/evaluation.json")
        mlflow.log_text(effects_frame(e.by_arm).to_csv(index=False), "evaluation/by_arm.csv")
        mlflow.log_text(effects_frame(e.by_segment).to_csv(index=False), "evaluation/by_segment.csv")
        mlflow.log_figure(realised_vs_predicted(effects_frame(e.by_arm), f"plan {e.plan_id[:8]}: uplift by arm"),
                          "plots/uplift_by_arm.png")
        mlflow.log_figure(realised_vs_predicted(effects_frame(e.by_segment), f"plan {e.plan_id[:8]}: uplift by segment"),
                          "plots/uplift_by_segment.png")
        return run.info.run_id
