"""Training and out-of-time sets per model, from the snapshots or from a user's own table."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training import truth
from training.features import snapshot_paths
from training.pipeline import SnapshotDates
from training.settings import Settings

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"(^id$|_id$|^id_)", re.IGNORECASE)
MAX_CATEGORIES = 200


@dataclass
class Dataset:
    """Features and target for fitting and for the out-of-time (or held-out) check."""

    name: str
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    split: str
    sources: dict[str, str]
    oracle: np.ndarray | None = None  # true probability of the test rows, where the simulator knows it
    y_truth: np.ndarray | None = None  # full truth of the test rows where labels are partial (abuse)
    exclude: set[str] = field(default_factory=set)


def _snapshot(settings: Settings, as_of) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = snapshot_paths(settings, as_of)
    if not p.features.exists():
        raise FileNotFoundError(f"no snapshot as of {as_of}: run `python -m training features` first")
    return pd.read_parquet(p.features), pd.read_parquet(p.labels)


def history(settings: Settings, dates: SnapshotDates) -> list:
    """The earlier snapshots whose label windows add training rows, built on first use.

    Only the response and credit training read them, so `features` (and the serving path) does not
    pay for them.
    """
    from training.pipeline import build_snapshot

    for as_of in dates.history:
        if not snapshot_paths(settings, as_of).labels.exists():
            log.info("building the earlier snapshot as of %s for training", as_of)
            build_snapshot(settings, as_of)
    return list(dates.history)


def churn(settings: Settings, dates: SnapshotDates) -> Dataset:
    """Users active in the 30 days before the snapshot; label: no launch in the 30 days after."""
    (f_tr, l_tr), (f_te, l_te) = _snapshot(settings, dates.train), _snapshot(settings, dates.oot)
    tr, te = l_tr[l_tr.churn_eligible].index, l_te[l_te.churn_eligible].index
    oracle = None
    if settings.truth_dir.exists():
        users = truth.read_truth(settings, "users")
        oracle = truth.churn_probability(
            users, truth.as_of_day(settings, dates.oot), truth.meta(settings)["days"]
        ).reindex(te).to_numpy()
    return Dataset(
        "churn", f_tr.loc[tr], l_tr.loc[tr, "churn"].to_numpy(), f_te.loc[te], l_te.loc[te, "churn"].to_numpy(),
        split=f"out-of-time: train as of {dates.train}, test as of {dates.oot}",
        sources={"train": str(snapshot_paths(settings, dates.train).root), "test": str(snapshot_paths(settings, dates.oot).root)},
        oracle=oracle,
    )


def abuse(settings: Settings, dates: SnapshotDates, test_share: float = 0.3) -> Dataset:
    """Confirmed abusers against everyone else (unconfirmed accounts are unlabelled, not clean).

    Users are split by id so the test users' confirmations were never seen in training; the test
    features come from the later snapshot.
    """
    (f_tr, l_tr), (f_te, l_te) = _snapshot(settings, dates.train), _snapshot(settings, dates.oot)
    held_out = (f_te.index.to_numpy() * 2654435761 % 1000) < test_share * 1000
    tr = f_tr.index[~np.isin(f_tr.index, f_te.index[held_out])]
    te = f_te.index[held_out]
    oracle = y_truth = None
    if settings.truth_dir.exists():
        users = truth.read_truth(settings, "users").set_index("user_id").reindex(te)
        oracle, y_truth = users.p_abuse.to_numpy(), users.is_abuser.to_numpy().astype(int)
    return Dataset(
        "abuse", f_tr.loc[tr], l_tr.loc[tr, "abuse_confirmed"].to_numpy(),
        f_te.loc[te], l_te.loc[te, "abuse_confirmed"].to_numpy(),
        split=f"users held out by id ({test_share:.0%}); train as of {dates.train}, test as of {dates.oot}",
        sources={"train": str(snapshot_paths(settings, dates.train).root), "test": str(snapshot_paths(settings, dates.oot).root)},
        oracle=oracle, y_truth=y_truth,
    )


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"no table at {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: expected a .parquet or .csv file")


def detect_date_column(df: pd.DataFrame) -> str | None:
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            return c
    for c in df.columns:
        if "date" in c.lower() and not pd.api.types.is_numeric_dtype(df[c]):
            if pd.to_datetime(df[c], errors="coerce").notna().mean() > 0.95:
                return c
    return None


def from_table(path: Path, target: str, id_columns: list[str] | None = None, date_column: str | None = None,
               test_share: float = 0.2, seed: int = 0) -> Dataset:
    """A flat table of features: ids and dates declared or detected, out-of-time split when dated."""
    df = read_table(path)
    if target not in df.columns:
        raise KeyError(f"target column {target!r} not in {path.name}: columns are {list(df.columns)}")
    y = df[target]
    if y.isna().any():
        raise ValueError(f"target column {target!r} has {int(y.isna().sum())} missing values")
    values = sorted(pd.unique(y))
    if len(values) != 2:
        raise ValueError(f"target column {target!r} must be binary, found values {values[:10]}")
    y = (y == values[1]).astype(int).to_numpy()

    ids = id_columns if id_columns is not None else [c for c in df.columns if ID_PATTERN.search(c) and c != target]
    date_column = date_column or detect_date_column(df.drop(columns=[target]))
    exclude = {target, *ids} | ({date_column} if date_column else set())
    for c in df.columns:
        if c not in exclude and not pd.api.types.is_numeric_dtype(df[c]) and df[c].nunique() > MAX_CATEGORIES:
            log.warning("dropping %s: %d categories is too many for a categorical feature", c, df[c].nunique())
            exclude.add(c)
    X = df.drop(columns=sorted(exclude))
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype(str)

    if date_column:
        when = pd.to_datetime(df[date_column]).to_numpy()
        days = np.unique(when)
        share_from = 1 - np.searchsorted(np.sort(when), days, side="left") / len(when)
        # The latest cut that still leaves test_share of the rows on or after it.
        cut = days[share_from >= test_share][-1]
        test = when >= cut
        split = f"out-of-time on {date_column}: test from {pd.Timestamp(cut).date()}"
    else:
        test = np.random.default_rng(seed).random(len(df)) < test_share
        split = f"random {test_share:.0%} held out (seed {seed})"
    if test.sum() == 0 or (~test).sum() == 0:
        raise ValueError("the split left no rows on one side; check the date column")
    return Dataset(
        path.stem, X[~test], y[~test], X[test], y[test], split=split,
        sources={"train": str(path), "test": str(path)}, exclude=exclude,
    )
