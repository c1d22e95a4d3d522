"""`python -m training plan CAMPAIGN.yaml`: a campaign plan over the whole serving snapshot, offline.

The campaign file is the service's plan request (`scoring.plan_request.PlanRequest`) written as
YAML; the plan is made by the same code the service runs and stored in the same plan store, so
that its contacts count against the caps of plans made over HTTP, and its assignments come from
`GET /v1/campaigns/{id}/assignments` as any other plan's do.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from mlflow import MlflowClient
from pydantic import ValidationError

from scoring.campaign import Planning, build_planning, make_plan
from scoring.plan_request import PlanRequest
from scoring.plans import PlanStore, StoredPlan
from scoring.settings import Settings
from scoring.snapshot import Snapshot
from training.monitor import champions
from training.tracking import setup_tracking


def read_campaign(path: Path) -> PlanRequest:
    """The campaign file as a plan request; ValueError naming each field at fault."""
    try:
        return PlanRequest.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as e:
        raise ValueError(f"{path.name} is not YAML: {e}") from None
    except ValidationError as e:
        fields = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"{path.name} is not a valid campaign: {fields}") from None


def offline_planning(settings: Settings, request: PlanRequest) -> Planning:
    """Planning over the serving snapshot with the registry's champions (what the service would serve),
    for the request's arms only."""
    snapshot = Snapshot.load(settings.snapshot_dir)
    setup_tracking(settings)  # the champions load through models:/ URIs, which read MLflow's global registry
    found, _ = champions(MlflowClient())
    models = {e: (identity, scorer, snapshot.features_for(scorer.spec))
              for e, (identity, scorer, _) in found.items() if e in ("response", "abuse", "credit")}
    return build_planning(snapshot, settings.snapshot_dir, models, arms=tuple(o.parsed for o in request.offers()))


def plan_campaign(settings: Settings, path: Path) -> tuple[StoredPlan, bool]:
    request = read_campaign(path)
    return make_plan(offline_planning(settings, request), PlanStore(settings.plans_db), request,
                     settings.contact_window_days)


def render(plan: StoredPlan, created: bool) -> str:
    s = plan.summary
    e = s["expected"]
    lines = [f"plan {plan.plan_id} ({'new' if created else 'already stored under this client_key'}), "
             f"send date {plan.send_date}",
             f"audience {s['audience_size']:,}; excluded {s['excluded']}",
             f"planned {s['planned_users']:,}: contacted {s['contacted_users']:,}, holdout {s['holdout_users']:,}",
             f"expected: {e['incremental_conversions']:.1f} incremental conversions, value {e['incremental_value']:,.2f}, "
             f"spend {e['spend']:,.2f}, ROI {e['roi']}",
             f"optimiser {s['optimiser']['method']}: {s['optimiser']['value']:.4f} of a bound {s['optimiser']['bound']:.4f}; "
             f"at half the budget {s['value_at_half_budget']:.4f}, at twice {s['value_at_twice_budget']:.4f}",
             *(f"  {arm}: {n:,}" for arm, n in sorted(s["users_per_arm"].items(), key=lambda x: -x[1])),
             *(f"  reason: {r}" for r in s["reasons"])]
    return "\n".join(lines)
