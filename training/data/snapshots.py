"""Point-in-time snapshots on disk: where they live, which dates they are taken on, and building them."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from scoring.artifacts import file_sha256
from scoring.drift import PREVIOUS_PROFILE, snapshot_profile
from scoring.plan import OPT_OUTS_FILE
from scoring.settings import Settings
from scoring.snapshot import write_mapped
from training.data import warehouse
from training.data.engine import DuckDBEngine, Engine
from training.data.schema import DEFAULT_WITHIN_DAYS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotPaths:
    root: Path

    @property
    def features(self) -> Path:
        return self.root / "features.parquet"

    @property
    def labels(self) -> Path:
        return self.root / "labels.parquet"

    @property
    def response(self) -> Path:
        return self.root / "response.parquet"

    @property
    def opt_outs(self) -> Path:
        return self.root / OPT_OUTS_FILE

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


def snapshot_paths(settings: Settings, as_of: date) -> SnapshotPaths:
    return SnapshotPaths(settings.features_dir / f"as_of={pd.Timestamp(as_of).date().isoformat()}")


@dataclass(frozen=True)
class SnapshotDates:
    train: date
    oot: date
    serving: date
    history: tuple[date, ...] = ()  # earlier training snapshots, newest first
    # Credit's out-of-time and training snapshots (newest first): its default takes 12 months to be known,
    # so they lie that much before the others (in the loan book's history before the simulated window).
    credit_oot: date | None = None
    credit_train: tuple[date, ...] = ()


def default_dates(settings: Settings, engine: Engine | None = None) -> SnapshotDates:
    """Train and out-of-time snapshots one label window apart, each with a full window after it, and up to
    `settings.history_snapshots` earlier ones (back to the first campaign) whose windows add training rows."""
    if engine is None:
        with warehouse.connect(settings) as con:
            return default_dates(settings, DuckDBEngine(con))
    end, first, first_loan = engine.data_end(), engine.first_send(), engine.first_loan()
    w = pd.Timedelta(days=settings.label_window_days)
    train = end - 2 * w
    earlier = [train - k * w for k in range(1, settings.history_snapshots + 1)]
    history = tuple(d.date() for d in earlier if first is not None and d > pd.Timestamp(first))
    credit_oot = end - w - pd.Timedelta(days=DEFAULT_WITHIN_DAYS)
    credit = [credit_oot - k * w for k in range(0, settings.credit_history_snapshots + 2)]
    credit = [d.date() for d in credit if first_loan is not None and d > pd.Timestamp(first_loan)]
    return SnapshotDates(train=train.date(), oot=(end - w).date(), serving=end.date(), history=history,
                         credit_oot=credit[0] if credit else None, credit_train=tuple(credit[1:]))


def write_manifest(paths: SnapshotPaths, as_of: date, rows: int) -> None:
    files = [p for p in (paths.features, paths.labels, paths.response, paths.opt_outs) if p.exists()]
    paths.manifest.write_text(json.dumps(
        {"as_of": pd.Timestamp(as_of).date().isoformat(), "rows": rows,
         "sha256": {p.name: file_sha256(p) for p in files}}, indent=2))


def build_snapshot(settings: Settings, as_of: date, with_labels: bool = True,
                   engine: Engine | None = None) -> SnapshotPaths:
    """Features (and labels) as of a date, computed by `engine` (DuckDB over the warehouse by default)."""
    if engine is None:
        with warehouse.connect(settings) as con:
            return build_snapshot(settings, as_of, with_labels, DuckDBEngine(con))
    paths = snapshot_paths(settings, as_of)
    paths.root.mkdir(parents=True, exist_ok=True)
    if with_labels:
        end = engine.data_end()
        if pd.Timestamp(as_of) + pd.Timedelta(days=settings.label_window_days) > end:
            raise ValueError(
                f"as-of {as_of} leaves no full {settings.label_window_days}-day label window before the data ends ({end.date()})"
            )
    rows = engine.write_features(as_of, paths.features)
    if with_labels:
        engine.labels(as_of, settings.label_window_days, end).to_parquet(paths.labels)
        engine.response(as_of, settings.label_window_days).to_parquet(paths.response, index=False)
    write_manifest(paths, as_of, rows)
    return paths


def build_serving_snapshot(settings: Settings, as_of: date, engine: Engine | None = None) -> None:
    """Features as of the end of the data, and the opt-outs in force then: what the service looks users up in."""
    if engine is None:
        with warehouse.connect(settings) as con:
            return build_serving_snapshot(settings, as_of, DuckDBEngine(con))
    paths = build_snapshot(settings, as_of, with_labels=False, engine=engine)
    engine.opt_outs(as_of).to_parquet(paths.opt_outs, index=False)
    write_manifest(paths, as_of, json.loads(paths.manifest.read_text())["rows"])
    publish_serving(paths, settings.snapshot_dir, settings.drift_rows)


def publish_serving(paths: SnapshotPaths, folder: Path, drift_rows: int) -> None:
    """Make a snapshot the serving one. The serving snapshot it replaces, if of another date, leaves its
    features' profile behind (checksummed in the manifest), so that drift between consecutive serving
    snapshots needs only the current one."""
    folder.mkdir(parents=True, exist_ok=True)
    new_as_of = json.loads(paths.manifest.read_text())["as_of"]
    if (folder / "manifest.json").exists():
        old_as_of = json.loads((folder / "manifest.json").read_text())["as_of"]
        if old_as_of != new_as_of:
            profile = snapshot_profile(old_as_of, pd.read_parquet(folder / "features.parquet"), drift_rows)
            (folder / PREVIOUS_PROFILE).write_text(json.dumps(profile))
    for p in (paths.features, paths.opt_outs, paths.manifest):
        if p.exists():
            shutil.copy2(p, folder / p.name)
    # What the service's workers map: the features as one matrix in id order (scoring.snapshot).
    extra = write_mapped(folder / paths.features.name, folder)
    if (folder / PREVIOUS_PROFILE).exists():
        extra.append(folder / PREVIOUS_PROFILE)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"].update({p.name: file_sha256(p) for p in extra})
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def built(settings: Settings, as_ofs: tuple[date, ...]) -> list[date]:
    """Snapshots that only some training reads (response's earlier ones, credit's), built on first use,
    so that `features` (and the serving path) does not pay for them."""
    for as_of in as_ofs:
        if not snapshot_paths(settings, as_of).labels.exists():
            log.info("building the snapshot as of %s for training", as_of)
            build_snapshot(settings, as_of)
    return list(as_ofs)
