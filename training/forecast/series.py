"""The forecast's data, in SQL over the warehouse contract: daily draw-down volume and campaign sends."""

from __future__ import annotations

import duckdb
import pandas as pd

from training.data import calendar

# The campaign calendar is assumed to repeat with the period (in days) that best matches its past.
PLAN_PERIODS = (7, 14, 21, 28)

DAILY_DRAWS = """
WITH days AS (
    SELECT CAST(d AS DATE) AS day
    FROM range((SELECT min(txn_date) FROM transactions WHERE txn_type = 'loan_draw'),
               (SELECT max(activity_date) FROM daily_activity) + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)
)
SELECT day, coalesce(sum(amount), 0) AS volume
FROM days LEFT JOIN transactions ON txn_date = day AND txn_type = 'loan_draw'
GROUP BY day ORDER BY day
"""


def daily_draws(con: duckdb.DuckDBPyConnection) -> pd.Series:
    """Draw-down volume (CNY) per calendar day, from the first draw-down to the last day of activity; 0 on
    days without any."""
    frame = con.execute(DAILY_DRAWS).df()
    return pd.Series(frame["volume"].to_numpy(float), index=pd.DatetimeIndex(frame["day"]), name="volume")


CAMPAIGN_SENDS = """
SELECT c.send_date, split_part(a.arm, '/', 1) AS incentive,
    count(DISTINCT a.arm) * 1.0 / c.arms AS share
FROM campaigns c JOIN campaign_assignments a ON a.campaign_id = c.campaign_id
WHERE a.arm <> 'control'
GROUP BY c.campaign_id, c.send_date, c.arms, incentive
ORDER BY c.send_date, incentive
"""


def campaign_sends(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every campaign's send date and incentives, each with its share of the campaign's arms."""
    frame = con.execute(CAMPAIGN_SENDS).df()
    return frame.assign(send_date=pd.to_datetime(frame["send_date"]))


def planned_sends(sends: pd.DataFrame, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """The sends up to `origin` and the ones planned for the `horizon` days after it: the last cycle of
    the campaign calendar repeated, with the period among PLAN_PERIODS that best repeats its past."""
    past = sends[sends["send_date"] <= origin]

    def repeats(period: int) -> int:
        shifted = past.assign(send_date=past["send_date"] + pd.Timedelta(days=period))
        return len(shifted.merge(past, on=["send_date", "incentive"]))

    period = max(PLAN_PERIODS, key=repeats)
    planned = [past[past["send_date"] > origin - pd.Timedelta(days=period)]
               .assign(send_date=lambda f, k=k: f["send_date"] + pd.Timedelta(days=k * period))
               for k in range(1, horizon // period + 2)]
    ahead = pd.concat(planned)
    ahead = ahead[ahead["send_date"] <= origin + pd.Timedelta(days=horizon)]
    return pd.concat([past, ahead], ignore_index=True)


def exogenous(days: pd.DatetimeIndex, sends: pd.DataFrame) -> pd.DataFrame:
    """The regressors of each day: calendar (weekday, payday, Spring Festival) and recent campaigns."""
    return pd.concat([calendar.regressors(days), calendar.campaign_regressors(days, sends)], axis=1)
