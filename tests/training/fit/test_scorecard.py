"""Credit scorecard: points add up, bins are monotone, PSI behaves, the registered card scores as in
training, reason codes are the lost points, and the German credit check runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from scoring.artifacts import CHECKSUMS, ArtifactError, write_checksums
from scoring.registry import MODEL_NAMES
from scoring.scorecard import ScorecardScorer
from scoring.spec import FeatureSpec
from training.data.datasets import Dataset
from training.fit.scorecard import fit_scorecard, oot_metrics
from training.german import GERMAN_EXPERIMENT, train_german
from training.metrics import psi

REGISTERED_NAME = MODEL_NAMES["credit"]


def test_points_add_up_to_the_score_and_the_score_to_the_pd(credit_run):
    ds, result = credit_run
    s = result.scorer
    X = s.spec.to_matrix(ds.X_test)
    extras = s.extras(X)
    assert extras["points"].shape == (len(X), len(s.spec.names))
    np.testing.assert_allclose(extras["points"].sum(axis=1), extras["score_points"], atol=1e-9)
    off_card = [j for j, f in enumerate(s.spec.names) if f not in {c.name for c in s.characteristics}]
    assert off_card and np.all(extras["points"][:, off_card] == 0)
    # The PD is the logistic regression's own: intercept + Σ weight·WOE.
    logit = s.intercept + sum(c.coef * c.transform(X[:, c.column]) for c in s.characteristics)
    np.testing.assert_allclose(s.predict(X), 1 / (1 + np.exp(-logit)), rtol=1e-9)
    # PDO scaling: 600 points at 50:1, 20 points more doubles the odds.
    np.testing.assert_allclose(s.pd_from_points(np.array([600.0, 620.0])), [1 / 51, 1 / 101])


def test_numeric_bins_are_monotone_in_woe(credit_run):
    _, result = credit_run
    numeric = [c for c in result.scorer.characteristics if not c.categorical]
    assert any(len(c.woe) >= 3 for c in numeric)
    for c in numeric:
        step = np.diff(c.woe)
        assert np.all(step >= -1e-12) or np.all(step <= 1e-12), c.name
    assert all(c.coef < 0 for c in result.scorer.characteristics)


def test_compiled_points_agree_with_the_bins_at_edges_and_odd_values(credit_run):
    _, result = credit_run
    s = result.scorer
    for c in s.characteristics:
        # Codes outside the categories and values exactly on (or just under) an edge.
        values = [np.nan, -np.inf, np.inf, -1.0, 0.0, len(c.woe) - 1.0, float(len(c.woe))] if c.categorical else \
            [np.nan, -np.inf, np.inf, *c.edges, *np.nextafter(c.edges, -np.inf)]
        X = np.zeros((len(values), len(s.spec.names)))
        X[:, c.column] = values
        np.testing.assert_allclose(s.points(X)[:, c.column], s.attribute_points(c, c.transform(X[:, c.column])))


def test_psi_is_zero_on_itself_and_positive_under_shift():
    x = np.random.default_rng(0).normal(size=20_000)
    assert psi(x, x) < 1e-12
    assert psi(x, x[::2]) < 0.01
    assert psi(x, x + 0.5) > 0.1
    with_missing = x.copy()
    with_missing[:4000] = np.nan
    assert psi(x, with_missing) > 0.1
    discrete = np.random.default_rng(1).integers(0, 3, 5000).astype(float)
    assert psi(discrete, discrete) < 1e-12 and psi(discrete, np.clip(discrete + 1, 0, 2)) > 0.1


def test_oot_auc_beats_trivial_baselines(credit_run):
    _, result = credit_run
    m = result.metrics
    print(f"\ncredit OOT AUC {m['oot_auc']:.4f} KS {m['oot_ks']:.4f}, oracle AUC {m['oracle_auc']:.4f}, "
          f"gap {m['oracle_gap_auc']:.4f}; expected AUC under the true PD {m['oot_expected_auc']:.4f} "
          f"(oracle {m['oracle_expected_auc']:.4f}); LightGBM challenger {m['challenger_oot_auc']:.4f}; "
          f"PSI of the score {m['psi_score']:.4f}")
    # The session world has ~30 defaults per snapshot: the realised OOT AUC has a standard error
    # near 0.05 and swings around 0.5-0.65 between simulator seeds. Its expected value under the
    # true PD is the stable figure, so the constant-score baseline (0.5) is checked on that; the
    # card's quality proper is tested on the synthetic data below and on German credit.
    assert m["oot_expected_auc"] > 0.55
    assert m["oot_auc"] > 0.45
    assert 0 < m["oracle_gap_expected_auc"] < m["oracle_expected_auc"] - 0.5


def test_oot_metrics_by_hand():
    """Positives score 0.4 and 0.8, negatives 0.1 and 0.5: 3 of 4 pairs in order, AUC 0.75, Gini 0.5;
    the oracle orders all four (AUC 1), so the gap is 0.25."""
    test = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    ds = Dataset("t", test, np.array([0, 1, 0, 1]), test, np.array([0, 1, 0, 1]), split="", sources={},
                 oracle=np.array([0.1, 0.9, 0.2, 0.8]))
    m = oot_metrics(ds, np.array([0.1, 0.4, 0.5, 0.8]))
    assert m["oot_auc"] == pytest.approx(0.75) and m["oot_gini"] == pytest.approx(0.5)
    assert m["oracle_auc"] == pytest.approx(1.0) and m["oracle_gap_auc"] == pytest.approx(0.25)
    assert m["oot_ks"] == pytest.approx(0.5)  # top 2 by score: one positive of two, no negative (0.5 - 0)


def test_card_recovers_a_known_signal_and_drops_noise():
    rng = np.random.default_rng(0)
    n = 20_000
    df = pd.DataFrame({"x": rng.normal(size=n), "u": rng.uniform(size=n), "noise": rng.normal(size=n),
                       "channel": rng.choice(["app", "web", "branch"], n)})
    df.loc[rng.random(n) < 0.1, "x"] = np.nan
    logit = -2.5 + 0.8 * df["x"].fillna(1.0) + 1.0 * (df["u"] > 0.5) + df["channel"].map({"app": 0.0, "web": 0.5, "branch": -0.5})
    p_true = 1 / (1 + np.exp(-logit.to_numpy()))
    y = (rng.random(n) < p_true).astype(int)
    spec = FeatureSpec.fit(df)
    X = spec.to_matrix(df)
    tr, te = np.arange(n) < n // 2, np.arange(n) >= n // 2
    scorer, report = fit_scorecard(X[tr], y[tr], spec)
    assert roc_auc_score(y[te], scorer.predict(X[te])) > roc_auc_score(y[te], p_true[te]) - 0.02
    assert report.loc["noise", "iv"] < 0.02 and "noise" in scorer.rejected
    x = next(c for c in scorer.characteristics if c.name == "x")
    assert np.all(np.diff(x.woe) < 0) and x.missing_woe < x.woe[len(x.woe) // 2]  # missing behaves like x = 1


def test_runs_log_card_stability_and_challenger(credit_run):
    _, result = credit_run
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert {"oot_auc", "oot_ks", "oot_gini", "psi_score", "oracle_auc", "oracle_gap_auc"} <= set(run.data.metrics)
    assert run.data.tags["git_commit"] and run.data.tags["model_family"] == "scorecard"
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "plots")}
    assert {"roc.png", "ks.png", "calibration.png", "woe_bins.png"} <= plots
    dropped = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/scorecard/dropped_features.json")
    assert dropped == result.scorer.rejected and any("iv below" in why for why in dropped.values())
    tables = {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "tables")}
    assert {"scorecard.csv", "characteristics.csv", "deciles.csv"} <= tables

    challenger = client.get_run(run.data.tags["challenger_run_id"])
    assert challenger.info.experiment_id == run.info.experiment_id
    assert challenger.data.tags["role"] == "challenger"
    assert {"oot_auc", "oot_ks", "oracle_gap_auc"} <= set(challenger.data.metrics)
    versions = client.search_model_versions(f"name='{REGISTERED_NAME}'")
    assert challenger.info.run_id not in {v.run_id for v in versions}


def test_champion_reloads_and_scores_as_in_training(credit_run):
    ds, result = credit_run
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@champion")
    assert model.metadata.run_id == result.run_id
    out = model.predict(result.scorer.spec.frame(ds.X_test))
    assert np.max(np.abs(out["score"].to_numpy() - result.test_scores)) <= 1e-6
    X = result.scorer.spec.to_matrix(ds.X_test)
    np.testing.assert_allclose(out["score_points"], result.scorer.score_points(X), atol=1e-6)
    points = out[[f"points_{f}" for f in result.scorer.spec.names]].to_numpy()
    np.testing.assert_allclose(points.sum(axis=1), out["score_points"], atol=1e-6)
    assert out["band"].between(1, 10).all()


def test_reason_codes_are_the_features_with_the_most_lost_points(credit_run):
    ds, result = credit_run
    s = result.scorer
    X = s.spec.to_matrix(ds.X_test)
    lost = s.contributions(X)
    assert lost.min() >= -1e-9
    np.testing.assert_allclose(lost, s.best_points() - s.extras(X)["points"], atol=1e-9)
    out = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@champion").predict(s.spec.frame(ds.X_test))
    np.testing.assert_allclose(out["reason_1_contribution"], lost.max(axis=1), atol=1e-6)
    col = np.array([s.spec.names.index(f) for f in out["reason_1_feature"]])
    np.testing.assert_allclose(lost[np.arange(len(X)), col], lost.max(axis=1), atol=1e-6)
    assert (out["reason_1_contribution"] >= out["reason_2_contribution"]).all()
    # Moving a user's top reason to its best bin gives back exactly the points it cost.
    row = int(np.argmax(lost.max(axis=1)))
    c = next(c for c in s.characteristics if c.column == col[row])
    best = s.attribute_points(c, np.asarray([*c.woe, c.missing_woe]))
    fixed = X[row:row + 1].copy()
    fixed[0, c.column] = np.nan if np.argmax(best) == len(c.woe) else _value_in_level(c, int(np.argmax(best)))
    assert s.score_points(fixed)[0] == pytest.approx(s.score_points(X[row:row + 1])[0] + lost[row, c.column])


def _value_in_level(c, level: int) -> float:
    """A matrix value that falls in the given level of a characteristic."""
    if c.categorical:
        return float(level)
    return c.edges[level - 1] if level > 0 else c.edges[0] - 1.0


def test_unseen_category_and_missing_values_score_as_the_missing_bin(credit_run):
    ds, result = credit_run
    s = result.scorer
    row = ds.X_test.head(1).copy()
    row["acquisition_channel"] = "carrier_pigeon"
    row[s.spec.numeric] = np.nan
    X = s.spec.to_matrix(s.spec.frame(row))
    points = s.extras(X)["points"][0]
    for c in s.characteristics:
        assert points[c.column] == pytest.approx(s.attribute_points(c, np.array([c.missing_woe]))[0])
    assert np.isfinite(s.predict(X)).all()


def test_tampered_card_is_refused(credit_run, tmp_path):
    _, result = credit_run
    paths = result.scorer.save(tmp_path)
    paths[CHECKSUMS] = write_checksums(paths, tmp_path)
    artifacts = {k: str(v) for k, v in paths.items()}
    assert ScorecardScorer.load(artifacts).intercept == result.scorer.intercept
    paths["card"].write_text(paths["card"].read_text().replace('"pdo": 20.0', '"pdo": 40.0'))
    with pytest.raises(ArtifactError, match="card"):
        ScorecardScorer.load(artifacts)


def test_german_credit_cross_validation(tracking):
    figures = train_german(tracking)
    print("\nGerman credit, 5-fold CV: " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    assert figures["scorecard_cv_auc"] > 0.75
    assert min(figures[f"{m}_cv_auc"] for m in ("scorecard", "lightgbm", "onehot_lr")) > 0.75
    runs = mlflow.search_runs(experiment_names=[GERMAN_EXPERIMENT])
    assert {"german-scorecard", "german-lightgbm", "german-onehot_lr"} <= set(runs["tags.mlflow.runName"])
    assert runs["metrics.cv_auc"].notna().all()
