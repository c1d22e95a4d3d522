"""The forecasters and their backtest on a series made from the lending calendar (no world needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.arms import INCENTIVES
from training.data import calendar
from training.forecast import backtest, series
from training.forecast.models import FORECASTERS

DAYS = pd.date_range("2025-01-01", periods=760)
SENDS = pd.DataFrame({"send_date": DAYS[3::7], "incentive": [INCENTIVES[i % 3] for i in range(len(DAYS[3::7]))], "share": 1.0})


def made_up_volume(seed: int = 0) -> pd.Series:
    """Calendar effects, a 20% yearly growth, the campaigns' lift and lognormal noise that persists a
    little from day to day (AR(1), 0.6), as a customer base's mood does."""
    rng = np.random.default_rng(seed)
    lift = 1 + 0.3 * calendar.campaign_regressors(DAYS, SENDS)["campaign_interest_free"].to_numpy()
    growth = 1.2 ** (np.arange(len(DAYS)) / 365)
    noise = np.zeros(len(DAYS))
    for t, shock in enumerate(rng.normal(0, 0.16, len(DAYS))):
        noise[t] = 0.6 * noise[t - 1] + shock if t else shock
    return pd.Series(70_000 * calendar.multiplier(DAYS) * lift * growth * np.exp(noise), index=DAYS)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_the_backtest_never_sees_the_future(name):
    y = made_up_volume()
    exog = series.exogenous(DAYS, SENDS)
    first_origins = backtest.origins(DAYS, 3)
    changed = y.copy()
    changed[changed.index > first_origins[1]] *= 3  # every day after the second origin
    before = backtest.run(FORECASTERS[name], y, exog, 3, 14, 0.8).frame
    after = backtest.run(FORECASTERS[name], changed, exog, 3, 14, 0.8).frame
    kept = before["origin"] <= first_origins[1]
    cols = ["forecast", "lower", "upper"]
    pd.testing.assert_frame_equal(before.loc[kept, cols], after.loc[kept, cols])
    assert not np.allclose(before.loc[~kept, "forecast"], after.loc[~kept, "forecast"])  # later origins saw it


@pytest.mark.parametrize("name", ["sarimax", "seasonal_naive"])
def test_intervals_widen_with_the_horizon(name):
    y = made_up_volume()
    ahead = pd.date_range(DAYS[-1] + pd.Timedelta(days=1), periods=28)
    exog = series.exogenous(DAYS.append(ahead), series.planned_sends(SENDS, DAYS[-1], 28))
    fc = FORECASTERS[name](y, exog.loc[DAYS], exog.loc[ahead], 0.8)
    width = np.log1p(fc["upper"].to_numpy()) - np.log1p(fc["lower"].to_numpy())  # relative width
    assert np.all(np.diff(width) >= -1e-9) and width[-1] > width[0] * 1.05
    assert (fc["lower"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["upper"]).all()


def test_sarimax_beats_seasonal_naive_and_its_interval_covers_about_its_level():
    y, exog = made_up_volume(1), series.exogenous(DAYS, SENDS)
    model = backtest.run(FORECASTERS["sarimax"], y, exog, 8, 14, 0.8).metrics
    naive = backtest.run(FORECASTERS["seasonal_naive"], y, exog, 8, 14, 0.8).metrics
    assert model["backtest_smape"] <= 0.8 * naive["backtest_smape"]
    assert 0.65 <= model["backtest_coverage"] <= 0.95
    assert model["backtest_days"] == 56


def test_smape_by_hand():
    assert backtest.smape(np.array([100.0, 0.0, 50.0]), np.array([100.0, 0.0, 150.0])) == pytest.approx(1 / 3)
    assert backtest.smape(np.array([10.0]), np.array([0.0])) == pytest.approx(2.0)


def test_planned_campaigns_repeat_the_calendars_cycle():
    origin = DAYS[400]
    plan = series.planned_sends(SENDS, origin, 28)
    ahead = plan[plan["send_date"] > origin].reset_index(drop=True)
    truth = SENDS[(SENDS["send_date"] > origin) & (SENDS["send_date"] <= origin + pd.Timedelta(days=28))]
    pd.testing.assert_frame_equal(ahead, truth.reset_index(drop=True))
