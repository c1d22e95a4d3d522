"""The loan book: its true PD is the chain's own default rate, and the session world's book looks like a lender's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.data import truth
from training.data.schema import DEFAULT_DPD, DEFAULT_WITHIN_DAYS
from training.data.simulate_loans import MONTH, SHOCK_IN, SHOCK_OUT, STEPS, _repay, true_pd


@pytest.mark.parametrize(("x", "shock0", "term"), [(0.0, 0, 3), (1.5, 0, 12), (0.5, 1, 6)])
def test_true_pd_is_the_default_rate_of_the_simulated_chain(x, shock0, term):
    """Monte Carlo of the repayment chain (distress paths drawn from the same two-state process) against the
    exact probability of 90+ days past due within 12 months."""
    rng = np.random.default_rng(0)
    n = 40_000
    path = np.empty((n, STEPS), np.int8)
    state = np.full(n, shock0)
    for m in range(STEPS):
        r = rng.random(n)
        state = np.where(state == 1, r >= SHOCK_OUT, r < SHOCK_IN)
        path[:, m] = state
    applied = np.zeros(n, dtype=np.int64)
    *_, default_day = _repay(rng, np.full(n, x), np.zeros(n), path, applied, np.full(n, term), np.ones(n))
    simulated = (default_day <= DEFAULT_WITHIN_DAYS).mean()
    exact = true_pd(np.array([x]), np.array([shock0]), np.array([term]))[0]
    assert simulated == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / n) + 1e-3)


@pytest.fixture(scope="module")
def book(settings) -> dict[str, pd.DataFrame]:
    frames = {name: pd.read_parquet(settings.warehouse_dir / f"{name}.parquet") for name in ("loans", "instalments")}
    frames["truth"] = truth.read_truth(settings, "loans")
    return frames


def _data_end(settings) -> pd.Timestamp:
    return pd.Timestamp(truth.meta(settings)["start"]) + pd.Timedelta(days=truth.meta(settings)["days"])


def test_the_warehouse_holds_only_instalments_due_and_payments_made_before_its_end(settings, book):
    inst, end = book["instalments"], _data_end(settings)
    assert (inst.due_date < end).all() and (inst.paid_date.dropna() < end).all()
    assert (inst.paid_date.isna() == inst.days_past_due.isna()).all()
    paid = inst.dropna(subset=["paid_date"])
    assert ((paid.paid_date - paid.due_date).dt.days == paid.days_past_due).all()
    # Loans start before the simulated window, so every credit snapshot has repayment history before it.
    assert book["loans"].applied_date.min() < pd.Timestamp(truth.meta(settings)["start"]) - pd.Timedelta(days=600)


def test_days_past_due_fill_every_bucket_with_few_defaults_and_some_partial_payments(settings, book):
    inst, end = book["instalments"], _data_end(settings)
    # Unpaid instalments count as past due at the data's end.
    dpd = inst.days_past_due.astype(float).fillna((end - inst.due_date).dt.days)
    buckets = pd.cut(dpd, [-1, 0, 30, 60, 90, np.inf], labels=["0", "1-30", "31-60", "61-90", "90+"])
    share = buckets.value_counts(normalize=True)
    print("\ninstalments by days past due:", share.round(4).to_dict())
    # Paying some days late is common (a quarter of instalments), a month late one in twenty, two months rare.
    assert share["0"] > 0.6 and 0.03 < share["1-30"] < 0.3
    assert 0.003 < share["31-60"] < 0.08 and 0.0005 < share["61-90"] < 0.02 and 0.005 < share["90+"] < 0.08
    partial = (inst.amount_paid < inst.amount_due)[inst.paid_date.notna()].mean()
    assert 0.01 < partial < 0.1


def test_default_rate_and_oracle_of_loans_whose_12_months_are_over(settings, book):
    loans, inst, end = book["loans"], book["instalments"], _data_end(settings)
    done = loans[loans.applied_date + pd.Timedelta(days=DEFAULT_WITHIN_DAYS) <= end]
    i = inst.merge(done[["loan_id", "applied_date"]], on="loan_id")
    late = (i.paid_date.isna() | (i.days_past_due >= DEFAULT_DPD)) & (
        i.due_date + pd.Timedelta(days=DEFAULT_DPD) <= i.applied_date + pd.Timedelta(days=DEFAULT_WITHIN_DAYS))
    y = done.loan_id.isin(i.loc[late, "loan_id"]).to_numpy()
    p = book["truth"].set_index("loan_id").pd.reindex(done.loan_id).to_numpy()
    oracle = roc_auc_score(y, p)
    print(f"\n{len(done)} loans: default rate {y.mean():.4f}, mean true PD {p.mean():.4f}, oracle AUC {oracle:.4f}")
    assert 0.03 <= y.mean() <= 0.08
    assert abs(p.mean() - y.mean()) < 4 * np.sqrt(y.mean() / len(y))
    assert 0.77 <= oracle <= 0.87  # 0.78-0.86 at 200k users; a few hundred defaults here
    # Applications are spread over the borrowers, not a few of them.
    assert loans.user_id.value_counts().quantile(0.9) <= 12
    assert loans.user_id.nunique() > 0.2 * len(pd.read_parquet(settings.warehouse_dir / "users.parquet"))
