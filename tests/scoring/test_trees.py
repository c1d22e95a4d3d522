"""Serving attributions (decision paths) against LightGBM's TreeSHAP on the same users."""

from __future__ import annotations

import numpy as np
import pytest


def test_path_attributions_add_up_and_track_treeshap(trained):
    ds, result = trained["churn"]
    s = result.scorer
    X = s.spec.to_matrix(ds.X_test.head(2000))
    fast, shap = s.score_and_reasons(X)[1], s.contributions(X)
    roots = s.booster.predict(X, raw_score=True) - fast.sum(axis=1)
    assert np.allclose(roots, roots[0], atol=1e-6), "every row differs from its attribution sum by the same root total"
    shap_top3 = np.argsort(-shap, axis=1)[:, :3]
    in_top3 = np.mean([f in row for f, row in zip(fast.argmax(axis=1), shap_top3)])
    corr = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(fast, shap)])
    print(f"serving top reason within TreeSHAP's top 3: {in_top3:.1%}; mean per-user correlation {corr:.3f}")
    assert in_top3 > 0.75  # 0.80 on the session world when last measured
    assert corr > 0.85


def test_small_batches_score_exactly_as_large_ones(trained):
    """A handful of rows takes other routes (LightGBM's fast single-row leaves, a sort for the top
    reasons); a user must get the same answer alone as inside a batch of 20 (`Booster.predict`,
    argmax passes, the dense gather) or of 300 (the sparse product)."""
    from scoring.scorer import top_reasons

    for name in ("churn", "abuse"):
        ds, result = trained[name]
        s = result.scorer
        X = s.spec.to_matrix(ds.X_test.head(300))
        X[::7, ::3] = np.nan  # missing values follow the learned branch on both routes
        assert np.array_equal(s.paths.single_rows(X), s.booster.predict(X, pred_leaf=True).astype(np.int64))
        all_score, all_contrib = s.score_and_reasons(X)
        for start in range(0, len(X), 20):
            batch = X[start:start + 20]
            big_score, big_contrib = s.score_and_reasons(batch)
            assert np.array_equal(big_score, all_score[start:start + 20])
            assert np.array_equal(big_contrib, all_contrib[start:start + 20])
            big_idx, big_vals = top_reasons(big_contrib)
            for i in range(0, len(batch), 3):
                for rows in (batch[i:i + 1], batch[i:i + 3]):
                    score, contrib = s.score_and_reasons(rows)
                    idx, vals = top_reasons(contrib)
                    part = slice(i, i + len(rows))
                    assert np.array_equal(score, big_score[part]) and np.array_equal(contrib, big_contrib[part])
                    assert np.array_equal(idx, big_idx[part]) and np.array_equal(vals, big_vals[part])
                one_score, one_contrib = s.score_one(batch[i])  # a 1-D row: the single-user request
                assert one_score == big_score[i] and np.array_equal(one_contrib, big_contrib[i])
        for wrong in (X[0, :-1], X[0, :1]):  # too short; one value, which numpy would broadcast
            with pytest.raises(ValueError):
                s.score_one(wrong)


def test_a_large_batch_on_threads_scores_as_on_one(trained):
    from scoring.thresholds import PARALLEL_ROWS
    from scoring.trees import _pool

    s = trained["churn"][1].scorer
    X = s.spec.to_matrix(trained["churn"][0].X_test.head(300))
    X = np.tile(X, (PARALLEL_ROWS // len(X) + 1, 1))  # past the size where threads are used
    one, calls = s.score_and_reasons(X, threads=1), _pool.cache_info()
    two = s.score_and_reasons(X, threads=2)
    assert _pool.cache_info().hits + _pool.cache_info().misses > calls.hits + calls.misses  # the pool was used
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert np.array_equal(two[1][-1], s.score_one(X[-1])[1])


def test_raw_scores_are_lightgbms_bit_for_bit(trained):
    """Leaf values are added in tree order, as LightGBM's predict adds them, on every route."""
    from scoring.thresholds import PARALLEL_ROWS

    paths = trained["abuse"][1].scorer.paths
    X = trained["abuse"][1].scorer.spec.to_matrix(trained["abuse"][0].X_test.head(300))
    X[::7, ::3] = np.nan
    big = np.tile(X, (PARALLEL_ROWS // len(X) + 1, 1))
    for rows, threads in ((X[:1], 1), (X[:20], 1), (X, 1), (big, 2)):
        raw, _ = paths.raw_and_contributions(rows, threads)
        assert np.array_equal(raw, paths.booster.predict(rows, raw_score=True))
    assert paths.raw_and_contributions_one(X[5])[0] == paths.booster.predict(X[5:6], raw_score=True)[0]
