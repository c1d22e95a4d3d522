"""Hillstrom's e-mail experiment: the published data as the issue describes it (arm visit rates),
the per-arm tables the table path trains on, a refused tampered download, and the comparison figures."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import make_settings
from training.hillstrom import (ARMS, CONTROL, EXPERIMENT, FEATURES, SDIST, ArmResult, arm_table, compare, fetch,
                                qini_figures, render, visit_rates)

# Published visit rates per arm (Hillstrom, 2008), to 0.1 percentage point.
RATES = {"men": 0.183, "women": 0.151, "none": 0.106}


def test_arm_visit_rates_are_the_published_ones(hillstrom: pd.DataFrame):
    assert len(hillstrom) == 64_000
    assert set(hillstrom["segment"]) == {CONTROL, *ARMS.values()}
    rates = visit_rates(hillstrom)
    for arm, rate in RATES.items():
        assert rates[arm] == pytest.approx(rate, abs=0.0005), arm


def test_arm_tables_from_the_real_data(hillstrom: pd.DataFrame):
    for arm, label in ARMS.items():
        table = arm_table(hillstrom, arm)
        assert len(table) == (hillstrom["segment"].isin([label, CONTROL])).sum()
        assert table["treated"].sum() == (hillstrom["segment"] == label).sum()
        # Each e-mail went to about a third of the customers, as did no e-mail.
        assert 0.48 < table["treated"].mean() < 0.52


def _frame() -> pd.DataFrame:
    rows = [(seg, visit) for seg in ("Womens E-Mail", "Mens E-Mail", "No E-Mail") for visit in (0, 1)]
    df = pd.DataFrame(rows, columns=["segment", "visit"])
    for c in FEATURES:
        df[c] = np.arange(len(df))
    return df.assign(conversion=df["visit"], spend=df["visit"] * 10.0)


def test_arm_table_is_one_email_against_none_without_later_outcomes():
    df = _frame()
    table = arm_table(df, "women")
    assert list(table.columns) == [*FEATURES, "visit", "treated"]  # no segment, conversion or spend
    assert table["treated"].tolist() == [1, 1, 0, 0]
    assert table["recency"].tolist() == df.loc[df.segment.isin(["Womens E-Mail", "No E-Mail"]), "recency"].tolist()
    assert arm_table(df, "men")["treated"].tolist() == [1, 1, 0, 0]


def test_a_tampered_download_is_refused(tmp_path):
    settings = make_settings(tmp_path)
    (settings.data_dir / "external").mkdir(parents=True)
    (settings.data_dir / "external" / SDIST).write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="sha256"):
        fetch(settings)


def _log(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A randomised log whose effect grows with x: a ranking by x has a positive Qini."""
    rng = np.random.default_rng(seed)
    x, t = rng.random(n), rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.2 * x * t).astype(int)
    return y, t, x


def test_compare_names_every_figure_and_a_ranking_equal_to_the_reference_has_ratio_one():
    y, t, x = _log(4000)
    m = compare(y, t, x, x, "women")
    assert m["hillstrom_women_qini_vs_reference_ratio"] == pytest.approx(1.0)
    # Paired resamples: the same rows for both, so the ratio is 1 in every one of them.
    assert m["hillstrom_women_qini_vs_reference_ratio_low"] == pytest.approx(1.0)
    assert m["hillstrom_women_qini_vs_reference_ratio_high"] == pytest.approx(1.0)
    assert m["hillstrom_women_qini_low"] < m["hillstrom_women_qini"] < m["hillstrom_women_qini_high"]


def test_compare_ratio_below_one_for_a_worse_champion():
    y, t, x = _log(4000)
    m = compare(y, t, -x, x, "men")  # ranking the other way round
    assert m["hillstrom_men_qini"] < m["hillstrom_men_reference_qini"]
    assert m["hillstrom_men_qini_vs_reference_ratio_high"] < 1


def test_train_response_on_hillstrom_logs_champion_and_reference_for_both_arms(hillstrom_settings, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "OPSCORE_DATA_DIR": str(hillstrom_settings.data_dir), "OPSCORE_MLRUNS_DIR": str(tmp_path),
           "MLFLOW_TRACKING_URI": uri}
    r = subprocess.run([sys.executable, "-m", "training", "train", "response", "--dataset", "hillstrom"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # the session may have set a global registry
    run = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])[0]
    m = run.data.metrics
    for arm in ARMS:
        p = f"hillstrom_{arm}"
        assert run.data.tags[f"champion_{arm}"].startswith(f"{p} v1 (") and f"champion {p} v1 (" in r.stdout
        for name in (f"{p}_qini", f"{p}_reference_qini", f"{p}_qini_vs_reference_ratio"):
            assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"], name
        assert m[f"{p}_qini_vs_reference_ratio"] == pytest.approx(m[f"{p}_qini"] / m[f"{p}_reference_qini"])
        assert str(client.get_model_version_by_alias(p, "champion").version) == "1"
    assert m["hillstrom_visit_rate_women"] == pytest.approx(RATES["women"], abs=0.0005)
    # Who opens the women's e-mail is predictable: the reference beats random targeting on held-out rows.
    assert m["hillstrom_women_reference_qini_low"] > 0


def test_hillstrom_is_for_response_only():
    r = subprocess.run([sys.executable, "-m", "training", "train", "churn", "--dataset", "hillstrom"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "train response --dataset hillstrom" in r.stderr


def test_summary_reports_the_reference_when_nothing_was_registered_and_no_ratio_interval_over_zero():
    y, t, x = _log(4000)
    refused = ArmResult("women", qini_figures(y, t, x, "hillstrom_women_reference_qini"), None, "no learner beats")
    m = compare(y, t, x, np.where(t == 1, 0.0, x), "men")  # a reference whose Qini interval includes 0
    assert m["hillstrom_men_reference_qini_low"] <= 0
    text = render([refused, ArmResult("men", m, "hillstrom_men v1 (t_learner, @champion)")])
    women, men = text.splitlines()[1:]
    assert "none registered (no learner beats)" in women
    assert f"reference {refused.metrics['hillstrom_women_reference_qini']:.5f} [" in women
    assert f"ratio {m['hillstrom_men_qini_vs_reference_ratio']:.3f}" in men
    assert "no interval" in men and "no interval" not in women
