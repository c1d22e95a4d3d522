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


def arm_probabilities(scorer: UpliftScorer, X: np.ndarray, arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | control) (n,) and P(convert | arm) (n, len(arms)) from the uplift model, as float32:
    at 1M users × 48 arms the matrix is 192 MB, and the plan's matrices are each as large."""
    p_control, p_arm = scorer.arm_probabilities(X, arms)
    return p_control.astype(np.float32), p_arm.astype(np.float32)


def uplift_table(p_control: np.ndarray, p_arm: np.ndarray) -> np.ndarray:
    """P(convert | arm) − P(convert | control) in float16, arm-major (Fortran order), as `ArmTable` keeps it."""
    return np.asfortranarray((p_arm - p_control[:, None]).astype(np.float16))


@dataclass
class ArmTable:
    """Every snapshot user's P(convert | control) and uplift under each arm, computed once.

    The uplift is kept rather than P(convert | arm), in float16: at 10M users × 48 arms that is 0.96 GB
    of the page cache instead of float32's 1.9 GB. An uplift near 0.01 keeps 11 bits (off by at most
    5e-6), where a probability near 0.05 in float16 would be off by up to 3e-5, 1% of a typical uplift.
    """

    arms: tuple[Arm, ...]
    p_control: np.ndarray  # (n,) float32
    uplift: np.ndarray  # (n, K) float16, arm-major: read arm by arm
    _likeliest: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.uplift = np.asfortranarray(self.uplift)

    @classmethod
    def of(cls, arms: tuple[Arm, ...], p_control: np.ndarray, p_arm: np.ndarray) -> ArmTable:
        return cls(arms, p_control.astype(np.float32), uplift_table(p_control, p_arm))

    def columns(self, arms: Sequence[Arm]) -> np.ndarray:
        index = {a: k for k, a in enumerate(self.arms)}
        return np.array([index[a] for a in arms], dtype=np.intp)

    def p_arm(self, rows: np.ndarray | slice, cols: np.ndarray) -> np.ndarray:
        """P(convert | arm) of `rows` under each of `cols`, float32."""
        return self.uplift[rows][:, cols].astype(np.float32) + self.p_control[rows, None]

    def likeliest(self, cols: Sequence[int]) -> np.ndarray:
        """Per user, which of the columns `cols` is the most likely to convert (a position into `cols`);
        kept, a byte per user, so that the plans of a snapshot compare each group's columns once."""
        key = tuple(int(c) for c in cols)
        if key not in self._likeliest:
            best, which = self.uplift[:, key[0]].copy(), np.zeros(len(self.p_control), dtype=np.int8)
            for j, c in enumerate(key[1:], 1):  # column by column: each is contiguous
                which[self.uplift[:, c] > best] = j
                np.maximum(best, self.uplift[:, c], out=best)
            self._likeliest[key] = which
        return self._likeliest[key]

    def chosen(self, cols: Sequence[int], which: np.ndarray) -> np.ndarray:
        """The uplift under cols[which] for every user, float32 (`likeliest`'s choice, read again rather
        than kept: at 10M users each group's copy would be 40 MB in every worker)."""
        u = self.uplift[:, cols[0]].astype(np.float32)
        for j, c in enumerate(cols[1:], 1):
            np.copyto(u, self.uplift[:, c], where=which == j)
        return u


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
    holdout_seed: int = 0

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


def alike(campaign: Campaign) -> list[np.ndarray]:
    """The campaign's arms grouped by channel, incentive and both costs (positions into its arms): arms
    that differ only in their send window. Exclusions, opt-outs and caps never tell them apart."""
    keys: dict[tuple, list[int]] = {}
    for k, a in enumerate(campaign.arms):
        key = (a.channel, a.incentive, float(campaign.incentive_cost[k]), float(campaign.contact_cost[k]))
        keys.setdefault(key, []).append(k)
    return [np.array(m, dtype=np.intp) for m in keys.values()]


def candidates(table: ArmTable, rows: np.ndarray, campaign: Campaign) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per audience user, each group of alike arms' most likely to convert: its arm (n × G, into
    campaign.arms) and its uplift.

    Alike arms share channel and costs and differ only in P(convert), and value and expected cost are
    both affine in it with the same slopes, so the likeliest is the best of them at every budget and
    channel price: the optimiser need not see the others (48 arms are 16 groups at the defaults).
    Stored arm-major (Fortran order), as the optimiser passes over them."""
    groups = alike(campaign)
    cols = table.columns(campaign.arms)
    every = len(rows) == len(table.p_control)
    shape = (len(rows), len(groups))
    # int8 arms: at 10M users an intp matrix of them would be 1.3 GB (campaigns have at most 48 arms).
    arm, u = np.empty(shape, dtype=np.int8, order="F"), np.empty(shape, dtype=np.float32, order="F")
    for g, members in enumerate(groups):
        which = table.likeliest(cols[members])
        arm[:, g] = members[which if every else which[rows]]
        u[:, g] = table.chosen(cols[members], which) if every else table.uplift[rows, cols[members][which[rows]]]
    return groups, arm, u


def problem(table: ArmTable, rows: np.ndarray, campaign: Campaign, eligible: np.ndarray,
            user_value: np.ndarray) -> tuple[Problem, np.ndarray, np.ndarray, np.ndarray]:
    """The optimiser's problem over the audience's groups of alike arms (`eligible`: n × groups); also the
    arm each group stands for and the uplift and gross value per user and group."""
    groups, arm, uplift = candidates(table, rows, campaign)
    first = np.array([m[0] for m in groups], dtype=np.intp)
    # float32 throughout: at 1M users each n × groups matrix is 64 MB, and each copy counts.
    cost = uplift + table.p_control[rows, None]  # P(convert | arm), which the incentive's cost is paid on
    cost *= campaign.incentive_cost[first].astype(np.float32)[None, :]
    cost += campaign.contact_cost[first].astype(np.float32)[None, :]
    per = (np.full(len(rows), campaign.value_per_conversion) if campaign.value_per_conversion is not None
           else np.nan_to_num(user_value, nan=0.0))
    gross = uplift * per.astype(np.float32)[:, None]  # reported under either objective
    value = uplift if campaign.objective == "conversions" else gross - cost
    capacity = np.array([float(campaign.capacity.get(c, np.inf)) for c in CONTACT_CHANNELS])
    return Problem(value, cost, campaign.channel_index[first], eligible, campaign.budget, capacity), arm, uplift, gross


def plan(table: ArmTable, rows: np.ndarray, campaign: Campaign, eligible: np.ndarray,
         user_value: np.ndarray) -> Planned:
    """Solve at the budget (and estimate the best at half and twice it), then hold a random share of the
    planned out."""
    p, arm_of, uplift, gross = problem(table, rows, campaign, eligible, user_value)
    solution = solve(p)
    at_half = estimate(_with_budget(p, p.budget / 2))
    at_twice = estimate(_with_budget(p, p.budget * 2))
    group = solution.arm
    chosen = group != NONE
    at, pick = np.arange(len(rows)), np.where(chosen, group, 0)
    arm = np.where(chosen, arm_of[at, pick], NONE)
    planned = np.flatnonzero(chosen)
    holdout = np.zeros(len(rows), dtype=bool)
    rng = np.random.default_rng(campaign.holdout_seed)
    holdout[planned[rng.random(len(planned)) < campaign.holdout_share]] = True
    return Planned(rows, arm, holdout, np.where(chosen, uplift[at, pick], 0.0), np.where(chosen, gross[at, pick], 0.0),
                   np.where(chosen, p.cost[at, pick], 0.0), solution, at_half, at_twice)


def _with_budget(p: Problem, budget: float) -> Problem:
    return Problem(p.value, p.cost, p.channel, p.eligible, budget, p.capacity)


def figures(users: int, uplift: float, value: float, spend: float) -> dict[str, float]:
    """Expected incremental conversions, value, spend and ROI (net value per unit spent) of some sends."""
    uplift, value, spend = float(uplift), float(value), float(spend)  # plain floats: numpy's are not JSON to orjson
    return {"users": int(users), "incremental_conversions": round(uplift, 4),
            "incremental_value": round(value, 2), "spend": round(spend, 2),
            "roi": round((value - spend) / spend, 4) if spend > 0 else None}


def breakdown(planned: Planned, codes: np.ndarray, names: Sequence[str], contacted: np.ndarray) -> dict[str, dict]:
    """`figures` of the contacted users per label (`codes` index `names`), by weighted counts."""
    c = codes[contacted]
    sums = [np.bincount(c, weights=w, minlength=len(names)) for w in
            (None, planned.uplift[contacted], planned.value[contacted], planned.cost[contacted])]
    return {str(names[i]): figures(*(x[i] for x in sums)) for i in np.flatnonzero(sums[0])}


def summary(planned: Planned, campaign: Campaign, segments: np.ndarray, segment_names: Sequence[str]) -> dict:
    """The plan's summary: counts per arm, channel and window, expected figures overall, by arm and by
    segment (over the contacted, holdout excluded), the bound and gap, and the value at half and twice the
    budget. `segments`: each audience user's index into `segment_names`."""
    contacted = (planned.arm != NONE) & ~planned.holdout
    arm = planned.arm
    s = planned.solution
    by_arm = breakdown(planned, arm, [a.id for a in campaign.arms], contacted)

    def counts(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in campaign.arms:
            if a.id in by_arm:
                label = getattr(a, key)
                out[label] = out.get(label, 0) + by_arm[a.id]["users"]
        return out

    total = [contacted.sum(), *(float(x[contacted].sum(dtype=np.float64)) for x in (planned.uplift, planned.value, planned.cost))]
    return {
        "planned_users": int((arm != NONE).sum()),
        "contacted_users": int(contacted.sum()),
        "holdout_users": int(planned.holdout.sum()),
        "users_per_arm": counts("id"), "users_per_channel": counts("channel"), "users_per_window": counts("window"),
        "expected": figures(*total),
        "by_arm": by_arm,
        "by_segment": breakdown(planned, segments, segment_names, contacted),
        "optimiser": {"method": s.method, "objective": campaign.objective, "value": round(s.objective, 4),
                      "bound": round(s.bound, 4), "gap": round(s.gap, 4), "relative_gap": round(s.relative_gap, 6),
                      "spend_planned": round(s.spend, 2), "budget": campaign.budget},
        "value_at_half_budget": round(planned.at_half, 4),
        "value_at_twice_budget": round(planned.at_twice, 4),
        "reasons": s.reasons,
    }
