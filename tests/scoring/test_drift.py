"""Drift figures against PSI computed by hand on tiny snapshots, and the reference's round trip."""

from __future__ import annotations

import json
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from scoring.binary import BinaryScorer
from scoring.drift import (EPS, Reference, band, build_reference, categorical_profile, compare, model_drift,
                           numeric_profile, profile_frame, report, sample)
from scoring.spec import FeatureSpec


def hand_psi(expected: list[float], actual: list[float]) -> float:
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual))


def test_numeric_psi_is_the_hand_computed_one():
    # Reference 1..10 and one missing: the median 5.5 cuts two bins of 5/11, and 1/11 missing.
    ref = numeric_profile(pd.Series([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None], dtype="Float64"), bins=2)
    assert ref.edges == [5.5]
    assert ref.shares == pytest.approx([5 / 11, 5 / 11, 1 / 11])
    d = compare(ref, pd.Series([1.0, 1.0, 1.0, 9.0, np.nan, np.nan]))
    assert d.psi == pytest.approx(hand_psi([5 / 11, 5 / 11, 1 / 11], [3 / 6, 1 / 6, 2 / 6]), abs=1e-6)
    assert (d.band, d.missing_share, d.reference_missing_share, d.unseen_share) == (
        "significant", pytest.approx(1 / 3, abs=1e-6), pytest.approx(1 / 11, abs=1e-6), None)


def test_categorical_psi_counts_missing_and_unseen_as_bins_of_their_own():
    ref = categorical_profile(pd.Series(["a", "a", "b", None]), ["a", "b"])
    assert ref.shares == [0.5, 0.25, 0.25, 0.0]  # a, b, missing, unseen
    d = compare(ref, pd.Series(["a", "z", "z", None]))
    # The reference's empty unseen bin counts as EPS; the serving side's empty "b" bin too.
    expected = hand_psi([0.5, 0.25, 0.25, EPS], [0.25, EPS, 0.25, 0.5])
    assert d.psi == pytest.approx(expected, abs=1e-6)
    assert d.unseen_share == 0.5 and d.missing_share == 0.25


def test_ties_and_constant_columns_collapse_into_fewer_bins():
    ties = numeric_profile(pd.Series([0.0] * 7 + [1.0, 2.0, 3.0]))
    assert ties.edges == sorted(set(ties.edges)) and len(ties.shares) == len(ties.edges) + 2
    assert sum(ties.shares) == pytest.approx(1.0)
    constant = numeric_profile(pd.Series([3.0] * 5))
    assert compare(constant, pd.Series([3.0, 3.0])).psi == 0.0
    # A constant column that moves leaves its bin: a large PSI, not a division by zero.
    moved = compare(constant, pd.Series([4.0, np.nan]))
    assert moved.band == "significant" and math.isfinite(moved.psi)


def test_the_same_population_is_stable_and_a_shift_is_not():
    rng = np.random.default_rng(0)
    ref = numeric_profile(pd.Series(rng.normal(0, 1, 20_000)))
    assert compare(ref, pd.Series(rng.normal(0, 1, 20_000))).band == "stable"
    assert compare(ref, pd.Series(rng.normal(0.4, 1, 20_000))).band == "moderate"  # PSI ~ shift²
    assert compare(ref, pd.Series(rng.normal(1.0, 1, 20_000))).band == "significant"


def test_bands_at_their_bounds():
    assert [band(x) for x in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable", "stable", "moderate", "moderate", "significant", "significant"]


def test_categories_are_detected_when_not_named():
    profiles = profile_frame(pd.DataFrame({"n": [1, 2, 3], "c": ["x", "y", None]}))
    assert profiles["n"].categories is None and profiles["c"].categories == ["x", "y"]


@pytest.fixture(scope="module")
def tiny_model() -> tuple[BinaryScorer, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"active_days_30": rng.integers(0, 30, n), "fund_amt_all": rng.exponential(500, n),
                       "acquisition_channel": rng.choice(["ads", "organic"], n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(df.fund_amt_all / 500 - 1)))).astype(int)
    spec = FeatureSpec.fit(df)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(spec.to_matrix(df), y, feature_name=spec.names,
                                    categorical_feature=spec.categorical_index), 20)
    return BinaryScorer(booster, spec, [], None), df


def test_a_reference_survives_json_and_measures_its_own_rows_as_stable(tiny_model):
    scorer, df = tiny_model
    population = {"feature": "active_days_30", "at_least": 1}
    ref = Reference.from_dict(json.loads(json.dumps(
        build_reference(scorer, df[df.active_days_30 >= 1], "tiny", population=population).to_dict())))
    d = model_drift(scorer, ref, df)  # the population rule keeps the rows the reference stands for
    assert d["rows_compared"] == int((df.active_days_30 >= 1).sum())
    assert d["score"]["psi"] == 0.0 and all(f["psi"] == 0.0 for f in d["features"])
    assert [f["feature"] for f in d["features"]] == scorer.spec.names


def test_a_shifted_feature_shows_in_its_psi_and_in_the_score(tiny_model):
    scorer, df = tiny_model
    ref = build_reference(scorer, df, "tiny")
    shifted = df.assign(fund_amt_all=df.fund_amt_all * 3, acquisition_channel="partner")
    out = report("2026-01-01", shifted, {"m": ({"name": "m"}, scorer, ref)}, None, max_rows=10_000)
    by_feature = {f["feature"]: f for f in out["models"]["m"]["features"]}
    assert by_feature["fund_amt_all"]["band"] == "significant"
    assert by_feature["active_days_30"]["band"] == "stable"
    assert by_feature["acquisition_channel"]["unseen_share"] == 1.0
    assert out["models"]["m"]["score"]["band"] == "significant" and out["consecutive"] is None


def test_a_sample_is_fixed_and_bounded():
    frame = pd.DataFrame({"x": np.arange(10_000)})
    assert len(sample(frame, 1000)) == 1000 and sample(frame, 1000).equals(sample(frame, 1000))
    assert sample(frame, 20_000) is frame
