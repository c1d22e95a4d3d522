"""The MLflow face of every scorer: a feature DataFrame in, the answer's fields as columns out.

Unlike the service, the frame keeps full precision, reports every feature's per-feature values
and by default gives the exact attributions (LightGBM's TreeSHAP, the card's lost points). Loaded with
`model_config={"reasons": "service"}` (batch scoring), its scores and reasons are the service's own:
the per-leaf decision-path attributions, which cost a fraction of TreeSHAP's.
"""

from __future__ import annotations

from typing import Literal, get_args

import mlflow
import numpy as np
import pandas as pd

from scoring.answer import Layout, segment_labels
from scoring.artifacts import ArtifactError, read_kind
from scoring.binary import BinaryScorer
from scoring.drift import read_reference
from scoring.scorecard import ScorecardScorer
from scoring.scorer import TOP_REASONS, Scorer, bands, top_reasons
from scoring.uplift import UpliftScorer

SCORERS: dict[str, type[Scorer]] = {s.kind: s for s in (BinaryScorer, UpliftScorer, ScorecardScorer)}


def load_scorer(artifacts: dict[str, str]) -> Scorer:
    """The scorer a model's artifacts describe (meta.json names its kind), checksums verified."""
    kind = read_kind(artifacts)
    if kind not in SCORERS:
        raise ArtifactError(f"model meta missing or of unknown kind {kind!r}")
    return SCORERS[kind].load(artifacts)


Reasons = Literal["exact", "service"]
# Logged with every model: MLflow lets a loader override only the keys a model was logged with.
MODEL_CONFIG: dict[str, Reasons] = {"reasons": "exact"}


def score_frame(s: Scorer, model_input: pd.DataFrame, layout: Layout | None = None,
                reasons: Reasons = "exact") -> pd.DataFrame:
    """The answer's fields for a feature DataFrame, flattened to columns in the order of `answer.FIELDS`;
    scores and reasons the exact ones, or the service's (`reasons="service"`)."""
    layout = layout or Layout.of(s)
    X = s.spec.to_matrix(model_input)
    if reasons == "service":
        score, contrib = s.score_and_reasons(X)
    else:
        score, contrib = s.predict(X), s.contributions(X)
    extras = s.extras(X)
    columns = {"score": score, "band": bands(score, layout.band_edges), "segment": segment_labels(layout, X), **extras}
    out: dict[str, np.ndarray | list] = {}
    for name in layout.fields(user_ids=False):
        if name == "reasons":
            out.update(_reason_columns(s, contrib, model_input))
        elif name in s.per_feature:
            out.update((f"{name}_{f}", extras[name][:, j]) for j, f in enumerate(s.spec.names))
        elif name == "best_arm":
            out[name] = [s.arms[b] if b >= 0 else None for b in extras[name].tolist()]
        elif name == "arms":
            out.update((f"uplift_{arm}", extras["uplift"][:, j]) for j, arm in enumerate(s.arms))
        else:
            out[name] = columns[name]
    return pd.DataFrame(out, index=model_input.index)


def _reason_columns(s: Scorer, contrib: np.ndarray, raw: pd.DataFrame) -> dict[str, np.ndarray | list]:
    """The top reasons as reason_<r>_feature / _value (as the input had it, as text) / _contribution."""
    idx, vals = top_reasons(contrib, TOP_REASONS)
    names = np.asarray(s.spec.names, dtype=object)
    raw = raw.reindex(columns=s.spec.names)  # an optional column left out reads as missing
    out: dict[str, np.ndarray | list] = {}
    for r in range(idx.shape[1]):
        feats = names[idx[:, r]]
        out[f"reason_{r + 1}_feature"] = feats
        out[f"reason_{r + 1}_value"] = [str(raw[f].iloc[i]) for i, f in enumerate(feats)]
        out[f"reason_{r + 1}_contribution"] = vals[:, r]
    return out


class ScoringModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.scorer = load_scorer(context.artifacts)  # verifies every artifact's checksum, the reference's too
        self.reference = read_reference(context.artifacts)
        self.layout = Layout.of(self.scorer)
        self.reasons: Reasons = (context.model_config or {}).get("reasons", "exact")
        if self.reasons not in get_args(Reasons):
            raise ValueError(f"model_config reasons: one of {get_args(Reasons)}")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return score_frame(self.scorer, model_input, self.layout, self.reasons)
