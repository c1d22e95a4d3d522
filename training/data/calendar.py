"""The lending calendar: what moves daily draw-down volume besides the customers themselves.

One place for the simulator's daily multiplier and the forecast's exogenous regressors, so that
both read the same weekdays, paydays and Spring Festival dates.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from scoring.arms import INCENTIVES

# Spring Festival (lunar new year's day), by Gregorian year.
SPRING_FESTIVAL = {
    2019: date(2019, 2, 5), 2020: date(2020, 1, 25), 2021: date(2021, 2, 12), 2022: date(2022, 2, 1),
    2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17),
    2027: date(2027, 2, 6), 2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
}
# Monday first: people borrow on workdays, least on Sundays.
WEEKDAY = np.array([1.08, 1.04, 1.02, 1.02, 1.06, 0.92, 0.86])
# Wages land on the 10th and 15th in most firms; spending on credit peaks that day and the two after.
PAYDAYS, PAYDAY_DAYS, PAYDAY_LIFT = (10, 15), 3, 0.18
# Relative to Spring Festival: a pre-holiday shopping rise, the holiday slump, then the rebound.
FESTIVAL_PHASES = {"pre_festival": (-14, -4, 0.15), "festival": (-3, 7, -0.45), "rebound": (8, 21, 0.20)}


def _festival_offset(days: pd.DatetimeIndex) -> np.ndarray:
    """Days from the nearest Spring Festival (negative before it)."""
    festivals = pd.DatetimeIndex(sorted(SPRING_FESTIVAL.values()))
    # A day's nearest festival may fall in the year before or after its own.
    missing = set(days.year) - set(SPRING_FESTIVAL) - {min(SPRING_FESTIVAL) - 1, max(SPRING_FESTIVAL) + 1}
    if missing:
        raise ValueError(f"no Spring Festival date for {sorted(missing)}: add it to SPRING_FESTIVAL")
    gaps = (days.values[:, None] - festivals.values[None, :]).astype("timedelta64[D]").astype(int)
    return gaps[np.arange(len(days)), np.abs(gaps).argmin(axis=1)]


def regressors(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Calendar features per day: weekday, payday window, Spring Festival phases (0/1 each)."""
    offset = _festival_offset(days)
    out = {f"weekday_{d}": (days.dayofweek == d).astype(float) for d in range(7)}
    out["payday"] = np.isin(days.day, [p + k for p in PAYDAYS for k in range(PAYDAY_DAYS)]).astype(float)
    for phase, (first, last, _) in FESTIVAL_PHASES.items():
        out[phase] = ((offset >= first) & (offset <= last)).astype(float)
    return pd.DataFrame(out, index=days)


def _raw(days: pd.DatetimeIndex) -> np.ndarray:
    reg = regressors(days)
    lift = WEEKDAY[days.dayofweek] * (1 + PAYDAY_LIFT * reg["payday"].to_numpy())
    for phase, (_, _, effect) in FESTIVAL_PHASES.items():
        lift = lift * (1 + effect * reg[phase].to_numpy())
    return lift


# The multiplier's mean over whole years, so that a year's draw-downs keep their volume on average.
_NORMALISER = float(_raw(pd.date_range("2024-01-01", "2029-12-31")).mean())


def multiplier(days: pd.DatetimeIndex) -> np.ndarray:
    """The calendar's factor on the day's draw-down probability; its mean over a year is about 1."""
    return _raw(days) / _NORMALISER


# Draw-downs rise in the days after a campaign's send (day 0 is the send day), most after an
# interest-free offer.
CAMPAIGN_DAYS = (1, 3)


def campaign_regressors(days: pd.DatetimeIndex, sends: pd.DataFrame) -> pd.DataFrame:
    """Per day and incentive, the share of arms of that incentive in the campaigns sent CAMPAIGN_DAYS
    before (`sends`: send_date, incentive, share; past campaigns, and planned ones for days ahead)."""
    first, last = CAMPAIGN_DAYS
    out = {}
    for incentive in INCENTIVES:
        rows = sends[sends["incentive"] == incentive]
        shares = pd.Series(0.0, index=days)
        for k in range(first, last + 1):
            after = rows.groupby(pd.DatetimeIndex(rows["send_date"]) + pd.Timedelta(days=k))["share"].sum()
            shares = shares.add(after.reindex(days, fill_value=0.0))
        out[f"campaign_{incentive}"] = shares.to_numpy()
    return pd.DataFrame(out, index=days)
