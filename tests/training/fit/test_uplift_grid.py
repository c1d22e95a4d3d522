"""The grid's learners on a small synthetic campaign log (fast: no world): the S-learner's arm-by-part
evaluation is exact, narrowed answers and net values follow their definitions, saved models reload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.arms import ARMS, CONTROL, Arm
from scoring.artifacts import CHECKSUMS, write_checksums
from scoring.spec import FeatureSpec
from scoring.uplift import UpliftScorer
from training.fit import s_learner, uplift

GRID = tuple(a.id for a in ARMS)


@pytest.fixture(scope="module")
def log() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Users randomised over control and the grid; phone calls lift the old, push the young, at night."""
    rng = np.random.default_rng(0)
    n = 8_000
    X = pd.DataFrame({"age": rng.integers(18, 70, n).astype(float), "activity": rng.normal(0, 1, n),
                      "acquisition_channel": rng.choice(["organic", "ads"], n)})
    labels = np.where(rng.random(n) < 0.2, CONTROL, rng.choice(np.array(GRID, dtype=object), n))
    arm = [Arm.parse(a) if a != CONTROL else None for a in labels]
    lift = np.array([0.0 if a is None else
                     0.2 * ((a.channel == "phone") * (X.age[i] > 45) + (a.channel == "push") * (X.age[i] < 30))
                     * (1.5 if a.window == "evening" else 0.5) * (a.incentive != "none") for i, a in enumerate(arm)])
    p = 1 / (1 + np.exp(-(-3 + 0.5 * X.activity))) + lift
    return X, (rng.random(n) < p).astype(int), labels


@pytest.fixture(scope="module")
def s_scorer(log) -> UpliftScorer:
    X, y, labels = log
    spec = FeatureSpec.fit(X)
    return uplift.s_learner(spec.to_matrix(X), y, labels, GRID, spec, X)


def test_s_learner_by_parts_equals_the_booster_on_each_arm(s_scorer, log):
    """Ten evaluations give all 48 arms: the sum of part terms is the booster's own output, to rounding."""
    X = s_scorer.spec.to_matrix(log[0].head(500))
    assert {"outcome_base", "outcome_incentive", "outcome_channel"} <= set(s_scorer.boosters), "trees by what they read"
    p0, P = s_scorer.arm_probabilities(X, ARMS)
    assert p0.shape == (500,) and P.shape == (500, len(ARMS))

    def direct(arm_id: str) -> np.ndarray:
        Z = s_learner.coded(X, np.full(len(X), arm_id, dtype=object))
        return np.clip(sum(b.predict(Z, raw_score=True) for b in s_scorer.boosters.values()), 0.0, 1.0)

    np.testing.assert_allclose(p0, direct(CONTROL), atol=1e-12)
    for j in (0, 7, 23, 31, 47):
        np.testing.assert_allclose(P[:, j], direct(GRID[j]), atol=1e-12)


def test_s_learner_finds_who_each_channel_lifts(s_scorer, log):
    X = log[0]
    M = s_scorer.spec.to_matrix(X)
    phone, push = Arm("red_packet", "phone", "evening"), Arm("red_packet", "push", "evening")
    p0, P = s_scorer.arm_probabilities(M, [phone, push])
    old, young = (X.age > 45).to_numpy(), (X.age < 30).to_numpy()
    assert (P[old, 0] - p0[old]).mean() > (P[young, 0] - p0[young]).mean() + 0.02
    assert (P[young, 1] - p0[young]).mean() > (P[old, 1] - p0[old]).mean() + 0.02


def test_narrowed_answers_choose_by_uplift_or_net_value(s_scorer, log):
    X = s_scorer.spec.to_matrix(log[0].head(300))
    arms = ("red_packet/phone/evening", "none/push/morning")
    by_uplift = s_scorer.narrowed(arms).extras(X)
    assert by_uplift["uplift"].shape == (300, 2)
    best = by_uplift["uplift"].argmax(axis=1)
    positive = by_uplift["uplift"].max(axis=1) > 0
    np.testing.assert_array_equal(by_uplift["best_arm"], np.where(positive, best, -1))
    np.testing.assert_allclose(by_uplift["score"], by_uplift["uplift"][np.arange(300), best])

    net = s_scorer.narrowed(arms, value=100.0, contact_cost={"phone": 3.0}).extras(X)
    P, u = net["p_convert"], net["uplift"]
    expected = np.stack([u[:, 0] * 100 - 3.0 - P[:, 0] * 8.0, u[:, 1] * 100 - 0.005 - P[:, 1] * 0.0], axis=1)
    np.testing.assert_allclose(net["net_value"], expected)
    with pytest.raises(KeyError, match="not trained on"):
        s_scorer.narrowed(["coupon/fax/morning"])


@pytest.mark.parametrize("learner", ["t_learner", "dr_learner"])
def test_per_arm_learners_score_every_arm_and_reload(log, learner, tmp_path):
    X, y, labels = log
    arms = GRID[:3]
    rows = np.isin(labels, (*arms, CONTROL))
    spec = FeatureSpec.fit(X)
    M = spec.to_matrix(X[rows])
    fitted = uplift.fit_arms(M, y[rows], labels[rows], arms, spec)
    scorer = uplift.build_scorer(learner, fitted, X[rows])
    p0, P = scorer.probabilities(M[:200], arms)
    assert P.shape == (200, 3) and ((P >= 0) & (P <= 1)).all()
    paths = scorer.save(tmp_path)
    paths[CHECKSUMS] = write_checksums(paths, tmp_path)
    artifacts = {k: str(v) for k, v in paths.items()}
    again = UpliftScorer.load(artifacts)
    np.testing.assert_allclose(again.probabilities(M[:200], arms)[1], P)
    assert again.arms == arms
