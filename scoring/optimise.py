"""The campaign optimiser: one arm or none per user, the most objective within budget and channel capacities.

A multiple-choice knapsack with side constraints. Small problems go to `scipy.optimize.milp` (HiGHS);
large ones to a Lagrangian threshold: with a price λ on the budget and μ_c on each channel's
capacity, each user takes the arm of highest reduced profit value − λ·cost − μ_channel, or none if
it is not positive. Each price in turn is set to the least that makes its constraint hold (a
capacity's exactly, from the users' margins; the budget's by bisection, as use falls with the price),
for a few rounds (coordinate descent on the dual). Any λ, μ ≥ 0 give an upper bound on the LP
relaxation (the dual function), so the plan always comes with the bound and its gap. Contact caps, opt-outs and exclusions arrive as `eligible`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, sparse

from scoring.thresholds import (BISECTION_STEPS, COLD_GROWTH, DUAL_ROUNDS, FILL_MIN_ROOM, GAP_TOLERANCE, MILP_MAX_PAIRS,
                                MILP_REL_GAP, MILP_TIME_LIMIT_S, PRICE_SAMPLE_USERS, PRICE_TOLERANCE, SPEND_TOLERANCE,
                                WARM_GROWTH)

NONE = -1  # no arm for this user


@dataclass
class Problem:
    """value and cost per user and arm (n × K); channel index per arm (K,); capacity per channel (inf: none)."""

    value: np.ndarray
    cost: np.ndarray
    channel: np.ndarray
    eligible: np.ndarray
    budget: float
    capacity: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.value.shape


@dataclass
class Solution:
    arm: np.ndarray  # (n,) arm index per user, NONE for no contact
    objective: float
    spend: float
    bound: float  # upper bound on the best plan's objective (the LP relaxation's, or HiGHS's dual bound)
    method: str
    reasons: list[str] = field(default_factory=list)  # why nothing (or less than asked) was planned

    @property
    def gap(self) -> float:
        """Bound minus objective: how much any plan could still add, at most."""
        return max(self.bound - self.objective, 0.0)

    @property
    def relative_gap(self) -> float:
        return self.gap / self.bound if self.bound > 0 else 0.0


def evaluate(problem: Problem, arm: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Objective, spend and sends per channel of an assignment."""
    chosen = arm != NONE
    rows, arms = np.flatnonzero(chosen), arm[chosen]
    load = np.bincount(problem.channel[arms], minlength=len(problem.capacity)).astype(float)
    return float(problem.value[rows, arms].sum()), float(problem.cost[rows, arms].sum()), load


def feasible(problem: Problem, arm: np.ndarray, slack: float = 1e-6) -> bool:
    chosen = arm != NONE
    _, spend, load = evaluate(problem, arm)
    return (bool(problem.eligible[np.flatnonzero(chosen), arm[chosen]].all())
            and spend <= problem.budget * (1 + slack) + slack and bool((load <= problem.capacity).all()))


def solve(problem: Problem, milp_max_pairs: int = MILP_MAX_PAIRS) -> Solution:
    """The best plan found, by milp when the candidate pairs are few enough, else by the Lagrangian."""
    n, _ = problem.shape
    useful = _useful(problem)
    reasons = _why_nothing(problem, useful)
    if reasons:
        return Solution(np.full(n, NONE), 0.0, 0.0, 0.0, "none", reasons)
    if int(useful.sum()) <= milp_max_pairs:
        return _milp(problem, useful)
    return _lagrangian(problem, useful)


def estimate(problem: Problem) -> float:
    """The best plan's objective: solved whole up to PRICE_SAMPLE_USERS users, above that on a random
    sample of them with budget and capacities scaled alike, scaled back (what-if figures, not plans)."""
    n = problem.shape[0]
    if n <= PRICE_SAMPLE_USERS:
        return solve(problem).objective
    share = PRICE_SAMPLE_USERS / n
    rows = np.sort(np.random.default_rng(1).choice(n, PRICE_SAMPLE_USERS, replace=False))
    sample = Problem(problem.value[rows], problem.cost[rows], problem.channel, problem.eligible[rows],
                     problem.budget * share, np.floor(problem.capacity * share))
    return solve(sample).objective / share


def _useful(problem: Problem) -> np.ndarray:
    """Pairs that can be in an optimal plan: allowed, worth something and affordable on their own."""
    open_channel = problem.capacity[problem.channel] >= 1
    return problem.eligible & (problem.value > 0) & (problem.cost <= problem.budget) & open_channel[None, :]


def _why_nothing(problem: Problem, useful: np.ndarray) -> list[str]:
    n, k = problem.shape
    if n == 0 or k == 0:
        return ["the audience or the arm list is empty"]
    if not problem.eligible.any():
        return ["no user may be contacted on any allowed arm (exclusions, opt-outs or contact caps)"]
    if not (problem.eligible & (problem.value > 0)).any():
        return ["no allowed arm is expected to add to the objective for any user"]
    if not (problem.eligible & (problem.cost <= problem.budget)).any():
        return ["the budget is below the expected cost of the cheapest allowed send"]
    if not useful.any():
        return ["every channel with a worthwhile send has no capacity"]
    return []


def _milp(problem: Problem, useful: np.ndarray) -> Solution:
    rows, arms = np.nonzero(useful)
    m = len(rows)
    n_users = problem.shape[0]
    value, cost = problem.value[rows, arms], problem.cost[rows, arms]
    capped = np.flatnonzero(np.isfinite(problem.capacity))
    pair = np.arange(m)
    blocks = [sparse.csr_array((np.ones(m), (rows, pair)), shape=(n_users, m)),
              sparse.csr_array(cost[None, :])]
    upper = [np.ones(n_users), [problem.budget]]
    if len(capped):
        on = np.isin(problem.channel[arms], capped)
        which = np.searchsorted(capped, problem.channel[arms][on])
        blocks.append(sparse.csr_array((np.ones(int(on.sum())), (which, pair[on])), shape=(len(capped), m)))
        upper.append(problem.capacity[capped])
    constraint = optimize.LinearConstraint(sparse.vstack(blocks), -np.inf, np.concatenate(upper))
    result = optimize.milp(-value, constraints=constraint, integrality=np.ones(m), bounds=optimize.Bounds(0, 1),
                           options={"time_limit": MILP_TIME_LIMIT_S, "mip_rel_gap": MILP_REL_GAP})
    arm = np.full(n_users, NONE)
    if result.x is None:  # the time limit passed before any plan was found
        return _lagrangian(problem, useful)
    take = result.x > 0.5
    arm[rows[take]] = arms[take]
    objective, spend, _ = evaluate(problem, arm)
    bound = -result.mip_dual_bound if result.mip_dual_bound is not None else objective
    return Solution(arm, objective, spend, max(bound, objective), "milp")


@dataclass
class _Priced:
    """The users' choices at one set of prices."""

    arm: np.ndarray  # NONE or the arm, per user of the compressed problem
    profit: np.ndarray  # its reduced profit (0 for none)
    spend: float
    load: np.ndarray  # sends per channel


@dataclass
class _PerChannel:
    """At one budget price λ, each user's best arm on each channel, its reduced profit and cost (C × n):
    channel prices shift whole channels, so they choose among these C columns, not all K arms."""

    arm: np.ndarray
    profit: np.ndarray
    cost: np.ndarray


class _Lagrangian:
    """The candidate pairs of a large problem, compressed to users with any, arm-major (K × n) float32
    so that each arm's column is one contiguous pass."""

    def __init__(self, problem: Problem, users: np.ndarray, useful: np.ndarray, share: float = 1.0):
        self.users = users
        every = len(users) == problem.shape[0]
        self.value = np.where(_arm_major(useful, users, every), _arm_major(problem.value, users, every),
                              np.float32(-np.inf))
        self.cost = _arm_major(problem.cost, users, every)
        self.groups = [np.flatnonzero(problem.channel == c) for c in range(len(problem.capacity))]
        # A sample of the users stands for all of them with the budget and capacities scaled alike.
        self.budget = problem.budget * share
        self.capacity = problem.capacity * share
        self.capped = np.flatnonzero(np.isfinite(problem.capacity))
        self._evaluated: dict[float, _PerChannel] = {}

    def per_channel(self, lam: float) -> _PerChannel:
        """`_PerChannel` at λ. Between two prices already evaluated, only the users whose choice differs
        at the two are recomputed: each channel's best reduced profit is the upper envelope of lines in λ,
        convex, so an arm best at both ends of an interval is best throughout it."""
        if lam not in self._evaluated:
            below = max((x for x in self._evaluated if x < lam), default=None)
            above = min((x for x in self._evaluated if x > lam), default=None)
            self._evaluated[lam] = (self._full(lam, np.arange(len(self.users))) if below is None or above is None
                                    else self._between(lam, below, above))
        return self._evaluated[lam]

    def _between(self, lam: float, below: float, above: float) -> _PerChannel:
        lo, hi = self._evaluated[below], self._evaluated[above]
        moving = np.flatnonzero((lo.arm != hi.arm).any(axis=0))
        profit = lo.profit - np.float32(lam - below) * lo.cost  # the fixed users' lines at λ
        arm, cost = lo.arm.copy(), lo.cost.copy()
        if len(moving):
            sub = self._full(lam, moving)
            arm[:, moving], profit[:, moving], cost[:, moving] = sub.arm, sub.profit, sub.cost
        return _PerChannel(arm, profit, cost)

    def _full(self, lam: float, users: np.ndarray) -> _PerChannel:
        """Each of `users` (positions in the compressed problem) evaluated over every arm at λ."""
        every = len(users) == len(self.users)
        value = self.value if every else self.value[:, users]
        costs = self.cost if every else self.cost[:, users]
        n, channels = len(users), len(self.groups)
        arm = np.full((channels, n), NONE, dtype=np.int32)
        profit = np.full((channels, n), -np.inf, dtype=np.float32)
        cost = np.zeros((channels, n), dtype=np.float32)
        reduced, better = np.empty(n, dtype=np.float32), np.empty(n, dtype=bool)
        for c, group in enumerate(self.groups):
            for k in group:  # in place, one pass per arm: no n × K temporaries
                np.multiply(costs[k], np.float32(-lam), out=reduced)
                reduced += value[k]
                np.greater(reduced, profit[c], out=better)
                np.maximum(profit[c], reduced, out=profit[c])
                np.copyto(arm[c], k, where=better)
                np.copyto(cost[c], costs[k], where=better)
        return _PerChannel(arm, profit, cost)

    def choose(self, at: _PerChannel, mu: np.ndarray) -> _Priced:
        # Channel by channel rather than argmax over axis 0, which is ten times slower on C × n.
        c = np.zeros(at.profit.shape[1], dtype=np.intp)
        profit = at.profit[0] - np.float32(mu[0])
        for ch in range(1, len(at.profit)):
            reduced = at.profit[ch] - np.float32(mu[ch])
            better = reduced > profit
            c[better] = ch
            np.maximum(profit, reduced, out=profit)
        cols = np.arange(len(c))
        chosen = profit > 0
        arm = np.where(chosen, at.arm[c, cols], NONE)
        spend = float(at.cost[c, cols][chosen].sum(dtype=np.float64))
        load = np.bincount(c[chosen], minlength=len(self.groups)).astype(float)
        return _Priced(arm, np.where(chosen, profit, 0.0), spend, load)

    def least_capacity_price(self, at: _PerChannel, mu: np.ndarray, c: int) -> float:
        """The least price μ_c at which channel c's sends fit its capacity, the other prices held: a user
        takes c when its reduced profit beats both the best other channel's and none's by more than μ_c,
        so μ_c is the (capacity + 1)-th largest such margin."""
        others = np.zeros(at.profit.shape[1], dtype=np.float32)  # none: 0
        for ch in range(len(at.profit)):
            if ch != c:
                np.maximum(others, at.profit[ch] - np.float32(mu[ch]), out=others)
        margin = at.profit[c] - others
        room = int(np.floor(self.capacity[c]))
        if int((margin > 0).sum()) <= room:
            return 0.0
        return float(max(np.partition(margin, len(margin) - room - 1)[len(margin) - room - 1], 0.0))

    def dual(self, lam: float, mu: np.ndarray, priced: _Priced) -> float:
        """The dual function at (λ, μ): an upper bound on the LP relaxation, hence on any plan."""
        capped = self.capped
        return float(priced.profit.sum(dtype=np.float64) + lam * self.budget
                     + (mu[capped] * self.capacity[capped]).sum())


def _arm_major(matrix: np.ndarray, users: np.ndarray, every: bool) -> np.ndarray:
    """The users' rows of an n × K matrix as K × users, C-contiguous (one contiguous pass per arm); a plain
    copy when the matrix is already stored arm-major (Fortran order), as `scoring.plan` builds them."""
    by_arm = matrix.T
    return np.ascontiguousarray(by_arm if every else by_arm[:, users],
                                dtype=np.float32 if matrix.dtype.kind == "f" else None)


def _least_price(price, usage, limit: float, start: float, grow: float) -> list[tuple[float, _Priced]]:
    """Every (price, choices) evaluated on the way to the least price ≥ 0 at which usage ≤ limit (use
    falls as the price rises), the one found last: a bracket grown from `start` by `grow`, then bisection."""
    seen = [(0.0, price(0.0))]
    if usage(seen[0][1]) <= limit:
        return seen
    lo, hi = 0.0, max(start, 1e-6)
    at = price(hi)
    if usage(at) <= limit:  # a warm start: look just below it first
        while (below := hi / grow) > 1e-9 and usage(b := price(below)) <= limit:
            seen.append((hi, at))
            hi, at = below, b
        lo = below
    while usage(at) > limit:  # finite: past the largest value/cost ratio, nothing is used
        seen.append((hi, at))
        lo, hi = hi, hi * grow
        at = price(hi)
    best = (hi, at)
    use_lo, use_hi = usage(seen[-1][1]) if lo == seen[-1][0] else np.inf, usage(at)
    for step in range(BISECTION_STEPS):
        # Close enough in use, or in price (use jumps where a price crosses whole users' ratios).
        if use_hi >= limit * (1 - SPEND_TOLERANCE) or hi - lo <= PRICE_TOLERANCE * hi:
            break
        # False position (use is nearly linear in the price over a narrow bracket), every other step
        # a bisection so that a flat side cannot stall it.
        mid = (lo + hi) / 2
        if step % 2 == 0 and np.isfinite(use_lo) and use_lo > use_hi:
            mid = lo + (hi - lo) * (use_lo - limit) / (use_lo - use_hi)
            mid = min(max(mid, lo + 0.01 * (hi - lo)), hi - 0.01 * (hi - lo))
        at = price(mid)
        seen.append((mid, at))
        if usage(at) <= limit:
            hi, best, use_hi = mid, (mid, at), usage(at)
        else:
            lo, use_lo = mid, usage(at)
    return [*seen, best]


def _descend(lg: _Lagrangian, lam: float, mu: np.ndarray, grow: float, rounds: int):
    """Coordinate descent on the dual: each capacity price, then the budget price, set to the least that
    makes its constraint hold. Yields (λ, μ, bound so far, the budget-feasible choices) per round."""
    bound = np.inf
    mu = mu.copy()
    # With no capacity to price, the budget price alone is exact after one round.
    for _ in range(rounds if len(lg.capped) else 1):
        at = lg.per_channel(lam)
        for c in lg.capped:
            mu[c] = lg.least_capacity_price(at, mu, c)
            bound = min(bound, lg.dual(lam, mu, lg.choose(at, mu)))
        seen = _least_price(lambda x: lg.choose(lg.per_channel(x), mu), lambda p: p.spend, lg.budget, lam, grow)
        lam = seen[-1][0]
        bound = min(bound, *(lg.dual(x, mu, p) for x, p in seen))
        yield lam, mu, bound, seen[-1][1]


def _lagrangian(problem: Problem, useful: np.ndarray) -> Solution:
    """The best repaired plan and the least bound seen in a few rounds of dual descent; on a large
    problem, prices first found on a sample of the users, so that the full passes start close."""
    users = np.flatnonzero(useful.any(axis=1))
    lam, mu, grow = 0.0, np.zeros(len(problem.capacity)), COLD_GROWTH
    if len(users) > PRICE_SAMPLE_USERS:
        sample = np.sort(np.random.default_rng(0).choice(users, PRICE_SAMPLE_USERS, replace=False))
        small = _Lagrangian(problem, sample, useful, PRICE_SAMPLE_USERS / len(users))
        for lam_next, mu_next, _, _ in _descend(small, lam, mu, COLD_GROWTH, DUAL_ROUNDS):
            settled = np.allclose([lam_next, *mu_next], [lam, *mu], rtol=0.01)
            lam, mu = lam_next, mu_next
            if settled:
                break
        grow = WARM_GROWTH
    lg = _Lagrangian(problem, users, useful)
    best_arm, best_objective = np.full(problem.shape[0], NONE), -np.inf
    for lam_next, mu_next, bound, priced in _descend(lg, lam, mu, grow, DUAL_ROUNDS):
        arm = _repair(problem, lg, priced)
        objective, _, _ = evaluate(problem, arm)
        if objective > best_objective:
            best_arm, best_objective = arm, objective
        settled = np.allclose([lam_next, *mu_next], [lam, *mu], rtol=0.01)
        lam, mu = lam_next, mu_next
        if settled or bound - best_objective <= GAP_TOLERANCE * max(bound, 1e-12):
            break
    _, spend, _ = evaluate(problem, best_arm)
    return Solution(best_arm, best_objective, spend, max(bound, best_objective), "lagrangian")


def _repair(problem: Problem, lg: _Lagrangian, priced: _Priced) -> np.ndarray:
    """Full-size assignment from the priced choices: over-capacity channels keep their most profitable
    users; then leftover budget and capacity go to the next best pairs by value per cost."""
    arm = np.full(problem.shape[0], NONE)
    local = priced.arm.copy()
    for c in np.flatnonzero(priced.load > problem.capacity):
        on = np.flatnonzero((local != NONE) & (problem.channel[np.maximum(local, 0)] == c))
        drop = on[np.argsort(-priced.profit[on], kind="stable")][int(problem.capacity[c]):]
        local[drop] = NONE
    arm[lg.users] = local
    return _fill(problem, lg, arm)


def _fill(problem: Problem, lg: _Lagrangian, arm: np.ndarray) -> np.ndarray:
    """Give users still without an arm their best-ratio affordable arm while budget and capacity last."""
    _, spend, load = evaluate(problem, arm)
    room = problem.budget - spend
    free = arm[lg.users] == NONE
    # What the bisection leaves unspent is within its tolerance: not worth a pass over every free user.
    if room <= FILL_MIN_ROOM * problem.budget or not free.any():
        return arm
    open_channel = load + 1 <= problem.capacity
    value = np.where(open_channel[problem.channel][None, :], lg.value[:, free].T, -np.inf)
    ratio = value / np.maximum(lg.cost[:, free].T, 1e-12)
    best = ratio.argmax(axis=1)
    ok = np.isfinite(np.take_along_axis(value, best[:, None], axis=1)[:, 0])
    users, best = lg.users[free][ok], best[ok]
    order = np.argsort(-ratio[ok, best] if ok.any() else np.empty(0), kind="stable")
    users, best = users[order], best[order]
    cost = problem.cost[users, best]
    fits = np.cumsum(cost) <= room
    channel = problem.channel[best]
    # Within capacity: the rank of each candidate among its channel's, against the room left there.
    rank = np.empty(len(channel), dtype=int)
    for c in np.unique(channel):
        on = np.flatnonzero(channel == c)
        rank[on] = np.arange(len(on))
    fits &= rank < np.floor(problem.capacity - load)[channel]
    # A prefix of the ranked list that fits both (spend counted over those taken only).
    taken = np.flatnonzero(fits)
    keep = np.cumsum(cost[taken]) <= room
    arm[users[taken[keep]]] = best[taken[keep]]
    return arm
