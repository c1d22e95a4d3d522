"""The feature ceiling's fit: soft labels recover a known probability (and a known effect) better than
the same fit to labels drawn from it, and the capacity kept is the one closest to the truth; on the
session's world every model's run logs its ceiling, the two gaps adding up to the oracle's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from scoring.spec import FeatureSpec
from training.data import datasets
from training.data.datasets import Dataset
from training.fit.ceiling import UNDERFITTED_TAG, fit_ceiling
from training.fit.s_learner import coded
from training.fit.uplift import arm_ceiling

N, TEST = 8000, 2000


def world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, FeatureSpec]:
    """Three features, one categorical, and a probability with a curve and an interaction in it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.uniform(-2, 2, N), "b": rng.uniform(-2, 2, N), "kind": rng.integers(0, 3, N)})
    frame["kind"] = frame["kind"].map({0: "x", 1: "y", 2: "z"})
    spec = FeatureSpec.fit(frame)
    X = spec.to_matrix(frame)
    shift = frame["kind"].map({"x": -1.0, "y": 0.0, "z": 1.0}).to_numpy()
    p = 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] ** 2 + shift * X[:, 0] - 1.0)))
    return X, p, spec


def test_soft_labels_recover_a_known_probability_better_than_sampled_labels():
    X, p, spec = world()
    y = (np.random.default_rng(1).random(N) < p).astype(float)
    soft = fit_ceiling(X[:-TEST], p[:-TEST], spec)
    sampled = fit_ceiling(X[:-TEST], y[:-TEST], spec)

    def error(fit) -> float:
        return float(np.mean((fit.predict(X[-TEST:]) - p[-TEST:]) ** 2))

    assert error(soft) < 0.25 * error(sampled)
    assert error(soft) < 0.002  # a probability known to a few points, from 6,000 rows
    assert ((soft.predict(X) >= 0) & (soft.predict(X) <= 1)).all()


def test_effect_target_recovers_a_signed_effect():
    X, p, spec = world(2)
    effect = 0.05 * X[:, 0] - 0.02  # negative for some users: a regression, not a probability
    fit = fit_ceiling(X[:-TEST], effect[:-TEST], spec, target="effect")
    assert np.corrcoef(fit.predict(X[-TEST:]), effect[-TEST:])[0, 1] > 0.98
    assert fit.predict(X[-TEST:]).min() < 0


def test_the_setting_kept_has_the_least_error_to_the_truth():
    X, p, spec = world(3)
    fit = fit_ceiling(X, p, spec, grid=(2, 31))
    assert list(fit.grid.index) == [2, 31]
    assert fit.leaves == fit.grid["valid_error_to_truth"].idxmin()
    assert fit.params == {"ceiling_num_leaves": fit.leaves, "ceiling_rounds": fit.grid.loc[fit.leaves, "rounds"]}
    assert fit.booster.best_iteration == fit.grid.loc[fit.leaves, "rounds"] > 0


def test_unknown_target_is_refused():
    X, p, spec = world()
    with pytest.raises(KeyError):
        fit_ceiling(X, p, spec, target="label")


# --- every model's run on the session's world ---------------------------------------------------

GAPS = {"auc": ("ceiling_auc", "information_gap_auc", "learner_gap_auc"),
        "qini": ("ceiling_qini", "information_gap_qini", "learner_gap_qini")}


def logged(run_id: str) -> tuple[dict[str, float], dict[str, str], set[str]]:
    client = MlflowClient()
    run = client.get_run(run_id)
    artifacts = {a.path for folder in ("plots", "tables") for a in client.list_artifacts(run_id, folder)}
    return run.data.metrics, run.data.tags, artifacts


def assert_split_logged(run_id: str, unit: str, oracle: str, model: str) -> dict[str, float]:
    """The ceiling's metrics, figure and grid are in the run, and the two gaps add up to the oracle's."""
    metrics, tags, artifacts = logged(run_id)
    ceiling, information, learner = GAPS[unit]
    assert {ceiling, information, learner} <= set(metrics)
    assert metrics[information] + metrics[learner] == pytest.approx(
        metrics[oracle] - metrics[model], abs=1e-12)
    assert metrics[ceiling] == pytest.approx(metrics[oracle] - metrics[information], abs=1e-12)
    assert {"plots/ceiling.png", "tables/ceiling_grid.csv"} <= artifacts
    assert tags[UNDERFITTED_TAG] == str(metrics[learner] < 0)
    return metrics


def shuffled_auc(ds: Dataset, spec: FeatureSpec, y_eval: np.ndarray) -> float:
    """The same fit to the training rows' truth shuffled among them: what a ceiling of no information gets."""
    truth = np.random.default_rng(0).permutation(ds.truth_train)
    fit = fit_ceiling(spec.to_matrix(ds.X_train), truth, spec)
    return float(roc_auc_score(y_eval, fit.predict(spec.to_matrix(ds.X_test))))


@pytest.mark.parametrize("model", ["churn", "abuse"])
def test_binary_runs_split_the_oracle_gap_at_a_ceiling_that_beats_a_shuffled_truth(trained, model):
    ds, result = trained[model]
    y_eval = ds.y_truth if ds.y_truth is not None else ds.y_test
    model_auc = "oot_truth_auc" if ds.y_truth is not None else "oot_auc"  # abuse: against the full truth
    metrics = assert_split_logged(result.run_id, "auc", "oracle_auc", model_auc)
    assert metrics["oracle_gap_auc"] == pytest.approx(metrics["information_gap_auc"] + metrics["learner_gap_auc"],
                                                      abs=1e-12)
    print(f"\n{model}: oracle {metrics['oracle_auc']:.4f} ceiling {metrics['ceiling_auc']:.4f} "
          f"model {metrics[model_auc]:.4f}")
    assert metrics["ceiling_auc"] > shuffled_auc(ds, result.scorer.spec, y_eval) + 0.05


def test_credit_card_and_challenger_share_one_ceiling(credit_run):
    ds, result = credit_run
    card = assert_split_logged(result.run_id, "auc", "oracle_auc", "oot_auc")
    challenger_run = MlflowClient().get_run(result.run_id).data.tags["challenger_run_id"]
    challenger = assert_split_logged(challenger_run, "auc", "oracle_auc", "oot_auc")
    assert card["ceiling_auc"] == challenger["ceiling_auc"]
    print(f"\ncredit: oracle {card['oracle_auc']:.4f} ceiling {card['ceiling_auc']:.4f} card {card['oot_auc']:.4f} "
          f"challenger {challenger['oot_auc']:.4f}")
    assert card["ceiling_auc"] > shuffled_auc(ds, result.scorer.spec, ds.y_test) + 0.05


def test_uplift_runs_split_the_oracle_qini_at_a_per_arm_ceiling_that_knows_the_arms(response_run, settings, dates):
    metrics = assert_split_logged(response_run.run_id, "qini", "oracle_qini", "oot_qini")
    assert metrics["qini_vs_ceiling_ratio"] == pytest.approx(metrics["oot_qini"] / metrics["ceiling_qini"], abs=1e-12)
    assert "ceiling_qini_coupon_sms_evening" in metrics
    data = datasets.response(settings, dates)
    spec = response_run.scorer.spec
    X_tr, X_te = spec.to_matrix(data.ds.X_train), spec.to_matrix(data.ds.X_test)
    ceiling = arm_ceiling(X_tr, data.arm_train, data, spec)
    print(f"\nresponse: oracle Qini {metrics['oracle_qini']:.5f} ceiling {metrics['ceiling_qini']:.5f} "
          f"model {metrics['oot_qini']:.5f} (means over arms); ratio {metrics['qini_vs_ceiling_ratio']:.3f}")
    # Per-arm Qini on a few hundred rows an arm is noise; the ceiling's fit to every arm's truth is not.
    for j in (0, 17, 40):
        effect = ceiling.predict(coded(X_te, np.full(len(X_te), data.arms[j], dtype=object)))
        assert np.corrcoef(effect, data.truth_test[:, j])[0, 1] > 0.3
