"""The lending calendar shared by the simulator and the forecast."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from training.data import calendar
from scoring.arms import INCENTIVES
from training.data.simulate_campaigns import CAMPAIGN_WEEKDAYS
from training.data.simulate_draws import calendar_lift, campaign_lift


@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_a_years_multiplier_averages_about_one(year):
    assert calendar.multiplier(pd.date_range(f"{year}-01-01", f"{year}-12-31")).mean() == pytest.approx(1, abs=0.02)


def test_the_spring_festival_slumps_and_rebounds():
    festival = pd.Timestamp(calendar.SPRING_FESTIVAL[2026])
    around = pd.date_range(festival - pd.Timedelta(days=30), festival + pd.Timedelta(days=30))
    m = pd.Series(calendar.multiplier(around), index=around)
    weekly = m.rolling(7, center=True).mean()
    assert weekly[festival] < 0.7 * weekly[festival - pd.Timedelta(days=21)]
    assert weekly[festival + pd.Timedelta(days=14)] > weekly[festival - pd.Timedelta(days=21)]


def test_paydays_lift_the_day():
    days = pd.DatetimeIndex(["2026-03-09", "2026-03-10"])  # a Monday and a Tuesday, the second a payday
    ratio = calendar.multiplier(days)[1] / calendar.multiplier(days)[0]
    assert ratio == pytest.approx(calendar.WEEKDAY[1] / calendar.WEEKDAY[0] * (1 + calendar.PAYDAY_LIFT))


def test_a_year_without_a_festival_date_is_refused():
    with pytest.raises(ValueError, match="2040"):
        calendar.regressors(pd.date_range("2040-06-01", periods=3))


def test_the_simulators_draw_factors_average_about_one():
    assert calendar_lift(date(2025, 1, 1), 760).mean() == pytest.approx(1, abs=0.03)
    sends = [(t, list(INCENTIVES)) for t in range(760) if t % 7 in CAMPAIGN_WEEKDAYS]
    lifts = [campaign_lift(sends, t) for t in range(10, 10 + 21 * 7)]
    assert np.mean(lifts) == pytest.approx(1, abs=0.01)
