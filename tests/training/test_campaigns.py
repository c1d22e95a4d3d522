"""Plan, send, measure on a copy of the session's world: `plan`, `simulate-campaign`, `evaluate-campaign`.

The copy keeps the session's warehouse as other tests read it; simulate-campaign appends to the copy's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoring.arms import CONTACT_COST
from scoring.plans import SENT, PlanStore
from tests.service.conftest import ROOT

CAMPAIGN = """\
audience: {all: true}
arms:
  - {arm: coupon/sms/evening}
  - {arm: none/push/evening}
  - {arm: red_packet/push/morning}
objective: conversions
send_date: 2030-01-06
budget: 3000
contact_policy: {max_per_channel: {sms: 1}}
holdout_share: 0.3
"""


@pytest.fixture(scope="module")
def world(all_champions, tmp_path_factory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("campaign-world") / "data"
    shutil.copytree(all_champions.data_dir, data)
    return {**os.environ, "OPSCORE_DATA_DIR": str(data), "OPSCORE_MLRUNS_DIR": str(all_champions.mlruns_dir),
            "MLFLOW_TRACKING_URI": all_champions.tracking_uri}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "training", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def plan(env: dict[str, str], tmp_path: Path, text: str = CAMPAIGN) -> str:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return run(env, "plan", str(path)).stdout.split()[1]


@pytest.fixture(scope="module")
def sent(world, tmp_path_factory) -> tuple[str, dict]:
    """A plan, sent through the simulator and evaluated: its id and the evaluation."""
    plan_id = plan(world, tmp_path_factory.mktemp("campaign"))
    run(world, "simulate-campaign", plan_id)
    return plan_id, json.loads(run(world, "evaluate-campaign", plan_id, "--json").stdout)


def warehouse(world: dict[str, str], table: str) -> pd.DataFrame:
    return pd.read_parquet(Path(world["OPSCORE_DATA_DIR"]) / "warehouse" / f"{table}.parquet")


def test_sends_reach_the_warehouse_and_the_holdout_is_never_contacted(world, sent):
    plan_id, evaluation = sent
    store = PlanStore(Path(world["OPSCORE_DATA_DIR"]) / "plans.sqlite")
    rows = store.assignments(plan_id)
    campaign_id = evaluation["campaign_id"]
    contacts = warehouse(world, "contacts").query("campaign_id == @campaign_id")
    assigned = warehouse(world, "campaign_assignments").query("campaign_id == @campaign_id")
    held = set(rows.user_id[rows.holdout])
    assert set(contacts.user_id) == set(rows.user_id[~rows.holdout]) and not held & set(contacts.user_id)
    assert set(assigned.user_id[assigned.arm == "control"]) == held
    by_user = rows.set_index("user_id")
    assert (contacts.set_index("user_id").channel == by_user.channel[contacts.user_id]).all()
    assert (contacts.contact_time.dt.date == pd.Timestamp("2030-01-06").date()).all()
    assert store.get(plan_id).status == SENT and not store.cancel(plan_id)


def test_evaluation_measures_against_the_holdout(world, sent):
    plan_id, e = sent
    rows = PlanStore(Path(world["OPSCORE_DATA_DIR"]) / "plans.sqlite").assignments(plan_id)
    contacted = rows[~rows.holdout]
    assert e["predicted_conversions"] == pytest.approx(contacted.expected_uplift.sum(), rel=1e-6)
    assert sum(a["contacted"] for a in e["by_arm"].values()) == len(contacted)
    assert np.isfinite([e["realised_conversions"], e["conversions_ci"], e["spend"]]).all() and e["conversions_ci"] > 0
    # Every contacted user paid at least the contact cost; a redeemed incentive adds to it.
    assert e["spend"] >= contacted.channel.map(CONTACT_COST).sum() - 1e-6
    client = MlflowClient(tracking_uri=world["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("campaigns").experiment_id],
                              f"params.plan_id = '{plan_id}'")
    assert len(runs) == 1 and "rel_error" in runs[0].data.metrics
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")} >= {"plots/uplift_by_arm.png"}


def test_a_sent_plan_is_neither_sent_twice_nor_evaluated_before_it_is_sent(world, sent, tmp_path):
    plan_id, _ = sent
    again = subprocess.run([sys.executable, "-m", "training", "simulate-campaign", plan_id], cwd=ROOT, env=world,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "sent" in again.stderr and "Traceback" not in again.stderr
    fresh = plan(world, tmp_path, CAMPAIGN.replace("2030-01-06", "2031-01-06"))
    early = subprocess.run([sys.executable, "-m", "training", "evaluate-campaign", fresh], cwd=ROOT, env=world,
                           capture_output=True, text=True, timeout=600)
    assert early.returncode != 0 and "send it first" in early.stderr


def test_caps_count_the_sent_plan(world, sent, tmp_path):
    """With at most one SMS a month, nobody the sent plan reached by SMS is planned an SMS a week later."""
    plan_id, _ = sent
    store = PlanStore(Path(world["OPSCORE_DATA_DIR"]) / "plans.sqlite")
    first = store.assignments(plan_id)
    reached = set(first.user_id[~first.holdout & (first.channel == "sms")])
    assert reached
    later_id = plan(world, tmp_path, CAMPAIGN.replace("2030-01-06", "2030-01-13"))
    later = store.assignments(later_id)
    assert not reached & set(later.user_id[later.channel == "sms"])
    # Each plan draws its own holdout, and keeps the seed it drew.
    seeds = [store.get(i).summary["holdout_seed"] for i in (plan_id, later_id)]
    assert seeds[0] != seeds[1] and store.request(later_id)["holdout_seed"] == seeds[1]
