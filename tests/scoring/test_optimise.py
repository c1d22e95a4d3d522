"""The campaign optimiser on random problems: constraints hold, and the Lagrangian's plan and bound
bracket the exact optimum milp finds."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.optimise import NONE, Problem, estimate, evaluate, feasible, solve


def random_problem(n: int, k: int = 6, channels: int = 3, seed: int = 0, budget_share: float = 0.2,
                   capacity_share: float | None = 0.3, eligible_share: float = 0.8) -> Problem:
    rng = np.random.default_rng(seed)
    channel = np.arange(k) % channels
    cost = rng.uniform(0.1, 2.0, size=(n, k)) * (1 + channel)[None, :]
    value = rng.normal(0.02, 0.05, size=(n, k)) * (1 + channel)[None, :]
    eligible = rng.random((n, k)) < eligible_share
    budget = budget_share * float(cost.mean()) * n
    capacity = np.full(channels, np.inf) if capacity_share is None else np.full(channels, capacity_share * n / channels)
    capacity[0] = np.inf  # one channel unbounded, as push is
    return Problem(value, cost, channel, eligible, budget, capacity)


@pytest.mark.parametrize("seed", range(6))
def test_lagrangian_brackets_the_milp_optimum(seed: int) -> None:
    p = random_problem(300, seed=seed, capacity_share=0.1 + 0.05 * seed)
    exact = solve(p)
    lagrangian = solve(p, milp_max_pairs=0)
    assert (exact.method, lagrangian.method) == ("milp", "lagrangian")
    assert feasible(p, exact.arm) and feasible(p, lagrangian.arm)
    # Both bounds are on the same optimum: each plan is at most it, each bound at least it.
    assert lagrangian.objective <= exact.objective + 1e-6
    assert lagrangian.bound >= exact.objective - 1e-4
    assert exact.bound >= exact.objective - 1e-9
    assert lagrangian.objective >= exact.objective - lagrangian.gap - 1e-9
    assert lagrangian.relative_gap < 0.1


def test_large_problem_is_feasible_with_a_small_gap() -> None:
    p = random_problem(50_000, seed=11, capacity_share=0.05)
    s = solve(p)
    assert s.method == "lagrangian"
    assert feasible(p, s.arm)
    objective, spend, load = evaluate(p, s.arm)
    assert objective == pytest.approx(s.objective) and spend == pytest.approx(s.spend)
    assert spend <= p.budget and (load <= p.capacity).all()
    assert s.relative_gap < 0.01


def test_budget_is_the_only_binding_constraint() -> None:
    p = random_problem(20_000, seed=3, capacity_share=None)
    s = solve(p, milp_max_pairs=0)
    assert feasible(p, s.arm)
    assert s.spend >= 0.99 * p.budget  # a budget-only plan spends all of it
    assert s.relative_gap < 0.005


def test_plenty_of_budget_takes_every_worthwhile_best_arm() -> None:
    p = random_problem(2_000, seed=4, budget_share=100.0, capacity_share=None)
    s = solve(p, milp_max_pairs=0)
    best = np.where(p.eligible, p.value, -np.inf).max(axis=1)
    assert (s.arm != NONE).sum() == (best > 0).sum()
    assert s.objective == pytest.approx(best[best > 0].sum())
    assert s.gap == pytest.approx(0.0, abs=1e-6)


def test_never_assigns_an_ineligible_or_worthless_pair() -> None:
    p = random_problem(5_000, seed=5, eligible_share=0.3)
    for s in (solve(p), solve(p, milp_max_pairs=0)):
        chosen = np.flatnonzero(s.arm != NONE)
        assert p.eligible[chosen, s.arm[chosen]].all()
        assert (p.value[chosen, s.arm[chosen]] > 0).all()


@pytest.mark.parametrize("change, reason", [
    (lambda p: Problem(p.value[:0], p.cost[:0], p.channel, p.eligible[:0], p.budget, p.capacity), "empty"),
    (lambda p: Problem(p.value, p.cost, p.channel, np.zeros_like(p.eligible), p.budget, p.capacity), "exclusions"),
    (lambda p: Problem(-abs(p.value), p.cost, p.channel, p.eligible, p.budget, p.capacity), "expected to add"),
    (lambda p: Problem(p.value, p.cost, p.channel, p.eligible, 0.01, p.capacity), "budget"),
    (lambda p: Problem(p.value, p.cost, p.channel, p.eligible, p.budget, np.zeros(3)), "capacity"),
])
def test_unservable_problems_give_no_assignment_and_a_reason(change, reason: str) -> None:
    p = change(random_problem(200, seed=8))
    for s in (solve(p), solve(p, milp_max_pairs=0)):
        assert (s.arm == NONE).all() and s.objective == 0 and s.spend == 0
        assert any(reason in r for r in s.reasons)


def test_estimate_on_a_sample_is_close_to_the_whole() -> None:
    p = random_problem(120_000, seed=12, capacity_share=0.05)
    assert estimate(p) == pytest.approx(solve(p).objective, rel=0.03)
