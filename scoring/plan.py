"""A campaign plan from per-arm conversion probabilities: the optimisation problem, the holdout, the summary.

Run by the service (`POST /v1/campaigns/plan`) and offline (`python -m training plan`) alike. The
per-arm probabilities come through `arm_probabilities`, from the uplift model's own
(`UpliftScorer.arm_probabilities`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from scoring.arms import CONTACT_CHANNELS, Arm
from scoring.optimise import NONE, Problem, Solution, estimate, solve
from scoring.uplift import UpliftScorer

# Opt-outs in force on the snapshot date (user_id, channel), carried with the serving snapshot.
OPT_OUTS_FILE = "opt_outs.parquet"
# A user's value of a conversion when the request gives none: money put to work in the last 90 days.
USER_VALUE_COLUMN = "fund_amt_90"
# Incentives that are credit offers: only for users the credit model clears.
CREDIT_INCENTIVES = ("interest_free",)
HOLDOUT_SEED = 20261202


def arm_probabilities(scorer: UpliftScorer, X: np.ndarray, arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | control) (n,) and P(convert | arm) (n, len(arms)) from the uplift model, as float32:
    at 1M users × 48 arms the matrix is 192 MB, and the plan's matrices are each as large."""
    p_control, p_arm = scorer.arm_probabilities(X, arms)
    return p_control.astype(np.float32), p_arm.astype(np.float32)


@dataclass
class ArmTable:
    """Every snapshot user's conversion probabilities under control and each arm, computed once."""

    arms: tuple[Arm, ...]
    p_control: np.ndarray  # (n,)
    p_arm: np.ndarray  # (n, K)

    def columns(self, arms: Sequence[Arm]) -> np.ndarray:
        index = {a: k for k, a in enumerate(self.arms)}
        return np.array([index[a] for a in arms], dtype=np.intp)


@dataclass
class Campaign:
    """What a plan is asked for, in plain values (the request model's, checked)."""

    arms: tuple[Arm, ...]
    incentive_cost: np.ndarray  # (K,) per redemption
    contact_cost: np.ndarray  # (K,) per send
    objective: Literal["conversions", "value"]
    budget: float
    capacity: dict[str, int] = field(default_factory=dict)  # channel → sends; absent: unbounded
    value_per_conversion: float | None = None  # None: the user's own value (USER_VALUE_COLUMN)
    holdout_share: float = 0.1

    @property
    def channel_index(self) -> np.ndarray:
        return np.array([CONTACT_CHANNELS.index(a.channel) for a in self.arms], dtype=np.intp)


@dataclass
class Planned:
    """The chosen arm per audience user (NONE: not planned), who of them is held out, and the figures."""

    rows: np.ndarray  # snapshot rows of the audience
    arm: np.ndarray  # (len(rows),) index into campaign.arms, NONE for no contact
    holdout: np.ndarray  # bool, planned users held out (never contacted)
    uplift: np.ndarray  # expected uplift of the chosen arm (0 where none)
    value: np.ndarray  # expected incremental value (gross)
    cost: np.ndarray  # expected spend
    solution: Solution
    at_half: float
    at_twice: float


def problem(table: ArmTable, rows: np.ndarray, campaign: Campaign, eligible: np.ndarray,
            user_value: np.ndarray, budget: float | None = None) -> tuple[Problem, np.ndarray, np.ndarray]:
    """The optimiser's problem for the audience's rows; also the uplift and gross value per pair."""
    cols = table.columns(campaign.arms)
    whole = len(rows) == len(table.p_control) and np.array_equal(cols, np.arange(len(table.arms)))
    # float32 throughout: at 1M users × 48 arms each matrix is 192 MB, and each copy counts.
    p_arm = table.p_arm if whole else table.p_arm[np.ix_(rows, cols)]
    uplift = p_arm - table.p_control[rows, None]
    cost = p_arm * campaign.incentive_cost.astype(np.float32)[None, :]
    cost += campaign.contact_cost.astype(np.float32)[None, :]
    per = (np.full(len(rows), campaign.value_per_conversion) if campaign.value_per_conversion is not None
           else np.nan_to_num(user_value, nan=0.0))
    gross = uplift * per.astype(np.float32)[:, None]  # reported under either objective
    value = uplift if campaign.objective == "conversions" else gross - cost
    capacity = np.array([float(campaign.capacity.get(c, np.inf)) for c in CONTACT_CHANNELS])
    return (Problem(value, cost, campaign.channel_index, eligible, campaign.budget if budget is None else budget,
                    capacity), uplift, gross)


def plan(table: ArmTable, rows: np.ndarray, campaign: Campaign, eligible: np.ndarray,
         user_value: np.ndarray) -> Planned:
    """Solve at the budget (and estimate the best at half and twice it), then hold a random share of the
    planned out."""
    p, uplift, gross = problem(table, rows, campaign, eligible, user_value)
    solution = solve(p)
    at_half = estimate(_with_budget(p, p.budget / 2))
    at_twice = estimate(_with_budget(p, p.budget * 2))
    arm = solution.arm
    planned = np.flatnonzero(arm != NONE)
    holdout = np.zeros(len(rows), dtype=bool)
    rng = np.random.default_rng(HOLDOUT_SEED)
    holdout[planned[rng.random(len(planned)) < campaign.holdout_share]] = True
    pick = np.where(arm != NONE, arm, 0)
    at = np.arange(len(rows))
    chosen = arm != NONE
    return Planned(rows, arm, holdout, np.where(chosen, uplift[at, pick], 0.0), np.where(chosen, gross[at, pick], 0.0),
                   np.where(chosen, p.cost[at, pick], 0.0), solution, at_half, at_twice)


def _with_budget(p: Problem, budget: float) -> Problem:
    return Problem(p.value, p.cost, p.channel, p.eligible, budget, p.capacity)


def figures(uplift: np.ndarray, value: np.ndarray, cost: np.ndarray) -> dict[str, float]:
    """Expected incremental conversions, value, spend and ROI (net value per unit spent) of some sends."""
    spend = float(cost.sum())
    gross = float(value.sum())
    return {"users": int(len(uplift)), "incremental_conversions": round(float(uplift.sum()), 4),
            "incremental_value": round(gross, 2), "spend": round(spend, 2),
            "roi": round((gross - spend) / spend, 4) if spend > 0 else None}


def breakdown(planned: Planned, labels: np.ndarray, contacted: np.ndarray) -> dict[str, dict[str, float]]:
    """`figures` of the contacted users per label (arm, segment, channel...)."""
    out = {}
    for label in np.unique(labels[contacted]):
        on = contacted & (labels == label)
        out[str(label)] = figures(planned.uplift[on], planned.value[on], planned.cost[on])
    return out


def summary(planned: Planned, campaign: Campaign, segments: np.ndarray) -> dict:
    """The plan's summary: counts per arm, channel and window, expected figures overall, by arm and by
    segment (over the contacted, holdout excluded), the bound and gap, and the value at half and twice the budget."""
    chosen = planned.arm != NONE
    contacted = chosen & ~planned.holdout
    names = np.array([a.id for a in campaign.arms] + [""], dtype=object)[planned.arm]
    channels = np.array([a.channel for a in campaign.arms] + [""], dtype=object)[planned.arm]
    windows = np.array([a.window for a in campaign.arms] + [""], dtype=object)[planned.arm]
    s = planned.solution

    def counts(labels: np.ndarray) -> dict[str, int]:
        values, n = np.unique(labels[contacted], return_counts=True)
        return {str(v): int(c) for v, c in zip(values, n)}

    return {
        "planned_users": int(chosen.sum()),
        "contacted_users": int(contacted.sum()),
        "holdout_users": int(planned.holdout.sum()),
        "users_per_arm": counts(names), "users_per_channel": counts(channels), "users_per_window": counts(windows),
        "expected": figures(planned.uplift[contacted], planned.value[contacted], planned.cost[contacted]),
        "by_arm": breakdown(planned, names, contacted),
        "by_segment": breakdown(planned, segments, contacted),
        "optimiser": {"method": s.method, "objective": campaign.objective, "value": round(s.objective, 4),
                      "bound": round(s.bound, 4), "gap": round(s.gap, 4), "relative_gap": round(s.relative_gap, 6),
                      "spend_planned": round(s.spend, 2), "budget": campaign.budget},
        "value_at_half_budget": round(planned.at_half, 4),
        "value_at_twice_budget": round(planned.at_twice, 4),
        "reasons": s.reasons,
    }
