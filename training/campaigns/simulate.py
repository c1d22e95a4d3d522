"""`python -m training simulate-campaign PLAN`: a stored plan played through the simulator.

The simulator's truth decides who converts: a contacted user with P(convert | their arm), a held-out
user with P(convert | control), both as of the send date (their traits and the contacts before it,
as `training.data.truth` computes them for the oracle). The sends and outcomes are appended to the
warehouse as a new campaign (`campaigns`, `campaign_assignments` with the holdout as control,
`contacts` with open and send time), so that `evaluate-campaign` measures the plan from the
warehouse alone and the next `train response` learns from it. The plan is marked sent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.arms import ARMS, CONTROL
from scoring.plans import CANCELLED, SENT, PlanStore
from scoring.settings import Settings
from training.data.arm_response import open_probability
from training.data.simulate_campaigns import WINDOW_MINUTES
from training.data.truth import recent_contacts, traits_of, true_arm_probabilities
from training.data.warehouse import append_rows

ARM_BY_ID = {a.id: a for a in ARMS}


@dataclass
class Sent:
    campaign_id: int
    contacted: int
    held_out: int
    conversions: int
    true_incremental: float  # expected incremental conversions of the contacted, by the simulator's truth


def simulate_campaign(settings: Settings, plan_id: str) -> Sent:
    """Play the plan through the simulator and append it to the warehouse; ValueError when it cannot be."""
    store = PlanStore(settings.plans_db)
    plan = store.get(plan_id)
    if plan is None:
        raise ValueError(f"no plan {plan_id} in {settings.plans_db}")
    if plan.status in (SENT, CANCELLED):
        raise ValueError(f"plan {plan_id} is {plan.status}")
    rows = store.assignments(plan_id)
    if rows.empty:
        raise ValueError(f"plan {plan_id} assigns nobody: there is nothing to send")
    send_date = pd.Timestamp(plan.send_date)
    # A generator per plan: the same plan plays out the same way, two plans independently.
    rng = np.random.default_rng(zlib.crc32(plan_id.encode()))
    ids = rows["user_id"].to_numpy()
    arms = tuple(ARM_BY_ID[a] for a in dict.fromkeys(rows["arm"]))
    code = rows["arm"].map({a.id: k for k, a in enumerate(arms)}).to_numpy()
    p_control, p_arms = true_arm_probabilities(settings, ids, send_date.date(), arms)
    held = rows["holdout"].to_numpy()
    p = np.where(held, p_control, p_arms[np.arange(len(rows)), code])
    converted = rng.random(len(rows)) < p

    campaigns = pd.read_parquet(settings.warehouse_dir / "campaigns.parquet", columns=["campaign_id"])
    campaign_id = int(campaigns["campaign_id"].max()) + 1 if len(campaigns) else 0
    contacted = ~held
    assignments = pd.DataFrame({"campaign_id": campaign_id, "user_id": ids,
                                "arm": np.where(held, CONTROL, rows["arm"].to_numpy()), "converted": converted})
    contacts = _contacts(settings, rows[contacted], arms, code[contacted], send_date, campaign_id, rng)
    recent = recent_contacts(settings, ids, send_date.date())
    append_rows({"campaigns": pd.DataFrame({"campaign_id": [campaign_id], "send_date": [send_date],
                                            "arms": [len(arms)]}),
                 "campaign_assignments": assignments, "contacts": contacts}, settings.warehouse_dir)
    truth = assignments.assign(p_control=p_control, p_arm=p, recent_contacts=recent)
    append_rows({"campaign_assignments": truth}, settings.truth_dir)
    store.mark_sent(plan_id, campaign_id)
    true_incremental = float((p - p_control)[contacted].sum())
    return Sent(campaign_id, int(contacted.sum()), int(held.sum()), int(converted.sum()), true_incremental)


def _contacts(settings: Settings, rows: pd.DataFrame, arms: tuple, code: np.ndarray, send_date: pd.Timestamp,
              campaign_id: int, rng: np.random.Generator) -> pd.DataFrame:
    """One send per contacted user, in their arm's window, opened as the simulator's truth says."""
    traits = traits_of(settings, rows["user_id"].to_numpy())
    recent = recent_contacts(settings, rows["user_id"].to_numpy(), send_date.date())
    opened = np.zeros(len(rows), dtype=bool)
    minute = np.zeros(len(rows), dtype=np.int64)
    for k, arm in enumerate(arms):
        at = np.flatnonzero(code == k)
        opened[at] = rng.random(len(at)) < open_probability(traits.take(at), recent[at], arm)
        first, span = WINDOW_MINUTES[arm.window]
        minute[at] = first + rng.integers(0, span, len(at))
    return pd.DataFrame({"user_id": rows["user_id"].to_numpy(),
                         "contact_time": send_date + pd.to_timedelta(minute, unit="min"),
                         "campaign_id": campaign_id, "arm": rows["arm"].to_numpy(),
                         "channel": rows["channel"].to_numpy(), "opened": opened})
