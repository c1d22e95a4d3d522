"""`train forecast`: the daily series from the warehouse, each forecaster's rolling-origin backtest
as an MLflow run, then the best one's forecast from the last day of data, stored and registered as
`disbursement_forecast` and gated on backtest sMAPE (lower is better)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from scoring.forecast import ForecastDay, StoredForecast
from scoring.registry import FORECAST_MODEL
from scoring.settings import Settings
from training import figures
from training.data.warehouse import connect
from training.fit.candidate import Candidate
from training.forecast import backtest, series
from training.forecast.models import BASELINE, FORECASTERS
from training.tracking import GateDecision, ROWS_TAG, experiment, gate, log_candidate, log_forecast

log = logging.getLogger(__name__)
# Two Spring Festivals need two years of days; a little more gives the backtest its own weeks.
MIN_DAYS = 730
METRIC = "backtest_smape"


@dataclass
class ForecastResult:
    run_id: str
    version: str
    chosen: str
    metrics: dict[str, dict[str, float]]  # per forecaster
    stored: StoredForecast
    decision: GateDecision


def series_digest(y: pd.Series) -> str:
    """A fingerprint of the series the backtest ran on: equal digests, comparable sMAPEs."""
    return hashlib.sha256(pd.util.hash_pandas_object(y, index=True).to_numpy().tobytes()).hexdigest()[:16]


def read_series(settings: Settings) -> tuple[pd.Series, pd.DataFrame]:
    with connect(settings) as con:
        y, sends = series.daily_draws(con), series.campaign_sends(con)
    if len(y) < MIN_DAYS:
        raise ValueError(f"the forecast needs at least {MIN_DAYS} days of draw-downs (two Spring Festivals), the "
                         f"warehouse has {len(y)}: simulate one with `python -m training simulate --days 760`")
    return y, sends


def candidate(name: str, bt: backtest.Backtest, settings: Settings, digest: str) -> Candidate:
    params = {"forecaster": name, "backtest_weeks": settings.forecast_backtest_weeks,
              "backtest_days": settings.forecast_backtest_days, "level": settings.forecast_level}
    return Candidate(run_name=f"forecast_{name}", scorer=None, test_scores=np.array([]), params=params,
                     metrics=dict(bt.metrics), tags={ROWS_TAG: digest},
                     figures={"backtest": figures.forecast_vs_actual(bt.frame, f"{name}: rolling-origin backtest")},
                     tables={"tables/backtest.csv": bt.frame})


def forecast_ahead(name: str, y: pd.Series, sends: pd.DataFrame, settings: Settings) -> StoredForecast:
    """The forecaster fitted on all of y, for the horizon after its last day (campaigns as planned)."""
    origin, horizon = y.index[-1], settings.forecast_horizon_days
    ahead = pd.date_range(origin + pd.Timedelta(days=1), periods=horizon)
    exog = series.exogenous(y.index.append(ahead), series.planned_sends(sends, origin, horizon))
    fc = FORECASTERS[name](y, exog.loc[y.index], exog.loc[ahead], settings.forecast_level)
    days = [ForecastDay(d.date().isoformat(), round(float(r.forecast), 2), round(float(r.lower), 2),
                        round(float(r.upper), 2)) for d, r in fc.iterrows()]
    return StoredForecast(origin.date().isoformat(), settings.forecast_level, name, days)


def backtests(y: pd.Series, sends: pd.DataFrame, settings: Settings) -> dict[str, backtest.Backtest]:
    exog = series.exogenous(y.index, sends)  # campaigns sent in the backtest's weeks were planned by then
    out = {name: backtest.run(f, y, exog, settings.forecast_backtest_weeks, settings.forecast_backtest_days,
                              settings.forecast_level) for name, f in FORECASTERS.items()}
    for bt in out.values():
        bt.metrics["smape_vs_naive_ratio"] = bt.metrics[METRIC] / out[BASELINE].metrics[METRIC]
    return out


def train_forecast(settings: Settings, force: bool = False) -> ForecastResult:
    y, sends = read_series(settings)
    digest = series_digest(y)
    mlflow.set_experiment(experiment_id=experiment(FORECAST_MODEL, settings))
    results = backtests(y, sends, settings)
    runs = {name: log_candidate(candidate(name, bt, settings, digest), {"series_days": str(len(y))})
            for name, bt in results.items()}
    chosen = min(results, key=lambda n: results[n].metrics[METRIC])
    stored = forecast_ahead(chosen, y, sends, settings)
    with mlflow.start_run(run_id=runs[chosen]):
        fig = figures.forecast_ahead(y.iloc[-90:], stored.frame(), f"{chosen}: forecast from {stored.origin}")
        mlflow.log_figure(fig, "plots/forecast.png")
        plt.close(fig)
        version = str(log_forecast(stored, FORECAST_MODEL).registered_model_version)
        decision = gate(FORECAST_MODEL, version, METRIC, results[chosen].metrics[METRIC], force,
                        MlflowClient().get_run(runs[chosen]).data.tags.get(ROWS_TAG))
    log.info("%s v%s: %s, backtest sMAPE %.4f (seasonal naive %.4f)", FORECAST_MODEL, version, chosen,
             results[chosen].metrics[METRIC], results[BASELINE].metrics[METRIC])
    return ForecastResult(runs[chosen], version, chosen, {n: bt.metrics for n, bt in results.items()}, stored,
                          decision)
