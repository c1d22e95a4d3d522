"""The service's in-memory scoring: one user through the single-user path answers exactly as a batch."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from service.runtime import ServedModel, score_matrix


@pytest.mark.parametrize("name", ["churn", "abuse"])
def test_single_user_path_matches_the_batch_path(trained, name):
    ds, result = trained[name]
    X = result.scorer.spec.to_matrix(ds.X_test.head(400))
    X[::5, ::4] = np.nan  # unknown values, segment inputs and categoricals among them
    model = ServedModel(name, name, "1", "run", "", {}, result.scorer, X)
    ids = ds.X_test.head(400).index.tolist()
    for start in range(0, len(X), 20):  # batches of 20: LightGBM's predict, the dense gather, argmax passes
        batch = score_matrix(model, X[start:start + 20], 3, user_ids=ids[start:start + 20])
        alone = [score_matrix(model, X[i:i + 1], 3, user_ids=[ids[i]])[0] for i in range(start, start + len(batch))]
        assert orjson.dumps(alone) == orjson.dumps(batch)  # as sent: key order and the sign of zero count
    for user_ids in (None, [None], [7]):  # without ids, a record without one, a record with one
        one, two = score_matrix(model, X[:1], 5, user_ids=user_ids), score_matrix(model, X[:2], 5, user_ids=user_ids and user_ids * 2)
        assert orjson.dumps(one[0]) == orjson.dumps(two[0])
    assert len(score_matrix(model, X[:1], 5)[0]["reasons"]) == 5


def test_plain_python_rounding_is_numpys():
    from service.runtime import _round6
    from training.models import round_to

    values = np.random.default_rng(0).normal(scale=3, size=1_000_000)
    values[:6] = [0.5e-6, 1.5e-6, 2.5e-6, -0.5e-6, -0.3e-6, -0.0]  # halves go to even; small negatives to -0.0
    assert orjson.dumps([_round6(v) for v in values.tolist()]) == orjson.dumps(round_to(values, 6).tolist())
    assert np.array_equal(round_to(values, 6), np.round(values, 6))

