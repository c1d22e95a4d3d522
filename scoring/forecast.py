"""The disbursement forecast as stored at training and served: per day ahead the forecast and its
central interval, made from the data up to an origin. No forecasting library is needed to serve it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd

from scoring.artifacts import verify_checksums

FORECAST = "forecast"  # the artifact's name: forecast.json


@dataclass(frozen=True)
class ForecastDay:
    date: str
    forecast: float
    lower: float
    upper: float


@dataclass(frozen=True)
class StoredForecast:
    origin: str  # the last day of data the forecast was made from
    level: float  # the interval's coverage, e.g. 0.8
    model: str  # which forecaster made it
    days: list[ForecastDay]

    @property
    def horizon(self) -> int:
        return len(self.days)

    def ahead(self, days: int) -> list[ForecastDay]:
        """The first `days` days after the origin; ValueError outside 1..horizon."""
        if not 1 <= days <= self.horizon:
            raise ValueError(f"days must be between 1 and {self.horizon}")
        return self.days[:days]

    def frame(self, days: int | None = None) -> pd.DataFrame:
        return pd.DataFrame([asdict(d) for d in self.ahead(days or self.horizon)])

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: Path) -> StoredForecast:
        doc = json.loads(path.read_text())
        return cls(doc["origin"], doc["level"], doc["model"], [ForecastDay(**d) for d in doc["days"]])


class ForecastModel(mlflow.pyfunc.PythonModel):
    """The registered model: the stored forecast, checksums verified; `predict` takes a frame with a
    `days` column and answers the first max(days) days."""

    def load_context(self, context) -> None:
        verify_checksums(context.artifacts)
        self.forecast = StoredForecast.read(Path(context.artifacts[FORECAST]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.forecast.frame(int(model_input["days"].max()))
