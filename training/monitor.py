"""`python -m training monitor`: drift of the serving snapshot against each champion's training rows
(and against the serving snapshot before it), logged to MLflow and printed as a table."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient

from scoring.drift import band, read_previous, report, sample_frame
from scoring.registry import CHAMPION, MODEL_NAMES
from scoring.settings import Settings
from scoring.snapshot import Snapshot
from training import figures
from training.tracking import NO_CHAMPION, experiment, git_commit

EXPERIMENT = "monitoring"
MARKS = {"stable": "", "moderate": " *", "significant": " **"}


def champions(client: MlflowClient) -> tuple[dict, list[str]]:
    """Each registered champion's identity, scorer and reference; and the models without one."""
    found, missing = {}, []
    for endpoint, name in MODEL_NAMES.items():
        try:
            mv = client.get_model_version_by_alias(name, CHAMPION)
        except mlflow.exceptions.MlflowException as e:
            if e.error_code not in NO_CHAMPION:
                raise
            missing.append(name)
            continue
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").unwrap_python_model()
        identity = {"name": name, "version": str(mv.version), "run_id": mv.run_id}
        found[endpoint] = (identity, model.scorer, model.reference)
    return found, missing


def measure(settings: Settings) -> tuple[dict, list[str]]:
    """The drift report of the serving snapshot (scoring.drift.report), and the models without a champion."""
    snapshot = Snapshot.load(settings.snapshot_dir)
    manifest = json.loads((settings.snapshot_dir / "manifest.json").read_text())
    models, missing = champions(MlflowClient())
    previous = read_previous(settings.snapshot_dir, manifest)
    return report(snapshot.as_of, sample_frame(snapshot, settings.drift_rows), models, previous,
                  settings.drift_rows), missing


def metrics_of(rep: dict) -> dict[str, float]:
    """Flat MLflow metrics: psi/<model>/<feature>, psi/<model>/score, missing_share/…, unseen_share/…,
    psi/previous_snapshot/<feature>."""
    out = {}
    for endpoint, d in rep["models"].items():
        if d.get("reference") is None:
            continue
        out[f"psi/{endpoint}/score"] = d["score"]["psi"]
        for f in d["features"]:
            out[f"psi/{endpoint}/{f['feature']}"] = f["psi"]
            out[f"missing_share/{endpoint}/{f['feature']}"] = f["missing_share"]
            if f["unseen_share"] is not None:
                out[f"unseen_share/{endpoint}/{f['feature']}"] = f["unseen_share"]
    for f in (rep["consecutive"] or {}).get("features", ()):
        out[f"psi/previous_snapshot/{f['feature']}"] = f["psi"]
    return out


def table(rep: dict) -> pd.DataFrame:
    """One row per feature (the score first), one PSI column per comparison, with the largest missing
    and unseen shares of the serving snapshot beside them."""
    columns: dict[str, dict[str, float]] = {}
    missing: dict[str, float] = {}
    unseen: dict[str, float] = {}
    for endpoint, d in rep["models"].items():
        if d.get("reference") is None:
            continue
        columns[endpoint] = {"(score)": d["score"]["psi"], **{f["feature"]: f["psi"] for f in d["features"]}}
        for f in d["features"]:
            missing[f["feature"]] = max(missing.get(f["feature"], 0.0), f["missing_share"])
            if f["unseen_share"] is not None:
                unseen[f["feature"]] = max(unseen.get(f["feature"], 0.0), f["unseen_share"])
    if rep["consecutive"]:
        columns["previous snapshot"] = {f["feature"]: f["psi"] for f in rep["consecutive"]["features"]}
    frame = pd.DataFrame(columns)
    frame["missing"], frame["unseen"] = pd.Series(missing), pd.Series(unseen)
    order = frame[list(columns)].max(axis=1).sort_values(ascending=False).index.drop("(score)", errors="ignore")
    return frame.loc[[i for i in ["(score)"] if i in frame.index] + list(order)]


def render(rep: dict, missing_models: list[str]) -> str:
    """The table as text: PSI with * moderate and ** significant; '-' where a model lacks the feature."""
    frame = table(rep)
    psi_cols = [c for c in frame.columns if c not in ("missing", "unseen")]
    text = pd.DataFrame({c: [("-" if pd.isna(v) else f"{v:.4f}{MARKS[band(v)]}") for v in frame[c]]
                         for c in psi_cols}, index=frame.index)
    text["missing"] = [("-" if pd.isna(v) else f"{v:.1%}") for v in frame["missing"]]
    text["unseen"] = [("-" if pd.isna(v) else f"{v:.1%}") for v in frame["unseen"]]
    head = f"drift of the serving snapshot as of {rep['snapshot_as_of']} ({rep['rows_compared']:,} rows compared)"
    if rep["consecutive"]:
        head += f"; previous serving snapshot as of {rep['consecutive']['previous_as_of']}"
    legend = "PSI: < 0.1 stable, 0.1-0.25 moderate (*), >= 0.25 significant (**)"
    lines = [head, legend, text.to_string()]
    lines += [f"{name}: no @{CHAMPION} in the registry, not measured" for name in missing_models]
    return "\n".join(lines)


def log_run(rep: dict, settings: Settings) -> str:
    """A run in the monitoring experiment: the figures as metrics, the report as JSON, the table as
    CSV, and a bar chart of PSI per feature for each comparison; the run id."""
    mlflow.set_experiment(experiment_id=experiment(EXPERIMENT, settings))
    panels = {f"{d['name']} v{d['version']}: serving vs training rows": {f["feature"]: f["psi"] for f in d["features"]}
              for d in rep["models"].values() if d.get("reference") is not None}
    if rep["consecutive"]:
        panels[f"serving vs previous serving snapshot ({rep['consecutive']['previous_as_of']})"] = {
            f["feature"]: f["psi"] for f in rep["consecutive"]["features"]}
    with mlflow.start_run(run_name=f"drift-{rep['snapshot_as_of']}") as run:
        mlflow.set_tags({"git_commit": git_commit(), "snapshot_as_of": rep["snapshot_as_of"],
                         **{f"champion.{e}": f"{d['name']} v{d['version']}" for e, d in rep["models"].items()}})
        mlflow.log_metrics(metrics_of(rep))
        mlflow.log_dict(rep, "drift/report.json")
        mlflow.log_text(table(rep).to_csv(), "drift/psi.csv")
        if panels:
            fig = figures.psi_bars(panels)
            mlflow.log_figure(fig, "plots/psi_per_feature.png")
            plt.close(fig)
        return run.info.run_id
