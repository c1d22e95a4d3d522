"""Marketing response as uplift per arm: P(convert | arm) − P(convert | control), with per-feature reasons.

Two shapes of learner. Per arm (T-, X- and DR-learners; a table's experiment is one arm, `treated`):
the "control" booster gives P(convert | control) and an arm's uplift is Σ weight × output over that
arm's boosters. The S-learner: one booster on the features and the arm's incentive, channel and
window codes, trained with interaction constraints so that no branch of a tree reads two of the
three. Its raw output is then, for every user, a sum of one term per part, and its trees are kept in
groups by what they read (PART_BOOSTERS): the trees that read no part are walked once, those that
read one part once per value of it, so the 48 arms cost about three walks of the booster, not 48.
That output is P(convert) itself (`link` "identity": a least-squares booster on the 0/1 outcome, so
that an arm's uplift is a sum of part terms) or, for models saved before, its log-odds ("logit").

The headline score is the uplift of the best of the model's arms (`narrowed` answers for fewer arms,
or chooses the best by net value: uplift × value − contact cost − P(convert | arm) × incentive cost);
`arm_probabilities` gives them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import lightgbm as lgb
import numpy as np

from scoring.arms import CONTACT_CHANNELS, CONTROL, INCENTIVES, SEND_WINDOWS, Arm
from scoring.artifacts import read_meta, write_meta
from scoring.scorer import one_of_batch
from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec
from scoring.trees import LeafAttribution

S_LEARNER = "s_learner"
IDENTITY, LOGIT = "identity", "logit"  # what the S-learner's trees sum to: P(convert), or its log-odds
# The S-learner's inputs after the features: each part of an arm as a code, 0 for control.
ARM_PARTS = (INCENTIVES, CONTACT_CHANNELS, tuple(SEND_WINDOWS))
ARM_PARTS_NAMES = ("incentive", "channel", "window")
CONTROL_CODES = (0.0, 0.0, 0.0)
BASE_CODES = (1.0, 1.0, 1.0)  # the arm the other parts' terms are measured from
# The S-learner's trees in groups by what they read: no part (the same for every arm: walked once),
# one part (walked once per value of it the arms need), or several in different branches ("outcome":
# walked at control, the base arm and each other value of each part, and combined).
BASE_BOOSTER, MIXED_BOOSTER = "outcome_base", "outcome"
PART_BOOSTERS = {f"outcome_{name}": part for part, name in enumerate(ARM_PARTS_NAMES)}
MEMO_ROWS = 10_000  # a batch's arm values are kept up to a request's size, not a snapshot's
CHUNK_ROWS = 8_192  # users per pass: the ten arm-coded copies of a chunk, stacked, stay under ~100 MB


def arm_codes(arm_ids: Sequence[str]) -> np.ndarray:
    """(len, 3) codes of arms by id; control is all zeros."""
    out = np.zeros((len(arm_ids), len(ARM_PARTS)))
    for i, arm_id in enumerate(arm_ids):
        if arm_id != CONTROL:
            arm = Arm.parse(arm_id)
            out[i] = [values.index(v) + 1 for values, v in zip(ARM_PARTS, (arm.incentive, arm.channel, arm.window))]
    return out


@dataclass(frozen=True)
class ArmPlan:
    """How the S-learner's groups of trees combine into each arm's raw output (see PART_BOOSTERS)."""

    variants: np.ndarray  # (m, 3): the mixed trees' evaluation points; row 0 is control
    weights: np.ndarray  # (m, arms): an arm's mixed-tree output is Σ weight × variant output
    part_values: tuple[np.ndarray, ...]  # per part: the codes its trees are evaluated at (0 first: control)
    part_index: tuple[np.ndarray, ...]  # per part: each arm's position in part_values


@lru_cache(maxsize=256)
def arm_plan(arm_ids: tuple[str, ...]) -> ArmPlan:
    codes = arm_codes(arm_ids)
    variants, where = [CONTROL_CODES, BASE_CODES], {}
    for part in range(len(ARM_PARTS)):
        for value in np.unique(codes[:, part]):
            if value != BASE_CODES[part]:
                at = list(BASE_CODES)
                at[part] = value
                where[part, value] = len(variants)
                variants.append(tuple(at))
    # The mixed trees are additive in the parts for each user: arm = base + Σ_part (part's variant − base).
    weights = np.zeros((len(variants), len(arm_ids)))
    for j, row in enumerate(codes):
        weights[1, j] = 1.0
        for part, value in enumerate(row):
            if value != BASE_CODES[part]:
                weights[where[part, value], j] += 1.0
                weights[1, j] -= 1.0
    values = tuple(np.unique(np.r_[0.0, codes[:, part]]) for part in range(len(ARM_PARTS)))
    index = tuple(np.searchsorted(values[part], codes[:, part]) for part in range(len(ARM_PARTS)))
    return ArmPlan(np.asarray(variants), weights, values, index)


def file_name(booster: str) -> str:
    """A booster's name as a file name: arm ids hold slashes."""
    return re.sub(r"[^0-9A-Za-z_.-]", ".", booster)


def _chunked(f: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], X: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= CHUNK_ROWS:
        return f(X)
    p0, P = np.empty(len(X)), np.empty((len(X), k))
    for start in range(0, len(X), CHUNK_ROWS):
        p0[start:start + CHUNK_ROWS], P[start:start + CHUNK_ROWS] = f(X[start:start + CHUNK_ROWS])
    return p0, P


@dataclass
class UpliftScorer:
    kind: ClassVar[str] = "uplift"
    # p_treated: P(convert | the best arm).
    columns: ClassVar[tuple[str, ...]] = ("p_treated", "p_control")
    per_feature: ClassVar[tuple[str, ...]] = ()
    learner: str
    boosters: dict[str, lgb.Booster]  # per arm: "control" and each arm's; S-learner: its groups of trees
    arms: tuple[str, ...]  # the arm ids the model scores
    weights: dict[str, dict[str, float]]  # per-arm learners: arm → booster → weight in its uplift
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None
    # The S-learner's trees sum to P(convert) ("identity") or to its log-odds ("logit", models saved before).
    link: str = "logit"
    # How `narrowed` chooses the best arm: by net value when a value per conversion is given, with each
    # arm's contact and incentive cost (in `arms` order); by uplift otherwise.
    value: float | None = None
    costs: np.ndarray | None = field(default=None, repr=False)  # (arms, 2): contact, incentive
    # Shared by narrowed copies: the decision-path tables (built on first use) and the last batch's arms.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def per_arm(self) -> tuple[str, ...]:
        """The values an answer gives per arm."""
        return ("uplift", "p_convert", *(("net_value",) if self.value is not None else ()))

    def narrowed(self, arms: Sequence[str] | None = None, value: float | None = None,
                 incentive_cost: Mapping[str, float] | None = None,
                 contact_cost: Mapping[str, float] | None = None) -> UpliftScorer:
        """The same model answering for `arms` only (all by default), the best chosen by net value when
        `value` is given; costs default to scoring.arms'. KeyError names an arm the model does not know."""
        ids = tuple(arms) if arms else self.arms
        unknown = [a for a in ids if a not in self.arms]
        if unknown:
            raise KeyError(f"arms the model was not trained on: {unknown[:5]}")
        costs = None
        if value is not None:
            parsed = [Arm.parse(a) for a in ids]
            costs = np.array([[(contact_cost or {}).get(a.channel, a.contact_cost),
                               (incentive_cost or {}).get(a.incentive, a.incentive_cost)] for a in parsed])
        return replace(self, arms=ids, value=value, costs=costs)

    def arm_probabilities(self, X: np.ndarray, arms: Sequence[Arm],
                          threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """P(convert | control) of shape (n,) and P(convert | arm) of shape (n, len(arms))."""
        return self.probabilities(X, [a.id for a in arms], threads)

    def probabilities(self, X: np.ndarray, arm_ids: Sequence[str], threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        unknown = [a for a in arm_ids if a not in self.arms]
        if unknown:
            raise KeyError(f"arms the model was not trained on: {unknown[:5]}")
        if self.learner == S_LEARNER:
            return _chunked(lambda part: self._s_probabilities(part, arm_ids, threads), X, len(arm_ids))
        return _chunked(lambda part: self._per_arm_probabilities(part, arm_ids, threads), X, len(arm_ids))

    def arm_values(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Per row: P(convert | control), the chosen arm's index in `arms` (-1 when no arm is positive),
        the uplift of that arm (the largest one's when none is), and every arm's `per_arm` values. The
        last batch's are kept, so that a batch's score, extras and reasons compute them once."""
        # Keyed by the rows' memory, so that a row and its 2-D view (a single user's score, then extras) match.
        key = (X.__array_interface__["data"][0], X.shape, self.arms, self.value)
        last = self.cache.get("last") if len(X) <= MEMO_ROWS else None
        if last is not None and last[1] == key and last[2] is self.costs:
            return last[3]
        p0, P = self.probabilities(X, self.arms)
        out = {"p_control": p0, "uplift": P - p0[:, None], "p_convert": P}
        criterion = out["uplift"]
        if self.value is not None:
            out["net_value"] = criterion = out["uplift"] * self.value - self.costs[:, 0] - P * self.costs[:, 1]
        best = criterion.argmax(axis=1)
        rows = np.arange(len(X))
        out["best_index"] = best
        out["best_arm"] = np.where(criterion[rows, best] > 0, best, -1)
        out["p_treated"] = P[rows, best]
        out["score"] = out["uplift"][rows, best]
        if len(X) <= MEMO_ROWS:
            self.cache["last"] = (X, key, self.costs, out)  # X held: its memory is not reused while keyed
        return out

    def _per_arm_probabilities(self, X: np.ndarray, arm_ids: Sequence[str],
                               threads: int) -> tuple[np.ndarray, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}

        def out(name: str) -> np.ndarray:
            if name not in outputs:
                outputs[name] = self.boosters[name].predict(X, num_threads=threads)
            return outputs[name]

        p0 = out("control")
        P = np.empty((len(X), len(arm_ids)))
        for j, arm in enumerate(arm_ids):
            P[:, j] = p0 + sum(w * out(name) for name, w in self.weights[arm].items())
        return p0, np.clip(P, 0.0, 1.0)

    def coded(self, X: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The S-learner's input: the features, then one arm's codes (a row of 3, or one row per row)."""
        Z = np.empty((len(X), X.shape[1] + len(ARM_PARTS)))
        Z[:, :X.shape[1]] = X
        Z[:, X.shape[1]:] = codes
        return Z

    def _stacked(self, X: np.ndarray, variants: np.ndarray) -> np.ndarray:
        """The S-learner's input at each row of codes in turn, stacked: one LightGBM call for all of them
        (for a single user, ten rows cost little more than one)."""
        return self.coded(np.tile(X, (len(variants), 1)), np.repeat(variants, len(X), axis=0))

    def _s_probabilities(self, X: np.ndarray, arm_ids: Sequence[str], threads: int) -> tuple[np.ndarray, np.ndarray]:
        plan, n = arm_plan(tuple(arm_ids)), len(X)
        raw_arms, control = np.zeros((n, len(arm_ids))), np.zeros(n)
        for name, booster in self.boosters.items():
            if name == BASE_BOOSTER:
                raw = booster.predict(self.coded(X, np.asarray(CONTROL_CODES)), raw_score=True, num_threads=threads)
                raw_arms += raw[:, None]
                control += raw
                continue
            if name in PART_BOOSTERS:
                part = PART_BOOSTERS[name]
                variants = np.zeros((len(plan.part_values[part]), len(ARM_PARTS)))
                variants[:, part] = plan.part_values[part]
            else:
                variants = plan.variants
            raw = booster.predict(self._stacked(X, variants), raw_score=True, num_threads=threads).reshape(-1, n)
            control += raw[0]
            raw_arms += raw[plan.part_index[PART_BOOSTERS[name]]].T if name in PART_BOOSTERS else raw.T @ plan.weights
        if self.link == IDENTITY:
            return np.clip(control, 0.0, 1.0), np.clip(raw_arms, 0.0, 1.0)
        return _sigmoid(control), _sigmoid(raw_arms)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.arm_values(X)["score"]

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return self.arm_values(X)

    def _by_best_arm(self, X: np.ndarray, attribution: Callable[[lgb.Booster, np.ndarray], np.ndarray]) -> np.ndarray:
        """Per-feature attributions of each row's best-arm uplift, one pass per distinct best arm."""
        best = self.arm_values(X)["best_index"]
        out = np.zeros((len(X), X.shape[1]))
        for b in np.unique(best):
            rows = np.flatnonzero(best == b)
            arm = self.arms[b]
            if self.learner == S_LEARNER:  # arm minus control: the trees that read no part cancel out
                Xr, codes = X[rows], arm_codes([arm])[0]
                out[rows] = sum(attribution(b, self.coded(Xr, codes)) - attribution(b, self.coded(Xr, np.zeros(3)))
                                for name, b in self.boosters.items() if name != BASE_BOOSTER)[:, :X.shape[1]]
            else:
                out[rows] = sum(w * attribution(self.boosters[name], X[rows]) for name, w in self.weights[arm].items())
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP of the best arm's uplift (each booster in its raw units: log-odds for classifiers; the
        S-learner's as arm minus control), bias and arm codes dropped; positive raises the uplift."""
        return self._by_best_arm(X, lambda b, Z: b.predict(Z, pred_contrib=True, num_threads=1)[:, :-1])

    def _path(self, booster: lgb.Booster) -> LeafAttribution:
        paths = self.cache.setdefault("paths", {})
        if id(booster) not in paths:
            paths[id(booster)] = LeafAttribution(booster)
        return paths[id(booster)]

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The best arm's uplift, and the same weighting over decision-path attributions (TreeSHAP's cheap stand-in)."""
        return self.predict(X), self._by_best_arm(X, lambda b, Z: self._path(b)(Z))

    def score_one(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return one_of_batch(self, x)

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {}
        for name, b in self.boosters.items():
            paths[f"booster_{file_name(name)}"] = folder / f"{file_name(name)}.txt"
            b.save_model(str(paths[f"booster_{file_name(name)}"]))
        paths["meta"] = write_meta(folder, self.kind, self.spec, self.band_edges, self.segments, learner=self.learner,
                                   boosters=sorted(self.boosters), arms=list(self.arms), weights=self.weights,
                                   link=self.link)
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> UpliftScorer:
        meta, spec, grid = read_meta(artifacts)
        boosters = {name: lgb.Booster(model_file=artifacts[f"booster_{file_name(name)}"]) for name in meta["boosters"]}
        return cls(meta["learner"], boosters, tuple(meta["arms"]), meta["weights"], spec, meta["band_edges"], grid,
                   meta.get("link", LOGIT))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
