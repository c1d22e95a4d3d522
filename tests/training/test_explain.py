"""Serving attributions (decision paths) against LightGBM's TreeSHAP on the same users."""

from __future__ import annotations

import numpy as np


def test_path_attributions_add_up_and_track_treeshap(trained):
    ds, result = trained["churn"]
    s = result.scorer
    X = s.spec.to_matrix(ds.X_test.head(2000))
    fast, shap = s.reason_contributions(X), s.contributions(X)
    roots = s.booster.predict(X, raw_score=True) - fast.sum(axis=1)
    assert np.allclose(roots, roots[0], atol=1e-6), "every row differs from its attribution sum by the same root total"
    shap_top3 = np.argsort(-shap, axis=1)[:, :3]
    in_top3 = np.mean([f in row for f, row in zip(fast.argmax(axis=1), shap_top3)])
    corr = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(fast, shap)])
    print(f"serving top reason within TreeSHAP's top 3: {in_top3:.1%}; mean per-user correlation {corr:.3f}")
    assert in_top3 > 0.8
    assert corr > 0.85
