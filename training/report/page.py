"""`python -m training report`: the operating metrics as of a date, queried from the warehouse, written as
one self-contained HTML page (plots embedded as base64 PNG) and logged to MLflow."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import mlflow
import pandas as pd

from scoring.settings import Settings
from training.data.warehouse import connect, data_end
from training.report import figures, sql
from training.tracking import experiment

EXPERIMENT = "operations_report"


@dataclass
class Report:
    as_of: date
    headline: dict[str, float]
    tables: dict[str, pd.DataFrame]
    plots: dict[str, bytes] = field(default_factory=dict)


def query(con: duckdb.DuckDBPyConnection, text: str, **params) -> pd.DataFrame:
    return con.execute(text, params).df()


def grids(con: duckdb.DuckDBPyConnection, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lifecycle × value grid as of the date and its change from 30 days before."""
    now = figures.grid_table(query(con, sql.GRID, day=as_of))
    before = figures.grid_table(query(con, sql.GRID, day=as_of - timedelta(days=30)))
    return now, now - before


def build(settings: Settings, as_of: date | None = None) -> Report:
    with connect(settings) as con:
        as_of = as_of or data_end(con).date()
        activity, retention = query(con, sql.ACTIVITY, as_of=as_of), query(con, sql.RETENTION, as_of=as_of)
        base = query(con, sql.BASE, as_of=as_of).iloc[0]
        grid, movement = grids(con, as_of)
        groups = query(con, sql.CAMPAIGN_GROUPS, as_of=as_of)
    camp = figures.campaigns(groups, settings.report_conversion_value)
    last = activity.iloc[-1]
    headline = {"dau": float(last["dau"]), "mau": float(last["mau"]), "dau_mau": float(last["dau"] / last["mau"]),
                "launches": float(last["launches"]), "young_share": float(base["young_share"]),
                "loan_penetration": float(base["loan_penetration"]),
                "top20_value_share": float(base["top20_value_share"])}
    tables = {"activity": activity, "retention": retention, "grid": grid, "grid_movement": movement,
              "campaigns": camp, "by_channel": figures.by(camp, "channel"), "by_incentive": figures.by(camp, "incentive")}
    plots = {"activity": figures.activity_plot(activity), "retention": figures.retention_plot(retention),
             "grid": figures.grid_plot(grid, movement), "campaigns": figures.campaign_plot(camp)}
    return Report(as_of, headline, tables, plots)


def _img(name: str, data: bytes) -> str:
    return f'<img id="plot-{name}" alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, float_format=lambda v: f"{v:,.4g}", border=0, classes="t")


def render(r: Report) -> str:
    h = r.headline
    cards = "".join(f"<div class=card><b>{html.escape(k)}</b><br>{v:,.4g}</div>" for k, v in h.items())
    sections = [
        ("Activity", "DAU: users with a launch that day; MAU: in the 30 days to it.", _img("activity", r.plots["activity"])),
        ("Retention by signup cohort", "Share of a signup month's users with a launch on day 1, 7 and 30.",
         _img("retention", r.plots["retention"]) + _table(r.tables["retention"])),
        ("Lifecycle × value grid", "Users per cell as of the date, and the change from 30 days before.",
         _img("grid", r.plots["grid"]) + _table(r.tables["grid"], True) + _table(r.tables["grid_movement"], True)),
        ("Campaigns", "Each arm against its campaign's randomised control; cost = sends × contact cost + the arm's conversions × "
         "incentive cost (scoring/arms.py); ROI of the incremental conversions. One row per campaign and arm, "
         "against the campaign's own randomised control.",
         _img("campaigns", r.plots["campaigns"]) + _table(r.tables["by_channel"]) + _table(r.tables["by_incentive"])
         + _table(r.tables["campaigns"])),
    ]
    body = "".join(f"<h2>{t}</h2><p>{html.escape(d)}</p>{c}" for t, d, c in sections)
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}.card{display:inline-block;padding:.6em 1em;"
             "margin:.3em;background:#eef}.t{border-collapse:collapse;font-size:12px;margin:1em 0}"
             ".t td,.t th{padding:2px 8px;border-bottom:1px solid #ddd}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Operating metrics as of {r.as_of}</title>"
            f"<style>{style}</style></head><body><h1>Operating metrics as of {r.as_of}</h1>"
            f"<p>Events strictly before {r.as_of}.</p>{cards}{body}</body></html>")


def write(settings: Settings, as_of: date | None = None, out: Path | None = None, log: bool = True) -> Path:
    """Build the report, write its page (default data/reports/operations_<date>.html) and log it to MLflow."""
    r = build(settings, as_of)
    out = out or settings.data_dir / "reports" / f"operations_{r.as_of}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(r))
    if log:
        mlflow.set_experiment(experiment_id=experiment(EXPERIMENT, settings))
        with mlflow.start_run(run_name=f"report_{r.as_of}"):
            mlflow.set_tag("as_of", str(r.as_of))
            mlflow.log_metrics(r.headline)
            mlflow.log_artifact(str(out), "report")
    return out
