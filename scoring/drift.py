"""Population drift: a compact reference distribution per column (kept beside each model at training
time) and the population stability index (PSI) of a later population against it.

A numeric column is cut at the reference's deciles (ties collapse into fewer bins; a constant
column is one bin); a categorical column has a bin per training category. Missing values are a bin
of their own, and so are categories the reference never saw ("unseen"). A bin empty on either
side counts as EPS, so that a value appearing or vanishing gives a large, finite PSI.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.artifacts import ArtifactError, file_sha256
from scoring.population import Population
from scoring.scorer import Scorer
from scoring.snapshot import Snapshot
from scoring.spec import numbers
from scoring.vocabulary import NOT_FEATURES

BINS = 10
# The artifact name (and file stem) of a logged model's reference.
REFERENCE = "reference"
# Beside the serving snapshot: the profile of the one it replaced, for drift between the two.
PREVIOUS_PROFILE = "previous_profile.json"
EPS = 1e-4
# The usual reading of PSI: below 0.1 stable, up to 0.25 a moderate shift, above it significant.
BANDS = ((0.1, "stable"), (0.25, "moderate"), (float("inf"), "significant"))
BAND_TEXT = {"stable": "psi < 0.1", "moderate": "0.1 <= psi < 0.25", "significant": "psi >= 0.25"}


def band(psi: float) -> str:
    return next(name for bound, name in BANDS if psi < bound)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Σ (actual − expected) · ln(actual / expected) over bins of shares, empty bins counted as EPS."""
    e, a = np.maximum(expected, EPS), np.maximum(actual, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Profile:
    """One column's reference: numeric bin edges or categories, and the share of rows in each bin,
    then the missing share (and, for categories, an unseen share of 0)."""

    shares: list[float]
    edges: list[float] | None = None  # numeric: inner edges; bin i holds edges[i-1] <= x < edges[i]
    categories: list[str] | None = None

    def shares_of(self, values: pd.Series) -> np.ndarray:
        """The shares of `values` in this profile's bins, in the order of `shares`."""
        n = max(len(values), 1)
        if self.categories is None:
            x = numbers(values).to_numpy(dtype=np.float64, na_value=np.nan)
            missing = ~np.isfinite(x)
            counts = np.bincount(np.searchsorted(self.edges, x[~missing], side="right"),
                                 minlength=len(self.edges) + 1)
            return np.append(counts, missing.sum()) / n
        text = values.astype("string")
        missing = text.isna().to_numpy()
        codes = pd.Categorical(text, categories=self.categories).codes
        counts = np.bincount(codes[codes >= 0], minlength=len(self.categories))
        return np.append(counts, [missing.sum(), (~missing & (codes < 0)).sum()]) / n

    def with_shares_of(self, values: pd.Series) -> Profile:
        """This profile's bins with the shares of `values`: how a reference is made."""
        return Profile([float(s) for s in self.shares_of(values)], self.edges, self.categories)

    @property
    def missing_share(self) -> float:
        return self.shares[-2] if self.categories is not None else self.shares[-1]


def numeric_profile(values: pd.Series, bins: int = BINS) -> Profile:
    x = numbers(values).to_numpy(dtype=np.float64, na_value=np.nan)
    finite = x[np.isfinite(x)]
    inner = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if len(finite) else np.array([])
    edges = [float(v) for v in np.unique(inner)]
    return Profile([], edges=edges).with_shares_of(values)


def categorical_profile(values: pd.Series, categories: list[str]) -> Profile:
    return Profile([], categories=list(categories)).with_shares_of(values)


@dataclass(frozen=True)
class ColumnDrift:
    psi: float
    band: str
    missing_share: float
    reference_missing_share: float
    unseen_share: float | None  # categorical columns only


def compare(profile: Profile, values: pd.Series) -> ColumnDrift:
    actual = profile.shares_of(values)
    value = psi(np.asarray(profile.shares), actual)
    unseen = float(actual[-1]) if profile.categories is not None else None
    missing = float(actual[-2] if profile.categories is not None else actual[-1])
    return ColumnDrift(round(value, 6), band(value), round(missing, 6), round(profile.missing_share, 6),
                       None if unseen is None else round(unseen, 6))


def profile_frame(frame: pd.DataFrame, categorical: dict[str, list[str]] | None = None) -> dict[str, Profile]:
    """Every column's profile; categorical ones are those named (with their categories) or, when
    none are named, the non-numeric ones (with the categories found)."""
    if categorical is None:
        categorical = {c: sorted(str(v) for v in frame[c].dropna().unique()) for c in frame.columns
                       if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))}
    return {c: categorical_profile(frame[c], categorical[c]) if c in categorical else numeric_profile(frame[c])
            for c in frame.columns}


def compare_frame(profiles: dict[str, Profile], frame: pd.DataFrame) -> dict[str, ColumnDrift]:
    """Drift of each profiled column the frame has (an uplift model's offer is not in a snapshot)."""
    return {c: compare(p, frame[c]) for c, p in profiles.items() if c in frame.columns}


@dataclass(frozen=True)
class Reference:
    """What a model was trained on, compactly: its features' and its score's profiles.

    `fixed` columns are set before scoring on both sides (an uplift model scored for one offer) and
    not profiled; `population` restricts a later snapshot to the rows the training rows stand for
    (churn trains on users active in the 30 days before: active_days_30 at least 1)."""

    rows: int
    source: str
    features: dict[str, Profile]
    score: Profile
    fixed: dict[str, str | int | float] = field(default_factory=dict)
    population: Population | None = None

    def members(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.population is None:
            return frame
        return frame[self.population.contains(numbers(frame[self.population.feature]))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Reference:
        return cls(d["rows"], d["source"], {k: Profile(**v) for k, v in d["features"].items()},
                   Profile(**d["score"]), dict(d.get("fixed", {})),
                   Population.from_dict(d.get("population")))


def read_reference(artifacts: dict[str, str]) -> Reference | None:
    """A logged model's reference (its checksum is verified with the model's), None for a model logged
    before references were kept."""
    path = artifacts.get(REFERENCE)
    return Reference.from_dict(json.loads(Path(path).read_text())) if path else None


def model_scores(scorer: Scorer, frame: pd.DataFrame, fixed: dict) -> np.ndarray:
    """The model's score of every row, with the fixed columns set (columns the frame lacks are missing)."""
    return scorer.predict(scorer.spec.to_matrix(frame.reindex(columns=scorer.spec.names).assign(**fixed)))


def build_reference(scorer: Scorer, frame: pd.DataFrame, source: str, fixed: dict | None = None,
                    population: Population | None = None) -> Reference:
    """The reference of a model's training rows (raw features as training read them)."""
    fixed = dict(fixed or {})
    names = [n for n in scorer.spec.names if n not in fixed]
    features = profile_frame(frame[names], {c: v for c, v in scorer.spec.categorical.items() if c in names})
    score = numeric_profile(pd.Series(model_scores(scorer, frame, fixed)))
    return Reference(len(frame), source, features, score, fixed, population)


def sample(frame: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most max_rows rows, a fixed random choice: deciles need no more (two samples of one population
    differ by a PSI of about (bins - 1) / rows: 2e-4 at 50k rows, against a first band at 0.1), and a
    10M-user snapshot is scored in seconds rather than minutes."""
    return frame if len(frame) <= max_rows else frame.iloc[sample_rows(len(frame), max_rows, seed)]


def sample_frame(snapshot: Snapshot, max_rows: int) -> pd.DataFrame:
    """`sample` of a snapshot, reading only the rows it keeps."""
    return snapshot.take_frame(sample_rows(len(snapshot.ids), max_rows))


def sample_rows(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """The rows `sample` keeps of n, in order."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))


def column_rows(drifts: dict[str, ColumnDrift]) -> list[dict]:
    return [{"feature": name, **asdict(d)} for name, d in drifts.items()]


def model_drift(scorer: Scorer, reference: Reference, frame: pd.DataFrame) -> dict:
    """A model's score and features on a snapshot against its training reference."""
    rows = reference.members(frame)
    score = compare(reference.score, pd.Series(model_scores(scorer, rows, reference.fixed)))
    return {"reference_rows": reference.rows, "reference": reference.source, "rows_compared": len(rows),
            "population": asdict(reference.population) if reference.population else None, "fixed": reference.fixed,
            "score": asdict(score), "features": column_rows(compare_frame(reference.features, rows))}


def snapshot_profile(as_of: str, frame: pd.DataFrame, max_rows: int) -> dict:
    """A serving snapshot's features, profiled so that the next one can be compared with it."""
    features = sample(frame, max_rows).drop(columns=[c for c in frame.columns if c in NOT_FEATURES])
    return {"as_of": as_of, "rows": len(frame), "features": {k: asdict(p) for k, p in profile_frame(features).items()}}


def read_previous(folder: Path, manifest: dict) -> dict | None:
    """The previous serving snapshot's profile kept in `folder`, checked against the manifest; None
    when this is the first serving snapshot."""
    path = folder / PREVIOUS_PROFILE
    if not path.exists():
        return None
    if file_sha256(path) != manifest["sha256"].get(PREVIOUS_PROFILE):
        raise ArtifactError(f"{PREVIOUS_PROFILE} does not match its manifest checksum")
    return json.loads(path.read_text())


def report(as_of: str, frame: pd.DataFrame, models: dict[str, tuple[dict, Scorer, Reference | None]],
           previous: dict | None, max_rows: int) -> dict:
    """Every model's score and features on the serving snapshot against its training reference, and
    the snapshot's features against the previous serving snapshot's where there is one."""
    frame = sample(frame, max_rows)
    out = {}
    for name, (identity, scorer, reference) in models.items():
        out[name] = {**identity, **(model_drift(scorer, reference, frame) if reference else
                                    {"reference": None, "note": "logged before references were kept: retrain"})}
    consecutive = None
    if previous is not None:
        profiles = {k: Profile(**v) for k, v in previous["features"].items()}
        consecutive = {"previous_as_of": previous["as_of"], "previous_rows": previous["rows"],
                       "features": column_rows(compare_frame(profiles, frame))}
    return {"snapshot_as_of": as_of, "rows_compared": len(frame), "bands": BAND_TEXT,
            "models": out, "consecutive": consecutive}
