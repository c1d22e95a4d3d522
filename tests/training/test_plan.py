"""`python -m training plan CAMPAIGN.yaml` on the session's world: the plan stored for the service,
its constraints held; a file that breaks the contract refused naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scoring.plans import PlanStore
from training.plan import read_campaign
from tests.service.conftest import ROOT

CAMPAIGN = """\
audience: {segments: [silent_7_21/V2, silent_7_21/V3, silent_7_21/V4, silent_7_21/V5]}
arms:
  - {arm: coupon/sms/evening}
  - {arm: red_packet/push/evening, incentive_cost: 6.0}
objective: value
value_per_conversion: 30
send_date: 2030-01-06
budget: 200
contact_policy: {max_per_channel: {sms: 5}}
exclusions: {max_abuse_score: 0.5}
"""


def run(all_champions, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPSCORE_DATA_DIR": str(all_champions.data_dir),
           "OPSCORE_MLRUNS_DIR": str(all_champions.mlruns_dir), "MLFLOW_TRACKING_URI": all_champions.tracking_uri}
    return subprocess.run([sys.executable, "-m", "training", "plan", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_plan_is_stored_within_budget(all_champions, tmp_path):
    path = tmp_path / "wake-up.yaml"
    path.write_text(CAMPAIGN)
    r = run(all_champions, path)
    assert r.returncode == 0, r.stderr
    plan_id = r.stdout.split()[1]
    store = PlanStore(all_champions.plans_db)
    plan = store.get(plan_id)
    rows = store.assignments(plan_id)
    assert plan.summary["planned_users"] == len(rows) > 0
    assert plan.summary["expected"]["spend"] <= 200 and set(rows.arm) <= {"coupon/sms/evening", "red_packet/push/evening"}
    assert rows.holdout.mean() == pytest.approx(0.1, abs=0.05)


def test_bad_campaign_file_names_the_field(all_champions, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CAMPAIGN.replace("budget: 200", "budget: -5"))
    r = run(all_champions, path)
    assert r.returncode != 0 and "budget" in r.stderr and "Traceback" not in r.stderr


def test_the_readme_example_is_a_valid_campaign():
    request = read_campaign(ROOT / "examples" / "wake-up.yaml")
    assert request.budget == 50_000 and request.contact_policy.max_per_channel == {"sms": 5}
    assert {o.parsed.channel for o in request.offers()} == {"sms", "push"}
    assert {o.parsed.window for o in request.offers()} == {"evening"}
