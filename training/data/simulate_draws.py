"""The simulator's daily draw-down volume: the lending calendar, a growth trend and the campaigns' lift,
as one factor on each active user's draw-down probability (simulate._money)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from training.data import calendar
from training.data.simulate_campaigns import CAMPAIGN_WEEKDAYS

# Daily draw-down volume: the calendar's factor (training/data/calendar.py), the lift of a recent
# campaign by incentive, and a growth trend of DRAW_GROWTH a year centred on the window's middle;
# each has a mean of about 1, so the draw probability keeps its mean (BASE_DRAW_P) and other models
# their data.
BASE_DRAW_P = 0.02
CAMPAIGN_DRAW_LIFT = {"red_packet": 0.05, "coupon": 0.10, "interest_free": 0.35, "none": 0.0}
DRAW_GROWTH = 0.20


def calendar_lift(start: date, days: int) -> np.ndarray:
    """Each day's factor on the draw-down probability from the calendar and the growth trend."""
    growth = (1 + DRAW_GROWTH) ** ((np.arange(days) - days / 2) / 365)
    return calendar.multiplier(pd.date_range(start, periods=days)) * growth


def campaign_lift(sends: list[tuple[int, list[str]]], t: int) -> float:
    """Day t's factor from the campaigns sent calendar.CAMPAIGN_DAYS before (`sends`: each one's day and
    its arms' incentives; a campaign lifts by its arms' mean), divided by its mean over the campaign
    calendar so that campaigns move draw-downs in time rather than add to them."""
    first, last = calendar.CAMPAIGN_DAYS
    lift = sum(np.mean([CAMPAIGN_DRAW_LIFT[i] for i in incentives]) for day, incentives in sends
               if first <= t - day <= last)
    mean = (last - first + 1) * len(CAMPAIGN_WEEKDAYS) / 7 * np.mean(list(CAMPAIGN_DRAW_LIFT.values()))
    return (1 + lift) / (1 + mean)


def draw_shares(rng: np.random.Generator, r: np.ndarray, has_line: np.ndarray, lift: float) -> np.ndarray:
    """The share of the line each of the day's draw-downs takes, uniform on 0.5..1 (r: each active user's
    uniform, below BASE_DRAW_P * lift for those who draw).

    The generator draws what it drew before the calendar existed (one per draw at BASE_DRAW_P), so that
    the rest of the world (activity, loans, campaigns) stays the same draw for draw whatever the calendar
    does; the share comes from r itself, uniform below its threshold."""
    rng.uniform(0.5, 1.0, int((has_line & (r < BASE_DRAW_P)).sum()))
    p = BASE_DRAW_P * lift
    return 0.5 + 0.5 * r[has_line & (r < p)] / p
