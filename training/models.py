"""Model wrappers shared by training and service: fitted preprocessing, model and explanations.

Each scorer works on the float matrix of its FeatureSpec (the service's numpy hot path) and is
wrapped in an MLflow PythonModel whose artifacts carry a checksum manifest.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Protocol
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from training.explain import LeafAttribution
from training.features import file_sha256
from training.segments import SEGMENT_COLUMNS, SegmentGrid
from training.spec import FeatureSpec

TOP_REASONS = 3
CHECKSUMS = "checksums.json"


class ArtifactError(RuntimeError):
    """A model artifact is missing or does not match the checksum written at training time."""


def write_checksums(paths: dict[str, Path], folder: Path) -> Path:
    out = folder / CHECKSUMS
    out.write_text(json.dumps({name: file_sha256(p) for name, p in paths.items()}, indent=2))
    return out


def verify_checksums(artifacts: dict[str, str]) -> None:
    """Raise ArtifactError naming the first artifact that is missing or altered."""
    if CHECKSUMS not in artifacts or not Path(artifacts[CHECKSUMS]).exists():
        raise ArtifactError("checksum manifest missing")
    expected = json.loads(Path(artifacts[CHECKSUMS]).read_text())
    for name, digest in expected.items():
        path = Path(artifacts.get(name, ""))
        if not path.is_file():
            raise ArtifactError(f"artifact {name} missing")
        if file_sha256(path) != digest:
            raise ArtifactError(f"artifact {name} does not match its training-time checksum")


def decile_edges(scores: np.ndarray) -> list[float]:
    return [float(x) for x in np.quantile(scores, np.linspace(0.1, 0.9, 9))]


def round_to(x: np.ndarray, decimals: int) -> np.ndarray:
    """np.round(x, decimals) bit for bit (numpy rounds by this multiply, rint, divide), without
    its dispatch, which costs ~5 µs: most of the time on a single user's handful of values."""
    scale = 10.0**decimals
    y = np.multiply(x, scale, dtype=np.float64)
    np.rint(y, out=y)
    y /= scale
    return y


def band_edges(edges: list[float]) -> np.ndarray:
    """Decile edges as `bands` compares them (rounded: see there); precompute for repeated calls."""
    return round_to(np.asarray(edges, dtype=np.float64), 9)


def bands(scores: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Decile 1 (lowest score) to 10 (highest), against the training distribution.

    Scores are rounded first: edges are training scores themselves (LightGBM's predict), and the
    service's sigmoid of the same raw score (numpy's exp, not LightGBM's) may differ in the last bit.
    An ndarray of edges is taken as already prepared by `band_edges`.
    """
    edges = edges if isinstance(edges, np.ndarray) else band_edges(edges)
    return 1 + np.searchsorted(edges, round_to(scores, 9), side="right")


def top_reasons(contrib: np.ndarray, k: int = TOP_REASONS) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k contributions that push each score up the most, largest first
    (ties: the lower column first).

    A stable sort for a handful of rows (fewest numpy calls); k passes of argmax for batches,
    5x faster there than argpartition and a sort. Both break ties alike.
    """
    k = min(k, contrib.shape[1])
    rows = np.arange(len(contrib))
    if len(contrib) <= 8:
        idx = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        return idx, contrib[rows[:, None], idx]
    work = contrib.copy()
    idx = np.empty((len(work), k), dtype=np.int64)
    vals = np.empty((len(work), k), dtype=contrib.dtype)
    for r in range(k):
        best = work.argmax(axis=1)
        idx[:, r], vals[:, r] = best, work[rows, best]
        work[rows, best] = -np.inf
    return idx, vals


def reason_frame(spec: FeatureSpec, X: np.ndarray, idx: np.ndarray, vals: np.ndarray, raw: pd.DataFrame) -> pd.DataFrame:
    names = np.asarray(spec.names, dtype=object)
    out = {}
    for r in range(idx.shape[1]):
        feats = names[idx[:, r]]
        out[f"reason_{r + 1}_feature"] = feats
        out[f"reason_{r + 1}_value"] = [str(raw[f].iloc[i]) for i, f in enumerate(feats)]
        out[f"reason_{r + 1}_contribution"] = vals[:, r]
    return pd.DataFrame(out, index=raw.index)


class Scorer(Protocol):
    """What every served model offers the service's numpy hot path (and the pyfunc below).

    `predict` gives the headline score (a probability, or the uplift for response); `contributions`
    gives per-feature contributions where positive pushes the score up (the reasons);
    `extras` gives model-specific columns (P(treated), points, PD, points per feature...).
    """

    kind: ClassVar[str]
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...

    # Optional: reason_contributions(X), a cheaper attribution the service prefers on its hot path
    # (see training.explain), and score_and_reasons(X, threads) -> (score, that attribution) in one pass.

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]: ...

    def save(self, folder: Path) -> dict[str, Path]: ...

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> Scorer: ...


def segment_columns(scorer: Scorer) -> tuple[int, ...] | None:
    """Where the segment grid's inputs sit in the scorer's matrix; None when it has no grid."""
    if scorer.segments is None:
        return None
    return tuple(scorer.spec.names.index(c) for c in SEGMENT_COLUMNS)


def segment(scorer: Scorer, X: np.ndarray, columns: tuple[int, ...] | None = None) -> np.ndarray | None:
    columns = columns or segment_columns(scorer)
    if columns is None:
        return None
    tenure, silent, value = columns
    return scorer.segments.assign(X[:, tenure], X[:, silent], X[:, value])


def segments_for(spec: FeatureSpec, features: pd.DataFrame) -> SegmentGrid | None:
    return SegmentGrid.fit(features) if all(c in spec.names for c in SEGMENT_COLUMNS) else None


def write_meta(folder: Path, kind: str, spec: FeatureSpec, band_edges: list[float],
               segments: SegmentGrid | None, **extra) -> Path:
    path = folder / "meta.json"
    path.write_text(json.dumps({"kind": kind, "spec": spec.to_dict(), "band_edges": band_edges,
                                "value_edges": segments.value_edges if segments else None, **extra}))
    return path


def read_meta(artifacts: dict[str, str]) -> tuple[dict, FeatureSpec, SegmentGrid | None]:
    verify_checksums(artifacts)
    meta = json.loads(Path(artifacts["meta"]).read_text())
    grid = SegmentGrid(meta["value_edges"]) if meta["value_edges"] is not None else None
    return meta, FeatureSpec.from_dict(meta["spec"]), grid


@dataclass
class BinaryScorer:
    """A LightGBM binary classifier with deciles, SHAP reasons and segments."""

    kind: ClassVar[str] = "binary"
    booster: lgb.Booster
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None  # None when the features carry no lifecycle/value columns

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature SHAP values in log-odds (LightGBM's own TreeSHAP), bias column dropped."""
        return self.booster.predict(X, pred_contrib=True, num_threads=1)[:, :-1]

    def extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    @cached_property
    def _paths(self) -> LeafAttribution:
        return LeafAttribution(self.booster)

    def reason_contributions(self, X: np.ndarray) -> np.ndarray:
        """Decision-path attributions: the serving hot path's cheap stand-in for TreeSHAP."""
        return self._paths(X)

    def score_and_reasons(self, X: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Probability and path attributions from a single pass over the trees."""
        raw, contrib = self._paths.raw_and_contributions(X, threads)
        return 1.0 / (1.0 + np.exp(-raw)), contrib

    def score_and_reasons_one(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """`score_and_reasons` of one row (1-D), bit for bit, in the fewest numpy calls."""
        raw, contrib = self._paths.raw_and_contributions_one(x)
        return 1.0 / (1.0 + float(np.exp(-raw))), contrib  # numpy's exp, as the batch; + and / are IEEE alike

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {"booster": folder / "booster.txt"}
        self.booster.save_model(str(paths["booster"]))
        paths["meta"] = write_meta(folder, self.kind, self.spec, self.band_edges, self.segments)
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> BinaryScorer:
        meta, spec, grid = read_meta(artifacts)
        return cls(lgb.Booster(model_file=artifacts["booster"]), spec, meta["band_edges"], grid)


def load_scorer(artifacts: dict[str, str]) -> Scorer:
    """The scorer a model's artifacts describe (meta.json names its kind)."""
    kind = json.loads(Path(artifacts["meta"]).read_text())["kind"] if Path(artifacts.get("meta", "")).is_file() else None
    if kind == "binary":
        return BinaryScorer.load(artifacts)
    if kind == "uplift":
        from training.uplift import UpliftScorer

        return UpliftScorer.load(artifacts)
    if kind == "scorecard":
        from training.scorecard import ScorecardScorer

        return ScorecardScorer.load(artifacts)
    raise ArtifactError(f"model meta missing or of unknown kind {kind!r}")


def score_frame(s: Scorer, model_input: pd.DataFrame) -> pd.DataFrame:
    """Scores, deciles, segment, model-specific columns and top reasons for a feature DataFrame."""
    X = s.spec.to_matrix(model_input)
    score = s.predict(X)
    out = pd.DataFrame({"score": score, "band": bands(score, s.band_edges)}, index=model_input.index)
    seg = segment(s, X)
    if seg is not None:
        out["segment"] = seg
    for name, values in s.extras(X).items():
        if values.ndim == 2:  # per-feature values, e.g. scorecard points
            for j, f in enumerate(s.spec.names):
                out[f"{name}_{f}"] = values[:, j]
        else:
            out[name] = values
    idx, vals = top_reasons(s.contributions(X))
    return pd.concat([out, reason_frame(s.spec, X, idx, vals, model_input)], axis=1)


class ScoringModel(mlflow.pyfunc.PythonModel):
    """MLflow face of every scorer: a feature DataFrame in, scores, deciles, segments and reasons out."""

    def load_context(self, context) -> None:
        self.scorer = load_scorer(context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return score_frame(self.scorer, model_input)


def log_scorer(scorer: Scorer, example: pd.DataFrame, registered_name: str | None) -> mlflow.models.model.ModelInfo:
    """Log a scorer as a pyfunc with its artifacts, their checksum manifest, signature and input example."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = scorer.save(folder)
        paths[CHECKSUMS] = write_checksums(paths, folder)
        mlflow.log_dict(json.loads(paths[CHECKSUMS].read_text()), "checksums.json")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=ScoringModel(),
            artifacts={k: str(v) for k, v in paths.items()},
            signature=mlflow.models.infer_signature(example, score_frame(scorer, example)),
            input_example=example,
            registered_model_name=registered_name,
        )
