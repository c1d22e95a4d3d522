"""Single-row twins of the vector functions, on small synthetic models: each must give the batch's
answer bit for bit (the service takes the single-row route for one user, the batch route otherwise)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import orjson
import pandas as pd
import pytest

from scoring.answer import Layout, rows
from scoring.answer_json import score_json
from scoring.binary import BinaryScorer
from scoring.scorer import decile_edges, top_reasons, top_reasons_one
from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec
from scoring.uplift import UpliftScorer

PARAMS = {"objective": "binary", "num_leaves": 7, "learning_rate": 0.3, "verbose": -1, "num_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, np.ndarray, FeatureSpec]:
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"tenure_days": rng.integers(0, 400, n).astype(float),
                       "days_since_last_active": rng.integers(0, 400, n).astype(float),
                       "fund_amt_all": rng.exponential(500, n) * (rng.random(n) < 0.7),
                       "ring_size": rng.integers(1, 9, n).astype(float),
                       "acquisition_channel": rng.choice(["ads", "invite", "organic"], n)})
    logit = 0.01 * df.days_since_last_active - 2 + (df.acquisition_channel == "ads") - 0.001 * df.fund_amt_all
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df, y, FeatureSpec.fit(df)


def booster(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, rounds: int = 30) -> lgb.Booster:
    data = lgb.Dataset(X, y, feature_name=spec.names, categorical_feature=spec.categorical_index)
    return lgb.train(PARAMS, data, rounds)


@pytest.fixture(scope="module")
def scorers(world) -> dict[str, object]:
    df, y, spec = world
    X = spec.to_matrix(df)
    grid = SegmentGrid.fit(df)
    binary = BinaryScorer(booster(X, y, spec), spec, [], grid)
    binary.band_edges = decile_edges(binary.predict(X))
    treated = np.random.default_rng(1).random(len(y)) < 0.5
    control_model, treated_model = booster(X[~treated], y[~treated], spec), booster(X[treated], y[treated], spec)
    uplift = UpliftScorer("t_learner", {"control": control_model, "treated": treated_model}, ("treated",),
                          {"treated": {"treated": 1.0, "control": -1.0}}, spec, [], grid)
    uplift.band_edges = decile_edges(uplift.predict(X))
    return {"binary": binary, "uplift": uplift}


def matrix(world, rows_: int = 60) -> np.ndarray:
    df, _, spec = world
    X = spec.to_matrix(df.head(rows_))
    X[::4, ::2] = np.nan  # unknown values (a categorical and segment inputs among them)
    return X


@pytest.mark.parametrize("kind", ["binary", "uplift"])
def test_score_one_is_the_batch_bit_for_bit(scorers, world, kind):
    s = scorers[kind]
    X = matrix(world)
    score, contrib = s.score_and_reasons(X)
    for i in range(len(X)):
        one_score, one_contrib = s.score_one(X[i])
        assert one_score == score[i] and np.array_equal(one_contrib, contrib[i])


@pytest.mark.parametrize("kind", ["binary", "uplift"])
def test_one_user_renders_as_in_a_batch(scorers, world, kind):
    layout = Layout.of(scorers[kind], {"name": kind, "version": "1", "run_id": "r"}, ring_size=True)
    X = matrix(world)
    ids = list(range(100, 100 + len(X)))
    batch = rows(layout, X, 3, user_ids=ids)
    alone = [rows(layout, X[i:i + 1], 3, user_ids=[ids[i]])[0] for i in range(len(X))]
    assert orjson.dumps(alone) == orjson.dumps(batch)  # key order and the sign of zero count
    arms = ["best_arm", "arms"] if kind == "uplift" else []
    assert list(batch[0]) == ["user_id", "score", "band", "segment", *scorers[kind].columns, *arms, "model",
                              "reasons", "ring_size"]


def test_top_reasons_one_breaks_ties_as_the_batch():
    contrib = np.array([[0.5, 2.0, 2.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0], [3.0, -3.0, 1.0, 3.0, 1.0]])
    for k in (1, 3, 5):
        idx, _ = top_reasons(contrib, k)
        assert [top_reasons_one(row.tolist(), k) for row in contrib] == idx.tolist()
    many = np.tile(contrib, (10, 1))  # past the sort's row limit: the argmax passes
    assert top_reasons(many, 3)[0].tolist() == [top_reasons_one(row.tolist(), 3) for row in many]


def test_json_text_of_text_ids_with_commas_is_the_dicts(scorers, world):
    layout = Layout.of(scorers["binary"], {"name": "binary", "version": "1", "run_id": "r"})
    X = matrix(world, 50)
    for ids in ([f"u-{i}" for i in range(50)], [f"u,{i}" if i % 7 else None for i in range(50)]):
        expected = b",".join(map(orjson.dumps, rows(layout, X, 3, user_ids=ids)))
        assert score_json(layout, X, 3, user_ids=ids) == expected
