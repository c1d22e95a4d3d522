"""The model metrics are right: AUC, KS, lift and precision at capacity for binary scores, Qini and
AUUC for uplift, PSI for drift. Every expected value is worked out by hand on a few rows (the
arithmetic is in the comments), so a wrong formula, sort direction or normalisation shows up here
rather than as a quietly wrong number in MLflow or a wrong champion."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    PSI_FLOOR,
    at_capacity,
    auuc,
    binary_metrics,
    bootstrap_interval,
    deciles,
    expected_auc,
    ks,
    psi,
    qini_coefficient,
    qini_curve,
    true_uplift_captured,
)

TIGHT = 1e-9

# Six rows whose labels, read from the highest score down, are 1 1 0 1 0 0; stored shuffled so
# the functions have to sort by score themselves.
SHUFFLE = [3, 0, 5, 1, 4, 2]
Y6 = np.array([1, 1, 0, 1, 0, 0])[SHUFFLE]
S6 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])[SHUFFLE]


# --- AUC, KS, binary_metrics ------------------------------------------------------------------

def test_binary_metrics_by_hand_with_prefix():
    m = binary_metrics(Y6, S6, prefix="oot_")
    assert set(m) == {"oot_auc", "oot_pr_auc", "oot_ks", "oot_lift_top_decile", "oot_positive_rate", "oot_rows"}
    # P = N = 3, 9 pairs. The positives at ranks 1 and 2 beat all 3 negatives, the one at rank 4
    # beats the 2 below it: 3 + 3 + 2 = 8 → AUC = 8/9.
    assert m["oot_auc"] == pytest.approx(8 / 9, abs=TIGHT)
    # Average precision: precision at each positive's rank, 1/1, 2/2, 3/4 → (1 + 1 + 0.75) / 3.
    assert m["oot_pr_auc"] == pytest.approx(2.75 / 3, abs=TIGHT)
    # TPR − FPR going down the ranks: 1/3, 2/3, 1/3, 2/3, 1/3, 0 → KS = 2/3.
    assert m["oot_ks"] == pytest.approx(2 / 3, abs=TIGHT)
    # 6 rows: decile = rank·10//6 + 1, so only the top row is in decile 1; its rate 1 over the base
    # rate 3/6 → lift 2.
    assert m["oot_lift_top_decile"] == pytest.approx(2.0, abs=TIGHT)
    assert m["oot_positive_rate"] == pytest.approx(0.5, abs=TIGHT)
    assert m["oot_rows"] == 6.0


def test_binary_metrics_without_prefix_accepts_bool_labels():
    m = binary_metrics(Y6.astype(bool), S6)
    assert m["auc"] == pytest.approx(8 / 9, abs=TIGHT)
    assert m["positive_rate"] == pytest.approx(0.5, abs=TIGHT)


def test_auc_counts_a_tied_pair_as_half():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.8, 0.8, 0.4, 0.2])
    # Pairs (pos, neg): (.8,.8) tie = ½, (.8,.2) = 1, (.4,.8) = 0, (.4,.2) = 1 → 2.5 / 4.
    assert binary_metrics(y, s)["auc"] == pytest.approx(0.625, abs=TIGHT)
    # Thresholds ≥.8: TPR ½, FPR ½ → 0; ≥.4: TPR 1, FPR ½ → ½; ≥.2: 1 − 1 = 0 → KS = ½.
    assert ks(y, s) == pytest.approx(0.5, abs=TIGHT)


def test_ks_is_the_largest_tpr_minus_fpr_gap():
    # Labels from the highest score down: 1 0 1 1 0 0 1 0 (P = N = 4).
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    s = np.arange(8, 0, -1) / 10
    # TPR − FPR after each row: .25, 0, .25, .5, .25, 0, .25, 0 → KS = .5 (after row 4).
    assert ks(y, s) == pytest.approx(0.5, abs=TIGHT)
    # AUC: the positives beat 4, 3, 3 and 1 negatives → 11/16.
    assert binary_metrics(y, s)["auc"] == pytest.approx(11 / 16, abs=TIGHT)


def test_perfect_ranking_scores_one_and_reversed_scores_zero():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.7, 0.5, 0.3, 0.1])
    perfect, reversed_ = binary_metrics(y, s), binary_metrics(y, -s)
    assert perfect["auc"] == 1.0 and perfect["ks"] == 1.0
    # Reversed: every pair wrong; the best threshold is "flag nobody" (TPR = FPR = 0).
    assert reversed_["auc"] == 0.0 and reversed_["ks"] == 0.0


# --- at_capacity ------------------------------------------------------------------------------

# Ten rows already in score order; positives at ranks 1, 3 and 6 (P = 3).
Y10 = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
S10 = np.arange(10, 0, -1).astype(float)


def test_at_capacity_precision_and_recall_of_the_top_share():
    # k = 10 · 0.3 = 3: ranks 1–3 hold 2 positives → precision 2/3, recall 2/3.
    assert at_capacity(Y10, S10, 0.3) == pytest.approx((2 / 3, 2 / 3), abs=TIGHT)
    # k = 6: 3 positives → precision 3/6, recall 3/3.
    assert at_capacity(Y10, S10, 0.6) == pytest.approx((0.5, 1.0), abs=TIGHT)


def test_at_capacity_rounds_the_number_reviewed():
    # 10 · 0.24 = 2.4 → 2 reviewed: 1 hit → (1/2, 1/3).
    assert at_capacity(Y10, S10, 0.24) == pytest.approx((0.5, 1 / 3), abs=TIGHT)
    # 10 · 0.26 = 2.6 → 3 reviewed: 2 hits → (2/3, 2/3).
    assert at_capacity(Y10, S10, 0.26) == pytest.approx((2 / 3, 2 / 3), abs=TIGHT)
    # 10 · 0.01 = 0.1 → rounds to 0, but at least one is reviewed: 1 hit → (1, 1/3).
    assert at_capacity(Y10, S10, 0.01) == pytest.approx((1.0, 1 / 3), abs=TIGHT)


def test_at_capacity_sorts_by_score_and_survives_no_positives():
    order = np.array([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])
    assert at_capacity(Y10[order], S10[order], 0.3) == pytest.approx((2 / 3, 2 / 3), abs=TIGHT)
    # No positives: recall is 0 / max(0, 1) = 0, not a division by zero.
    assert at_capacity(np.zeros(10), S10, 0.3) == (0.0, 0.0)


# --- deciles ----------------------------------------------------------------------------------

def test_deciles_rate_lift_and_cumulative_gain():
    # 20 rows, 2 per decile, scores 20/20 … 1/20 from the top; 5 positives, base rate 5/20 = .25.
    y = np.array([1, 1, 1, 0, 0, 1] + [0] * 12 + [0, 1])
    s = np.arange(20, 0, -1) / 20
    perm = np.random.default_rng(0).permutation(20)
    t = deciles(y[perm], s[perm])
    assert list(t.index) == list(range(1, 11))
    assert list(t["n"]) == [2] * 10
    assert list(t["positives"]) == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    # rate / .25: 1 → 4, ½ → 2.
    assert list(t["lift"]) == pytest.approx([4, 2, 2, 0, 0, 0, 0, 0, 0, 2], abs=TIGHT)
    # Cumulative positives 2, 3, 4, 4, …, 4, 5 over 5.
    assert list(t["cum_gain"]) == pytest.approx([0.4, 0.6, 0.8] + [0.8] * 6 + [1.0], abs=TIGHT)
    # Decile 1 = the two highest scores, (20 + 19) / 2 / 20.
    assert t.loc[1, "mean_score"] == pytest.approx(0.975, abs=TIGHT)


def test_deciles_with_fewer_rows_than_ten_skip_empty_deciles():
    # 4 rows: decile = rank·10//4 + 1 → 1, 3, 6, 8.
    t = deciles(np.array([1, 0, 0, 1]), np.array([0.9, 0.6, 0.3, 0.1]))
    assert list(t.index) == [1, 3, 6, 8]
    # Base rate ½: decile 1 (a positive) has lift 2.
    assert t.loc[1, "lift"] == pytest.approx(2.0, abs=TIGHT)


# --- Qini and AUUC ----------------------------------------------------------------------------

# Four users in uplift order: a treated responder, a control non-responder, a treated
# non-responder, a control responder (N_treated = 2).
Y4 = np.array([1, 0, 0, 1])
T4 = np.array([1, 0, 1, 0])
U4 = np.array([4.0, 3.0, 2.0, 1.0])


def test_qini_curve_by_hand():
    share, gain = qini_curve(Y4, T4, U4)
    # Fewer than 101 rows: every prefix is a point. gain = conv_t − conv_c · n_t / n_c (0 when n_c = 0):
    # k=1: 1 − 0 = 1; k=2: 1 − 0·1/1 = 1; k=3: 1 − 0·2/1 = 1; k=4: 1 − 1·2/2 = 0.
    assert share == pytest.approx([0, 0.25, 0.5, 0.75, 1.0], abs=TIGHT)
    assert gain == pytest.approx([0, 1, 1, 1, 0], abs=TIGHT)


def test_qini_curve_uses_evenly_spaced_prefixes_when_asked_for_few_points():
    # Five users in uplift order: (t, y) = (1,1) (0,0) (1,1) (0,1) (1,0).
    y, t, u = np.array([1, 0, 1, 1, 0]), np.array([1, 0, 1, 0, 1]), np.array([5.0, 4, 3, 2, 1])
    # points=2 → prefixes at rows linspace(0, 4, 3) = 0, 2, 4, i.e. the top 1, 3 and 5 users.
    # k=1: 1 (no control yet); k=3: 2 − 0·2/1 = 2; k=5: 2 − 1·3/2 = 0.5.
    share, gain = qini_curve(y, t, u, points=2)
    assert share == pytest.approx([0, 0.2, 0.6, 1.0], abs=TIGHT)
    assert gain == pytest.approx([0, 1, 2, 0.5], abs=TIGHT)


def test_qini_coefficient_is_area_above_the_diagonal_per_treated_user():
    # Curve 0,1,1,1,0 at steps of ¼: trapezoids ¼·(½ + 1 + 1 + ½) = 0.75; diagonal to 0 has area 0;
    # over 2 treated → 0.375.
    assert qini_coefficient(Y4, T4, U4) == pytest.approx(0.375, abs=TIGHT)


def test_qini_coefficient_subtracts_the_random_targeting_diagonal():
    # Uplift order (t, y): (1,1) (1,1) (0,0) (0,1). Gains: 1, 2, 2 − 0 = 2, 2 − 1·2/2 = 1.
    y, t, u = np.array([1, 1, 0, 1]), np.array([1, 1, 0, 0]), np.array([4.0, 3, 2, 1])
    # Area ¼·(½ + 1½ + 2 + 1½) = 1.375; diagonal to (1, 1) = ½ → 0.875; over 2 treated → 0.4375.
    assert qini_coefficient(y, t, u) == pytest.approx(0.4375, abs=TIGHT)


def test_qini_rewards_putting_treatment_responders_first():
    # Reversed order (t, y): (0,1) (1,0) (0,0) (1,1). Gains: 0 − 1·0/1 = 0, 0 − 1·1/1 = −1,
    # 0 − 1·1/2 = −½, 1 − 1·2/2 = 0. Area ¼·(0 − ½ − ¾ − ¼) = −0.375; over 2 treated → −0.1875.
    reversed_ = qini_coefficient(Y4, T4, -U4)
    assert reversed_ == pytest.approx(-0.1875, abs=TIGHT)
    assert qini_coefficient(Y4, T4, U4) > reversed_


def test_auuc_by_hand():
    # Uplift order (t, y): (1,1) (0,0) (1,0) (0,1).
    # treated rate 1, 1, ½, ½; control rate 0 (none yet), 0, 0, ½ → difference 1, 1, ½, 0;
    # times the share ¼, ½, ¾, 1 → ¼, ½, ⅜, 0. Trapezoids from (0, 0):
    # ¼·(⅛ + ⅜ + 7/16 + 3/16) = ¼·(9/8) = 0.28125.
    assert auuc(Y4, T4, U4) == pytest.approx(0.28125, abs=TIGHT)
    # Reversed: treated rate 0 (none yet), 0, 0, ½; control 1, 1, ½, ½ → the same curve negated.
    assert auuc(Y4, T4, -U4) == pytest.approx(-0.28125, abs=TIGHT)


# --- PSI --------------------------------------------------------------------------------------

E4 = np.array([0.0, 0.0, 1.0, 1.0])  # bins=2: one edge at the median 0.5; buckets <.5, ≥.5, missing


def test_psi_by_hand_on_two_buckets():
    # expected shares ½, ½ (missing 0 → floor on both sides, contributes 0); actual ¼, ¾.
    # (¼ − ½)·ln(¼/½) + (¾ − ½)·ln(¾/½) = ¼·ln 2 + ¼·ln 1.5 = ¼·ln 3.
    assert psi(E4, np.array([0.0, 1.0, 1.0, 1.0]), bins=2) == pytest.approx(0.27465307216702745, rel=1e-9)


def test_psi_is_zero_on_identical_data_in_any_order():
    x = np.array([3.1, 0.2, 5.5, 1.7, 2.2, 4.8, 0.9, 3.3, np.nan, 2.6])
    assert psi(x, x, bins=4) == 0.0
    assert psi(x, x[::-1].copy(), bins=4) == 0.0


def test_psi_counts_missing_values_as_drift():
    # One actual value goes missing: actual shares ½, ¼, missing ¼; expected ½, ½, missing 0 → 1e-4.
    # 0 + (¼ − ½)·ln(¼/½) + (¼ − 1e-4)·ln(¼/1e-4) = ¼·ln 2 + 0.2499·ln 2500.
    actual = np.array([0.0, 0.0, 1.0, np.nan])
    assert psi(E4, actual, bins=2) == pytest.approx(2.1285158932529735, rel=1e-9)


def test_psi_floors_an_empty_bucket():
    assert PSI_FLOOR == 1e-4
    # All actual values in the low bucket: actual 1, 0 → 1e-4; expected ½, ½.
    # (1 − ½)·ln(1/½) + (1e-4 − ½)·ln(1e-4/½) = ½·ln 2 + 0.4999·ln 5000 (finite thanks to the floor).
    assert psi(E4, np.zeros(4), bins=2) == pytest.approx(4.60431846666895, rel=1e-9)


# --- bootstrap_interval -----------------------------------------------------------------------

def _qini_interval(n: int) -> tuple[float, float, float]:
    """Qini of a ranking by x on a randomised log whose effect grows with x, and its 90% interval."""
    rng = np.random.default_rng(1)
    x, t = rng.random(n), rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.2 * x * t).astype(int)
    low, high = bootstrap_interval(lambda i: qini_coefficient(y[i], t[i], x[i]), n)
    return qini_coefficient(y, t, x), low, high


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_rows():
    small, large = _qini_interval(2_000), _qini_interval(20_000)
    for q, low, high in (small, large):
        assert low < q < high
    # The width of a percentile interval shrinks like 1/sqrt(n): ten times the rows, about a third.
    assert (large[2] - large[1]) < 0.5 * (small[2] - small[1])


def test_bootstrap_interval_of_a_mean_by_hand():
    # Rows 0..99 of a constant: every resample's mean is that constant.
    assert bootstrap_interval(lambda i: float(np.full(100, 3.0)[i].mean()), 100) == (3.0, 3.0)
    values = np.arange(1000, dtype=float)
    low, high = bootstrap_interval(lambda i: float(values[i].mean()), 1000, resamples=400, level=0.9)
    # The mean's standard error is 288.7 / sqrt(1000) = 9.13; a 90% interval is about ±1.645 of it.
    assert low == pytest.approx(499.5 - 15.0, abs=3.0) and high == pytest.approx(499.5 + 15.0, abs=3.0)


# --- true_uplift_captured, expected_auc -------------------------------------------------------

def test_true_uplift_captured_is_the_oracle_mean_of_the_top_share():
    oracle = np.array([0.1, 0.5, 0.2, 0.4, 0.0, 0.3, 0.05, 0.15, 0.25, 0.35])
    ranking = np.array([0, 9, 7, 8, 1, 2, 3, 4, 5, 6], dtype=float)
    # Top 3 of 10 by ranking: rows 1, 3, 2 → (0.5 + 0.4 + 0.2) / 3.
    assert true_uplift_captured(oracle, ranking) == pytest.approx(1.1 / 3, abs=TIGHT)
    # share 0.2 → top 2: rows 1, 3 → 0.45; a tiny share still takes one row: 0.5.
    assert true_uplift_captured(oracle, ranking, share=0.2) == pytest.approx(0.45, abs=TIGHT)
    assert true_uplift_captured(oracle, ranking, share=0.01) == pytest.approx(0.5, abs=TIGHT)


def test_expected_auc_with_certain_outcomes_is_the_plain_auc():
    # p_true ∈ {0, 1} are the labels of test_binary_metrics_by_hand_with_prefix → 8/9.
    assert expected_auc(Y6.astype(float), S6) == pytest.approx(8 / 9, abs=TIGHT)
    assert expected_auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.9, 0.1, 0.8, 0.2])) == pytest.approx(
        0.5, abs=TIGHT  # pairs: (.9,.8) 1, (.9,.2) 1, (.1,.8) 0, (.1,.2) 0 → 2/4
    )


def test_expected_auc_prefers_the_ranking_by_true_probability():
    # p = 1, ½, 0: ranking by p orders every positive-weighted pair right, its reverse every one wrong.
    p, s = np.array([1.0, 0.5, 0.0]), np.array([3.0, 2.0, 1.0])
    assert expected_auc(p, s) > 0.9
    assert expected_auc(p, -s) < 0.1


def test_expected_auc_excludes_a_user_paired_with_itself():
    # p = 1, ½, 0 ranked by p: every draw orders its pairs right, so 1 (with self-pairs, 17/18).
    p, s = np.array([1.0, 0.5, 0.0]), np.array([3.0, 2.0, 1.0])
    assert expected_auc(p, s) == pytest.approx(1.0, abs=TIGHT)
    # p = ½, ½ scored 2, 1: positive 0 over negative 1 is right, 1 over 0 wrong: weight ¼ each → ½.
    assert expected_auc(np.array([0.5, 0.5]), np.array([2.0, 1.0])) == pytest.approx(0.5, abs=TIGHT)
