"""Training and out-of-time sets per model, from the snapshots or from a user's own table."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.arms import ARMS, CONTROL
from scoring.population import Population
from scoring.settings import Settings
from scoring.vocabulary import CREDIT_FEATURES
from training.data import truth
from training.data.arm_response import ResponseTraits, arm_probabilities
from training.data.schema import DEFAULT_WITHIN_DAYS
from training.data.snapshots import SnapshotDates, built, snapshot_paths

log = logging.getLogger(__name__)

# The simulated campaign log's outcome and assignment (an arm id, or control) columns.
TARGET, ARM = "converted", "arm"
TREATED = "treated"  # the one arm of a table's treated/control experiment
ID_PATTERN = re.compile(r"(^id$|_id$|^id_)", re.IGNORECASE)
MAX_CATEGORIES = 200
# Churn's training rows: users who launched the app in the 30 days before the snapshot (churn_eligible).
CHURN_POPULATION = Population("active_days_30", 1, "users active in the 30 days before the snapshot")
# Credit's: borrowers with a loan before the snapshot, whose repayment a behaviour score reads (applicants
# new to credit get an application score, from what they declare).
CREDIT_POPULATION = Population("loan_apps_all", 1, "borrowers with a loan before the snapshot, whose repayment "
                               "a behaviour score reads")


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
    # The truth of the training rows (probability, or uplift's true effect): what the feature ceiling is fitted to.
    truth_train: np.ndarray | None = None
    exclude: set[str] = field(default_factory=set)
    # The rows of a later snapshot that the training rows stand for (drift is measured on those), when
    # the features can say: see scoring.drift.Reference.
    population: Population | None = None


def _snapshot(settings: Settings, as_of) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = snapshot_paths(settings, as_of)
    if not p.features.exists():
        raise FileNotFoundError(f"no snapshot as of {as_of}: run `python -m training features` first")
    return pd.read_parquet(p.features), pd.read_parquet(p.labels)


def churn(settings: Settings, dates: SnapshotDates) -> Dataset:
    """Users active in the 30 days before the snapshot; label: no launch in the 30 days after."""
    (f_tr, l_tr), (f_te, l_te) = _snapshot(settings, dates.train), _snapshot(settings, dates.oot)
    tr, te = l_tr[l_tr.churn_eligible].index, l_te[l_te.churn_eligible].index
    oracle = truth_train = None
    if settings.truth_dir.exists():
        users, days = truth.read_truth(settings, "users"), truth.meta(settings)["days"]

        def p_churn(as_of: date, rows: pd.Index) -> np.ndarray:
            return truth.churn_probability(users, truth.as_of_day(settings, as_of), days).reindex(rows).to_numpy()

        oracle, truth_train = p_churn(dates.oot, te), p_churn(dates.train, tr)
    return Dataset(
        "churn", f_tr.loc[tr], l_tr.loc[tr, "churn"].to_numpy(), f_te.loc[te], l_te.loc[te, "churn"].to_numpy(),
        split=f"out-of-time: train as of {dates.train}, test as of {dates.oot}",
        sources={"train": str(snapshot_paths(settings, dates.train).root), "test": str(snapshot_paths(settings, dates.oot).root)},
        oracle=oracle, truth_train=truth_train, population=CHURN_POPULATION,
    )


def held_out_by_id(ids: np.ndarray, share: float) -> np.ndarray:
    """A fixed share of users chosen by id alone, so the same in every snapshot: Knuth's multiplicative
    hash of whole-number ids, pandas' (fixed-key SipHash) of text ones."""
    if ids.dtype.kind in "iu":
        bucket = ids * 2654435761 % 1000
    else:
        bucket = pd.util.hash_array(ids.astype(str).astype(object)) % 1000
    return bucket < share * 1000


def abuse(settings: Settings, dates: SnapshotDates, test_share: float = 0.3) -> Dataset:
    """Confirmed abusers against everyone else (unconfirmed accounts are unlabelled, not clean).

    Users are split by id so the test users' confirmations were never seen in training; the test
    features come from the later snapshot.
    """
    (f_tr, l_tr), (f_te, l_te) = _snapshot(settings, dates.train), _snapshot(settings, dates.oot)
    held_out = held_out_by_id(f_te.index.to_numpy(), test_share)
    tr = f_tr.index[~np.isin(f_tr.index, f_te.index[held_out])]
    te = f_te.index[held_out]
    oracle = y_truth = truth_train = None
    if settings.truth_dir.exists():
        users = truth.read_truth(settings, "users").set_index("user_id")
        oracle, y_truth = users.p_abuse.reindex(te).to_numpy(), users.is_abuser.reindex(te).to_numpy().astype(int)
        truth_train = users.p_abuse.reindex(tr).to_numpy()
    return Dataset(
        "abuse", f_tr.loc[tr], l_tr.loc[tr, "abuse_confirmed"].to_numpy(),
        f_te.loc[te], l_te.loc[te, "abuse_confirmed"].to_numpy(),
        split=f"users held out by id ({test_share:.0%}); train as of {dates.train}, test as of {dates.oot}",
        sources={"train": str(snapshot_paths(settings, dates.train).root), "test": str(snapshot_paths(settings, dates.oot).root)},
        oracle=oracle, y_truth=y_truth, truth_train=truth_train,
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


# Labels that say which class is the event without being told: 1/0 and true/false.
OBVIOUS_LABELS = ({"0", "1"}, {"false", "true"})


def binary_target(values: pd.Series, column: str, positive: str | None = None) -> np.ndarray:
    """The 0/1 event of a label column: `positive` names the event's value; without it only 0/1 or
    true/false labels are taken, since which of two other labels is the event (a default, a churn)
    cannot be guessed. Refusals name the column and list its values."""
    if values.isna().any():
        raise ValueError(f"target column {column!r} has {int(values.isna().sum())} missing values")
    text = _label_text(values)
    if positive is None and set(text.str.lower().unique()) in OBVIOUS_LABELS:
        return text.str.lower().isin(("1", "true")).astype(int).to_numpy()
    found = sorted(text.unique())
    if len(found) != 2:
        raise ValueError(f"target column {column!r} must be binary (two values), found {found[:10]}")
    if positive is None:
        raise ValueError(f"target column {column!r} has values {found}: name the event with --positive VALUE "
                         f"(e.g. --positive {found[0]})")
    if str(positive) not in found:
        raise ValueError(f"--positive {positive!r} is not a value of target column {column!r}: values are {found}")
    return (text == str(positive)).astype(int).to_numpy()


def _label_text(values: pd.Series) -> pd.Series:
    """Labels as text: 1.0 and 1 alike, booleans as true/false."""
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "true", False: "false"}).astype(str)
    if pd.api.types.is_numeric_dtype(values) and (values % 1 == 0).all():
        return values.astype("int64").astype(str)
    return values.astype(str).str.strip()


def split_rows(df: pd.DataFrame, date_column: str | None, test_share: float, seed: int) -> tuple[np.ndarray, str]:
    """Test rows: the latest dates holding `test_share` of the rows when dated, else a random share."""
    if date_column:
        when = pd.to_datetime(df[date_column]).to_numpy()
        days = np.unique(when)
        share_from = 1 - np.searchsorted(np.sort(when), days, side="left") / len(when)
        # The latest cut that still leaves test_share of the rows on or after it.
        cut = days[share_from >= test_share][-1]
        test, split = when >= cut, f"out-of-time on {date_column}: test from {pd.Timestamp(cut).date()}"
    else:
        test = np.random.default_rng(seed).random(len(df)) < test_share
        split = f"random {test_share:.0%} held out (seed {seed})"
    if test.sum() == 0 or (~test).sum() == 0:
        raise ValueError("the split left no rows on one side; check the date column")
    return test, split


def from_table(path: Path, target: str, id_columns: list[str] | None = None, date_column: str | None = None,
               test_share: float = 0.2, seed: int = 0, positive: str | None = None) -> Dataset:
    """A flat table of features: ids and dates declared or detected, out-of-time split when dated.
    Feature columns keep their own dtypes, so that the model is trained on the table as it is."""
    df = read_table(path)
    if target not in df.columns:
        raise KeyError(f"target column {target!r} not in {path.name}: columns are {list(df.columns)}")
    y = binary_target(df[target], target, positive)
    ids = id_columns if id_columns is not None else [c for c in df.columns if ID_PATTERN.search(c) and c != target]
    date_column = date_column or detect_date_column(df.drop(columns=[target]))
    exclude = {target, *ids} | ({date_column} if date_column else set())
    for c in df.columns:
        if c not in exclude and not pd.api.types.is_numeric_dtype(df[c]) and df[c].nunique() > MAX_CATEGORIES:
            log.warning("dropping %s: %d categories is too many for a categorical feature", c, df[c].nunique())
            exclude.add(c)
    X = df.drop(columns=sorted(exclude))
    test, split = split_rows(df, date_column, test_share, seed)
    return Dataset(
        path.stem, X[~test], y[~test], X[test], y[test], split=split,
        sources={"train": str(path), "test": str(path)}, exclude=exclude,
    )


def _borrowers(f: pd.DataFrame, l: pd.DataFrame) -> pd.Index:
    """Users with a loan before the snapshot who take one in the window after it, its outcome known."""
    c = CREDIT_POPULATION
    return l.index[l.default_12m.notna() & (f[c.feature].reindex(l.index) >= c.at_least).to_numpy()]


def credit(settings: Settings, dates: SnapshotDates) -> Dataset:
    """Borrowers who take a new loan in the 30 days after each credit snapshot; label: 90+ days past due within
    12 months. Training stacks the loans after the credit training snapshots; the test rows are those after
    the out-of-time one, the last whose 12 months are over by the end of the data."""
    if dates.credit_oot is None or not dates.credit_train:
        raise ValueError(f"no credit snapshots: the loans must reach back at least {DEFAULT_WITHIN_DAYS} days and two "
                         "label windows before the data ends, for their 12-month outcomes to be known")
    train = [_snapshot(settings, d) for d in built(settings, dates.credit_train)]
    f_te, l_te = _snapshot(settings, built(settings, (dates.credit_oot,))[0])
    applied = [_borrowers(f, l) for f, l in train]
    f_tr = pd.concat([f.loc[i] for (f, _), i in zip(train, applied)])
    y_tr = np.concatenate([l.loc[i, "default_12m"].to_numpy(dtype=int) for (_, l), i in zip(train, applied)])
    te = _borrowers(f_te, l_te)
    oracle = truth_train = None
    if settings.truth_dir.exists():
        true_pd = truth.read_truth(settings, "loans").set_index("loan_id")["pd"]

        def pd_of(labels: pd.DataFrame, rows: pd.Index) -> np.ndarray:
            return true_pd.reindex(labels.loc[rows, "loan_id"].to_numpy(dtype=np.int64)).to_numpy()

        oracle = pd_of(l_te, te)
        truth_train = np.concatenate([pd_of(l, i) for (_, l), i in zip(train, applied)])
    return Dataset(
        "credit", f_tr, y_tr, f_te.loc[te], l_te.loc[te, "default_12m"].to_numpy(dtype=int),
        split=f"out-of-time: loans after {dates.credit_train[0]} and {len(train) - 1} earlier snapshots (train), "
              f"after {dates.credit_oot} (test)",
        sources={"train": str(snapshot_paths(settings, dates.credit_train[0]).root),
                 "test": str(snapshot_paths(settings, dates.credit_oot).root)},
        oracle=oracle, truth_train=truth_train, population=CREDIT_POPULATION,
        exclude=set(f_te.columns) - set(CREDIT_FEATURES),
    )


@dataclass
class UpliftData:
    """A Dataset whose X_* also hold the assignment column (excluded from the spec); y = converted.

    `arms` are the treatment arms (ids of scoring.arms, or `treated` for a table's 0/1 experiment);
    each row's arm label is one of them or `control`. Where the simulator knows it, `ds.oracle` is the
    true uplift of the arm each test row got and `truth_test` / `truth_train` every arm's true uplift
    (rows × arms), what per-arm oracle and ceiling figures need."""

    ds: Dataset
    target: str
    treatment: str
    arms: tuple[str, ...]
    truth_test: np.ndarray | None = None
    truth_train: np.ndarray | None = None

    def _labels(self, X: pd.DataFrame) -> np.ndarray:
        values = X[self.treatment]
        if self.arms == (TREATED,):
            return np.where(values.to_numpy(dtype=int) == 1, TREATED, CONTROL).astype(object)
        return values.to_numpy(dtype=object)

    @property
    def arm_train(self) -> np.ndarray:
        return self._labels(self.ds.X_train)

    @property
    def arm_test(self) -> np.ndarray:
        return self._labels(self.ds.X_test)

    @property
    def t_train(self) -> np.ndarray:
        return (self.arm_train != CONTROL).astype(int)

    @property
    def t_test(self) -> np.ndarray:
        return (self.arm_test != CONTROL).astype(int)


def treatment_arm(values: pd.Series, column: str) -> np.ndarray:
    """The 0/1 assignment; labels, missing values or other codes are refused, naming the column."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        found = sorted({str(v) for v in values[bad]})[:5]
        raise ValueError(f"treatment column {column!r} must be 0/1 (randomised assignment), found {found}")
    return numeric.to_numpy(dtype=int)


def _campaign_rows(settings: Settings, as_of: date) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Arm and user features of each campaign assignment in the window after `as_of`."""
    p = snapshot_paths(settings, as_of)
    if not p.response.exists():
        raise FileNotFoundError(f"no campaign responses as of {as_of}: run `python -m training features` first")
    resp = pd.read_parquet(p.response)
    X = resp[["user_id", ARM]].join(pd.read_parquet(p.features), on="user_id").set_index("user_id")
    return X, resp[TARGET].to_numpy(), resp[["campaign_id", "user_id"]]


def true_arm_uplift(settings: Settings, keys: pd.DataFrame) -> np.ndarray:
    """Every arm's true uplift (rows × ARMS) for campaign assignments (campaign_id, user_id), from the
    users' response traits and their contacts before each send."""
    assigned = truth.read_truth(settings, "campaign_assignments")
    traits = truth.read_truth(settings, "campaign_users")
    rows = keys.merge(assigned[["campaign_id", "user_id", "recent_contacts"]], on=["campaign_id", "user_id"],
                      how="left").merge(traits, on="user_id", how="left")
    p0, P = arm_probabilities(ResponseTraits.from_frame(rows), rows["recent_contacts"].to_numpy(), ARMS)
    return P - p0[:, None]


def response(settings: Settings, dates: SnapshotDates) -> UpliftData:
    """Campaigns sent in the 30 days after the train snapshot and after each earlier one, validated on
    those after the OOT one. Every window is a randomised log, so stacking them is unbiased; it gives
    the learners four times the rows per arm to learn from."""
    parts = [_campaign_rows(settings, d) for d in (dates.train, *built(settings, dates.history))]
    X_tr, y_tr = pd.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    X_te, y_te, keys = _campaign_rows(settings, dates.oot)
    arm_ids = tuple(a.id for a in ARMS)
    oracle = truth_test = truth_train = None
    if settings.truth_dir.exists():
        truth_test = true_arm_uplift(settings, keys)
        truth_train = true_arm_uplift(settings, pd.concat([p[2] for p in parts]))
        oracle = _assigned(truth_test, X_te[ARM].to_numpy(), arm_ids)
    roots = {k: str(snapshot_paths(settings, d).root) for k, d in (("train", dates.train), ("test", dates.oot))}
    ds = Dataset("marketing_response", X_tr, y_tr, X_te, y_te, oracle=oracle,
                 truth_train=None if truth_train is None else _assigned(truth_train, X_tr[ARM].to_numpy(), arm_ids),
                 exclude={ARM}, sources=roots,
                 split=f"out-of-time: campaigns after {dates.train} and {len(parts) - 1} earlier snapshots "
                       f"for training, after {dates.oot} for test")
    return UpliftData(ds, TARGET, ARM, arm_ids, truth_test, truth_train)


def _assigned(per_arm: np.ndarray, labels: np.ndarray, arm_ids: tuple[str, ...]) -> np.ndarray:
    """Each row's true uplift of the arm it got (0 for control)."""
    col = pd.Index(arm_ids).get_indexer(labels)
    return np.where(col >= 0, per_arm[np.arange(len(labels)), np.maximum(col, 0)], 0.0)


def response_table(path: Path, target: str, treatment: str, positive: str | None = None,
                   test_share: float = 0.2) -> UpliftData:
    """A flat randomised campaign log; ids, dates and the split as `from_table` does them."""
    ds = from_table(path, target, test_share=test_share, positive=positive)
    if treatment not in ds.X_train.columns:
        raise KeyError(f"treatment column {treatment!r} not among the feature columns of {path.name}")
    for X in (ds.X_train, ds.X_test):
        X[treatment] = treatment_arm(X[treatment], treatment)
    if ds.X_train[treatment].nunique() < 2:
        raise ValueError(f"treatment column {treatment!r} has only one arm in the training rows")
    return UpliftData(replace(ds, exclude=ds.exclude | {treatment}), target, treatment, (TREATED,))
