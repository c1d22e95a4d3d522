"""Rolling-origin backtest: each origin's forecast sees only the volume up to it (the regressors of
the days after are calendar and planned campaigns, known in advance), scored on the days after."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.forecast.models import Forecaster


@dataclass(frozen=True)
class Backtest:
    """Every (origin, day ahead) forecast beside the actual, and their summary."""

    frame: pd.DataFrame  # origin, date, horizon, actual, forecast, lower, upper
    metrics: dict[str, float]


def origins(days: pd.DatetimeIndex, weeks: int) -> list[pd.Timestamp]:
    """One origin a week, the first `weeks` weeks before the last day: the last day of history of each."""
    return [days[-1] - pd.Timedelta(days=7 * k) for k in range(weeks, 0, -1)]


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric mean absolute percentage error, 0..2 (a day both call 0 counts as no error)."""
    denom = np.abs(actual) + np.abs(forecast)
    return float(np.mean(np.where(denom > 0, 2 * np.abs(forecast - actual) / np.where(denom > 0, denom, 1), 0.0)))


def score(frame: pd.DataFrame) -> dict[str, float]:
    actual, forecast = frame["actual"].to_numpy(), frame["forecast"].to_numpy()
    inside = (frame["lower"] <= frame["actual"]) & (frame["actual"] <= frame["upper"])
    return {"backtest_smape": smape(actual, forecast), "backtest_mae": float(np.mean(np.abs(forecast - actual))),
            "backtest_coverage": float(inside.mean()), "backtest_days": float(frame["date"].nunique()),
            "backtest_width": float(np.mean((frame["upper"] - frame["lower"]) / np.maximum(frame["forecast"], 1)))}


def run(forecaster: Forecaster, y: pd.Series, exog: pd.DataFrame, weeks: int, horizon: int,
        level: float) -> Backtest:
    """The forecaster from each weekly origin of the last `weeks` weeks, `horizon` days ahead (cut at the
    end of the data). `exog` covers y's days."""
    parts = []
    for origin in origins(y.index, weeks):
        past = y.index <= origin
        ahead = y.index[~past][:horizon]
        fc = forecaster(y[past], exog[past], exog.loc[ahead], level)
        parts.append(fc.assign(origin=origin, date=ahead, horizon=np.arange(1, len(ahead) + 1),
                               actual=y.loc[ahead].to_numpy()))
    frame = pd.concat(parts, ignore_index=True)[["origin", "date", "horizon", "actual", "forecast", "lower", "upper"]]
    return Backtest(frame, score(frame))
