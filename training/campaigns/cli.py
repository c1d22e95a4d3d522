"""The campaign commands of `python -m training`: plan, simulate-campaign, evaluate-campaign.

Plan, send, measure, retrain: a plan is stored where the service keeps its plans, the simulator
plays it into the warehouse as a new randomised log, its holdout measures it, and the next
`train response` reads the log. Each command imports what it needs when it runs, so that `--help`
answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scoring.settings import get_settings


def _cmd_plan(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from scoring.artifacts import ArtifactError
    from training.plan import plan_campaign, render

    try:
        plan, created = plan_campaign(get_settings(), Path(args.campaign))
    except (FileNotFoundError, ArtifactError) as e:
        sys.exit(f"plan: {e}: run `python -m training features` (and train) first")
    except ValueError as e:  # a campaign file that breaks the contract, or one the snapshot cannot serve
        sys.exit(f"plan: {e}")
    except MlflowException as e:
        sys.exit(f"plan: MLflow: {e.message}")
    print(render(plan, created))


def _cmd_simulate_campaign(args: argparse.Namespace) -> None:
    from training.campaigns.simulate import simulate_campaign

    try:
        sent = simulate_campaign(get_settings(), args.plan)
    except FileNotFoundError as e:
        sys.exit(f"simulate-campaign: {e}: the simulator's truth is needed (a world from `python -m training simulate`)")
    except ValueError as e:
        sys.exit(f"simulate-campaign: {e}")
    print(f"plan {args.plan} sent as campaign {sent.campaign_id}: {sent.contacted:,} contacted, "
          f"{sent.held_out:,} held out, {sent.conversions:,} conversions; appended to the warehouse\n"
          f"true expected incremental conversions of the contacted (the simulator's truth): {sent.true_incremental:,.1f}")


def _cmd_evaluate_campaign(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from training.campaigns.evaluate import evaluate_campaign, log_evaluation, render, summary_json

    settings = get_settings()
    try:
        evaluation = evaluate_campaign(settings, args.plan)
        run_id = None if args.no_log else log_evaluation(settings, evaluation)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"evaluate-campaign: {e}")
    except MlflowException as e:
        sys.exit(f"evaluate-campaign: MLflow: {e.message}")
    print(summary_json(evaluation) if args.json else render(evaluation))
    if run_id:
        print(f"logged to MLflow: experiment campaigns, run {run_id}", file=sys.stderr if args.json else sys.stdout)


def campaign_commands(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="plan a campaign (CAMPAIGN.yaml) over the whole serving snapshot and store the plan",
        description="The campaign file is the body of POST /v1/campaigns/plan as YAML: audience (seed_name, "
        "segments, user_ids or all: true), arms (incentive/channel/window with costs; default: all 48 arms of "
        "the grid), objective (conversions or value), send_date, budget (bounding the expected "
        "spend), capacity per channel, contact_policy.max_per_channel (per user in 30 days, counting the "
        "warehouse's contacts and stored plans), exclusions (max_abuse_score, credit_max_pd, opt_outs), "
        "holdout_share (default 0.1), holdout_seed (default: drawn per plan), client_key. Uses the "
        "registry's champions and the serving snapshot; the plan goes to the plan store "
        "(OPSCORE_DATA_DIR/plans.sqlite), where the service finds it, and its summary is printed.",
    )
    p.add_argument("campaign", help="the campaign file (YAML)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "simulate-campaign",
        help="play a stored plan through the simulator and append its sends and outcomes to the warehouse",
        description="The simulator's truth decides who converts: contacted users with their arm's probability, "
        "the holdout with control's, as of the plan's send date. Appends a campaign to the warehouse "
        "(campaigns, campaign_assignments with the holdout as control, contacts) and marks the plan sent "
        "(it can no longer be cancelled). Needs a simulated world (its ground truth).",
    )
    p.add_argument("plan", help="the plan id (from `plan` or POST /v1/campaigns/plan)")
    p.set_defaults(func=_cmd_simulate_campaign)

    p = sub.add_parser(
        "evaluate-campaign",
        help="measure a sent plan from the warehouse against its holdout, logged to MLflow",
        description="Realised incremental conversions (contacted minus held-out conversion rate, times the "
        "contacted, with a 95% interval) against the plan's prediction; realised incremental value, spend and "
        "ROI; realised against predicted uplift by arm and by segment. Logged to the MLflow experiment "
        "'campaigns' (metrics, evaluation/*.json|csv, plots/uplift_by_arm.png, plots/uplift_by_segment.png).",
    )
    p.add_argument("plan", help="the plan id")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.add_argument("--no-log", action="store_true", help="print only, log nothing to MLflow")
    p.set_defaults(func=_cmd_evaluate_campaign)
