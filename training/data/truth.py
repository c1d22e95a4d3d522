"""Oracle probabilities from the simulator's ground truth (evaluation only; features never read it)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from scoring.arms import ARMS, Arm
from scoring.settings import Settings
from training.data.arm_response import ResponseTraits, arm_probabilities
from training.data.simulate import active_logit, die_logit, is_boundary, sigmoid
from training.data.simulate_campaigns import FATIGUE_DAYS


def read_truth(settings: Settings, name: str) -> pd.DataFrame:
    path = settings.truth_dir / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no ground truth at {path}: oracle figures need simulated data")
    return pd.read_parquet(path)


def meta(settings: Settings) -> dict:
    return json.loads((settings.truth_dir / "meta.json").read_text())


def as_of_day(settings: Settings, as_of: date) -> int:
    """Day index of a date in the simulation (day 0 is its first day)."""
    return int((pd.Timestamp(as_of) - pd.Timestamp(meta(settings)["start"])).days)


def churn_probability(truth_users: pd.DataFrame, day: int, days: int, window: int = 30) -> pd.Series:
    """P(no launch in [day, day+window)) for users not gone before `day`, from latent parameters.

    `days` is the simulated length (meta.json), which fixes where the leave boundaries fall.
    """
    t = truth_users
    args = [t[c].to_numpy() for c in ("active_base", "active_trend", "active_honey", "signup_day")]
    alive_quiet = np.ones(len(t))  # P(still here and no launch so far)
    gone_quiet = np.zeros(len(t))  # P(left at a boundary and no launch before)
    for k in range(window):
        logit = active_logit(*args, day + k)
        if is_boundary(day + k, days):
            p_die = sigmoid(die_logit(t["die_offset"].to_numpy(), logit))
            gone_quiet += alive_quiet * p_die
            alive_quiet *= 1.0 - p_die
        alive_quiet *= 1.0 - sigmoid(logit)
    p = np.where(t["death_day"].to_numpy() < day, 1.0, alive_quiet + gone_quiet)
    return pd.Series(p, index=t["user_id"].to_numpy(), name="p_churn")


def traits_of(settings: Settings, user_ids: np.ndarray) -> ResponseTraits:
    """The users' latent response traits, in the order of `user_ids`."""
    return ResponseTraits.from_frame(read_truth(settings, "campaign_users").set_index("user_id").reindex(user_ids))


def recent_contacts(settings: Settings, user_ids: np.ndarray, send_date: date) -> np.ndarray:
    """Each user's contacts in the FATIGUE_DAYS before `send_date` (what wears an arm's effect down)."""
    contacts = pd.read_parquet(settings.warehouse_dir / "contacts.parquet", columns=["user_id", "contact_time"])
    day = pd.Timestamp(send_date)
    recent = contacts[(contacts.contact_time < day) & (contacts.contact_time >= day - pd.Timedelta(days=FATIGUE_DAYS))]
    return recent.groupby("user_id").size().reindex(user_ids, fill_value=0).to_numpy()


def true_arm_probabilities(settings: Settings, user_ids: np.ndarray, send_date: date,
                           arms: tuple[Arm, ...] = ARMS) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | control) (n,) and P(convert | arm) (n × arms) of users sent a campaign on `send_date`:
    their response traits and their contacts in the FATIGUE_DAYS before it (the planner's oracle)."""
    return arm_probabilities(traits_of(settings, user_ids), recent_contacts(settings, user_ids, send_date), arms)
