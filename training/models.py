"""Model wrappers shared by training and service: fitted preprocessing, model and explanations.

Each scorer works on the float matrix of its FeatureSpec (the service's numpy hot path) and is
wrapped in an MLflow PythonModel whose artifacts carry a checksum manifest.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from training.segments import SEGMENT_COLUMNS, SegmentGrid
from training.spec import FeatureSpec

TOP_REASONS = 3
CHECKSUMS = "checksums.json"


class ArtifactError(RuntimeError):
    """A model artifact is missing or does not match the checksum written at training time."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(paths: dict[str, Path], folder: Path) -> Path:
    out = folder / CHECKSUMS
    out.write_text(json.dumps({name: sha256(p) for name, p in paths.items()}, indent=2))
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
        if sha256(path) != digest:
            raise ArtifactError(f"artifact {name} does not match its training-time checksum")


def decile_edges(scores: np.ndarray) -> list[float]:
    return [float(x) for x in np.quantile(scores, np.linspace(0.1, 0.9, 9))]


def bands(scores: np.ndarray, edges: list[float]) -> np.ndarray:
    """Decile 1 (lowest score) to 10 (highest), against the training distribution."""
    return 1 + np.searchsorted(np.asarray(edges), scores, side="right")


def top_reasons(contrib: np.ndarray, k: int = TOP_REASONS) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k contributions that push each score up the most."""
    k = min(k, contrib.shape[1])
    idx = np.argpartition(-contrib, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(contrib, idx, axis=1)
    order = np.argsort(-vals, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def reason_frame(spec: FeatureSpec, X: np.ndarray, idx: np.ndarray, vals: np.ndarray, raw: pd.DataFrame) -> pd.DataFrame:
    names = np.asarray(spec.names, dtype=object)
    out = {}
    for r in range(idx.shape[1]):
        feats = names[idx[:, r]]
        out[f"reason_{r + 1}_feature"] = feats
        out[f"reason_{r + 1}_value"] = [str(raw[f].iloc[i]) for i, f in enumerate(feats)]
        out[f"reason_{r + 1}_contribution"] = vals[:, r]
    return pd.DataFrame(out, index=raw.index)


@dataclass
class BinaryScorer:
    """A LightGBM binary classifier with deciles, SHAP reasons and segments."""

    booster: lgb.Booster
    spec: FeatureSpec
    band_edges: list[float]
    segments: SegmentGrid | None  # None when the features carry no lifecycle/value columns

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature SHAP values in log-odds (LightGBM's own TreeSHAP), bias column dropped."""
        return self.booster.predict(X, pred_contrib=True, num_threads=1)[:, :-1]

    def segment(self, X: np.ndarray) -> np.ndarray:
        col = [self.spec.names.index(c) for c in SEGMENT_COLUMNS]
        return self.segments.assign(X[:, col[0]], X[:, col[1]], X[:, col[2]])

    def save(self, folder: Path) -> dict[str, Path]:
        paths = {"booster": folder / "booster.txt", "meta": folder / "meta.json"}
        self.booster.save_model(str(paths["booster"]))
        paths["meta"].write_text(json.dumps(
            {"spec": self.spec.to_dict(), "band_edges": self.band_edges,
             "value_edges": self.segments.value_edges if self.segments else None}
        ))
        return paths

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> BinaryScorer:
        verify_checksums(artifacts)
        meta = json.loads(Path(artifacts["meta"]).read_text())
        return cls(
            booster=lgb.Booster(model_file=artifacts["booster"]),
            spec=FeatureSpec.from_dict(meta["spec"]),
            band_edges=meta["band_edges"],
            segments=SegmentGrid(meta["value_edges"]) if meta["value_edges"] is not None else None,
        )


class BinaryModel(mlflow.pyfunc.PythonModel):
    """MLflow face of BinaryScorer: a feature DataFrame in, scores, deciles, segments and reasons out."""

    def load_context(self, context) -> None:
        self.scorer = BinaryScorer.load(context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.format(self.scorer, model_input)

    @staticmethod
    def format(s: BinaryScorer, model_input: pd.DataFrame) -> pd.DataFrame:
        X = s.spec.to_matrix(model_input)
        score = s.predict(X)
        idx, vals = top_reasons(s.contributions(X))
        out = pd.DataFrame({"score": score, "band": bands(score, s.band_edges)}, index=model_input.index)
        if s.segments is not None:
            out["segment"] = s.segment(X)
        return pd.concat([out, reason_frame(s.spec, X, idx, vals, model_input)], axis=1)


def log_pyfunc(python_model: mlflow.pyfunc.PythonModel, save: callable, example: pd.DataFrame,
               output: pd.DataFrame, registered_name: str | None) -> mlflow.models.model.ModelInfo:
    """Log a PythonModel with its artifacts, their checksum manifest, signature and input example."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = save(folder)
        paths[CHECKSUMS] = write_checksums(paths, folder)
        mlflow.log_dict(json.loads(paths[CHECKSUMS].read_text()), "checksums.json")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts={k: str(v) for k, v in paths.items()},
            signature=mlflow.models.infer_signature(example, output),
            input_example=example,
            registered_model_name=registered_name,
        )
