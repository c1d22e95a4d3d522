"""What the service holds in memory: verified models, the feature snapshot, and vectorised scoring."""

from __future__ import annotations

import heapq
import json
import math
import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from training.features import file_sha256, locate
from training.models import (TOP_REASONS, BinaryScorer, Scorer, band_edges, bands, round_to, score_frame, segment,
                             segment_columns, top_reasons)

log = logging.getLogger("opscore.service")

SNAPSHOT_MODEL = "feature_snapshot"


class NotReady(RuntimeError):
    """A model or the snapshot failed to load or verify."""


@dataclass
class Snapshot:
    """Features of every user as of the snapshot date, looked up by id with a binary search."""

    as_of: str
    frame: pd.DataFrame  # indexed by user_id, sorted
    ids: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> Snapshot:
        manifest = json.loads((folder / "manifest.json").read_text())
        path = folder / "features.parquet"
        if file_sha256(path) != manifest["sha256"]["features.parquet"]:
            raise NotReady("feature snapshot does not match its manifest checksum")
        frame = pd.read_parquet(path).sort_index()
        return cls(manifest["as_of"], frame, frame.index.to_numpy())

    def rows(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return locate(self.ids, user_ids)


@dataclass
class ServedModel:
    endpoint: str
    registry_name: str
    version: str
    run_id: str
    trained_at: str
    metrics: dict[str, float]
    scorer: Scorer
    matrix: np.ndarray = field(repr=False)  # the snapshot in this model's feature order

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.registry_name, "version": self.version, "run_id": self.run_id}

    @cached_property
    def layout(self) -> Layout:
        return Layout.of(self.scorer)


@dataclass(frozen=True)
class Layout:
    """What formatting a model's answers needs, worked out once per model instead of per call
    (for a single user, these lookups were a sixth of the formatting)."""

    names: np.ndarray  # feature names as an object array, to index by the reasons' columns
    labels: dict[int, np.ndarray]  # column → category labels, for categorical features
    band_edges: np.ndarray
    segment_columns: tuple[int, ...] | None
    # The same, as plain Python values for the single-user path.
    name_list: list[str]
    label_lists: dict[int, list[str]]
    band_edge_list: list[float]

    @classmethod
    def of(cls, s: Scorer) -> Layout:
        first = len(s.spec.numeric)
        labels = {first + i: list(c) for i, c in enumerate(s.spec.categorical.values())}
        edges = band_edges(s.band_edges)
        return cls(np.asarray(s.spec.names, dtype=object), {j: np.asarray(c, dtype=object) for j, c in labels.items()},
                   edges, segment_columns(s), list(s.spec.names), labels, edges.tolist())


def load_served_model(endpoint: str, bento_model, snapshot: Snapshot) -> ServedModel:
    """Load an imported champion, verify its checksums and warm it up on the logged input example."""
    import bentoml
    import mlflow

    path = Path(bento_model.path_of("mlflow_model"))
    pyfunc = bentoml.mlflow.load_model(bento_model)  # runs load_context, which verifies checksums
    scorer = pyfunc.unwrap_python_model().scorer
    example = mlflow.models.Model.load(str(path)).load_input_example(str(path))
    if example is None or len(score_frame(scorer, example)) != len(example):
        raise NotReady(f"{endpoint}: warm-up on the logged input example failed")
    labels, meta = bento_model.info.labels, bento_model.info.metadata
    served = ServedModel(
        endpoint=endpoint, registry_name=labels["registry_name"], version=labels["version"], run_id=labels["run_id"],
        trained_at=meta.get("trained_at", ""), metrics=json.loads(meta.get("metrics", "{}")), scorer=scorer,
        # Columns the snapshot lacks (the offer of an uplift model) are NaN until a request fills them.
        matrix=scorer.spec.to_matrix(snapshot.frame.reindex(columns=scorer.spec.names)),
    )
    # The serving path too (its per-leaf attribution tables are built on first use), so that the
    # first caller does not pay for it.
    if len(score_matrix(served, scorer.spec.to_matrix(example), TOP_REASONS)) != len(example):
        raise NotReady(f"{endpoint}: warm-up of the serving path failed")
    return served


def _reasons(layout: Layout, X: np.ndarray, k: int, contrib: np.ndarray) -> list[list[dict]]:
    """Top-k (feature, value, contribution) per row, with values prepared column-wise before the dicts."""
    idx, vals = top_reasons(contrib, k)
    raw = X[np.arange(len(X))[:, None], idx]
    values = raw.astype(object)
    missing = np.isnan(raw)
    values[missing] = None
    for j, labels in layout.labels.items():
        hit = (idx == j) & ~missing
        if hit.any():
            values[hit] = labels[raw[hit].astype(int)]
    # One flat pass over all rows' reasons, then sliced per row: half the cost of a nested
    # comprehension, which pays a function call per row.
    feats = layout.names[idx].ravel().tolist()
    flat = [{"feature": f, "value": v, "contribution": c}
            for f, v, c in zip(feats, values.ravel().tolist(), round_to(vals, 6).ravel().tolist())]
    k = idx.shape[1]
    return [flat[i:i + k] for i in range(0, len(flat), k)]


def _score_and_contributions(s: Scorer, X: np.ndarray, reasons: int, threads: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The scorer's cheapest way to a score and, when asked for, its serving attributions."""
    if not reasons:
        return s.predict(X), None
    if hasattr(s, "score_and_reasons"):
        return s.score_and_reasons(X, threads)
    return s.predict(X), getattr(s, "reason_contributions", s.contributions)(X)


def _round6(x: float) -> float:
    """round_to(x, 6) on one value, bit for bit: Python's round() is rint's half-to-even, but
    returns an int, which loses the sign of a negative value rounded to zero."""
    r = round(x * 1e6) / 1e6
    return r if r else math.copysign(0.0, x)


def _score_one(model: ServedModel, x: np.ndarray, k: int, user_ids: list | None) -> dict:
    """`score_matrix` of one user of a binary model, formatted in plain Python once the trees have
    run: a single user's answer is a few dozen numbers, and numpy's per-call overhead made most of
    its cost. test_runtime holds it equal to the batch path, key for key and bit for bit."""
    s, layout = model.scorer, model.layout
    score, contrib = s.score_and_reasons(x[None, :])
    p, c, xs = float(score[0]), contrib[0].tolist(), x.tolist()
    row = {} if user_ids is None else {"user_id": user_ids[0]}
    row["score"] = _round6(p)
    row["band"] = 1 + bisect_right(layout.band_edge_list, round(p * 1e9) / 1e9)
    if layout.segment_columns is not None:
        tenure, silent, value = (xs[j] for j in layout.segment_columns)
        row["segment"] = s.segments.label(tenure, silent, value)
    row["model"] = model.identity
    reasons = []
    for j in heapq.nlargest(min(k, len(c)), range(len(c)), key=c.__getitem__):  # ties: lower column first
        v = xs[j]
        if v != v:
            v = None
        elif j in layout.label_lists:
            v = layout.label_lists[j][int(v)]
        reasons.append({"feature": layout.name_list[j], "value": v, "contribution": _round6(c[j])})
    row["reasons"] = reasons
    return row


def score_matrix(model: ServedModel, X: np.ndarray, reasons: int, threads: int = 1,
                 user_ids: list | None = None) -> list[dict]:
    """Score a batch in one vectorised pass and format one result dict per row (user id first)."""
    if not len(X):  # every id unknown: LightGBM refuses an empty matrix
        return []
    if len(X) == 1 and reasons and type(model.scorer) is BinaryScorer:
        return [_score_one(model, X[0], reasons, user_ids)]
    s, layout = model.scorer, model.layout
    score, contrib = _score_and_contributions(s, X, reasons, threads)
    columns: dict[str, list] = {} if user_ids is None else {"user_id": user_ids}
    columns.update(score=round_to(score, 6).tolist(), band=bands(score, layout.band_edges).tolist())
    seg = segment(s, X, layout.segment_columns)
    if seg is not None:
        columns["segment"] = seg.tolist()
    per_feature: dict[str, np.ndarray] = {}
    for name, values in s.extras(X).items():
        if values.ndim == 2:
            per_feature[name] = values
        else:
            columns[name] = round_to(values, 6).tolist()
    reason_lists = _reasons(layout, X, reasons, contrib) if reasons else [[]] * len(X)
    keys, identity = list(columns), model.identity
    rows = [dict(zip(keys, vals), model=identity, reasons=r) for vals, r in zip(zip(*columns.values()), reason_lists)]
    for name, values in per_feature.items():
        used = [j for j in range(values.shape[1]) if np.any(values[:, j] != 0)]
        for row, vals in zip(rows, round_to(values[:, used], 3).tolist()):
            row[name] = dict(zip(layout.names[used].tolist(), vals))
    return rows


def load_lookalike(folder: Path, snapshot: Snapshot):
    from training.lookalike import Lookalike
    from training.models import CHECKSUMS, verify_checksums

    if not folder.exists():
        raise NotReady("no lookalike index with the snapshot: run `python -m training lookalike-index`")
    verify_checksums({p.name if p.name == CHECKSUMS else p.stem: str(p) for p in folder.iterdir()})
    lk = Lookalike.load(folder)
    if not np.array_equal(lk.user_ids, snapshot.ids):
        raise NotReady("lookalike index was built on another snapshot")
    return lk


class RequestError(ValueError):
    """A request the contract refuses: status and the field at fault."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field


def lookalike_audience(lk, snapshot: Snapshot, seeds_folder: Path, abuse_scores: np.ndarray | None,
                       min_seed: int, req: dict) -> tuple[dict, np.ndarray]:
    """Resolve the seed, apply guards and filters, expand, and self-check; RequestError on bad input."""
    from training.lookalike import expand
    from training.seeds import load_seed

    if req["seed_name"] is not None:
        try:
            seed_ids = load_seed(seeds_folder, req["seed_name"]).to_numpy()
        except KeyError as e:
            raise RequestError(404, "seed_name", str(e.args[0])) from e
        field = "seed_name"
    else:
        seed_ids, field = np.unique(np.asarray(req["seed_user_ids"], dtype=np.int64)), "seed_user_ids"
    rows, found = snapshot.rows(seed_ids)
    seed_rows = rows[found]
    if len(seed_rows) < min_seed:
        raise RequestError(400, field, f"{field}: a seed needs at least {min_seed} known users, got {len(seed_rows)} "
                                       f"({int((~found).sum())} unknown ids)")
    n = len(snapshot.ids)
    frame = snapshot.frame
    allowed = np.ones(n, dtype=bool)
    if req["city_tiers"]:
        allowed &= frame["city_tier"].isin(req["city_tiers"]).to_numpy()
    if req["age_min"] is not None:
        allowed &= (frame["age"] >= req["age_min"]).to_numpy()
    if req["age_max"] is not None:
        allowed &= (frame["age"] <= req["age_max"]).to_numpy()
    if req["max_abuse_score"] is not None:
        if abuse_scores is None:
            raise RequestError(503, "max_abuse_score", "max_abuse_score: the abuse model is not available")
        allowed &= abuse_scores <= req["max_abuse_score"]
    pool = int(allowed.sum()) - (len(seed_rows) if req["exclude_seeds"] else 0)
    k = req["k"] or (int(round(req["share"] * n)) if req["share"] else min(10 * len(seed_rows), n // 2))
    k = max(1, min(k, pool))
    if pool <= 0:
        raise RequestError(400, "filters", "filters leave no users to choose from")
    out = expand(lk, frame, seed_rows, k, allowed, exclude_seeds=req["exclude_seeds"],
                 protected_off=req["credit_offer"], method=req["method"])
    sims = np.round(out.similarity.astype(np.float64), 6).tolist()
    return {
        "seed": {"name": req["seed_name"], "size": int(len(seed_rows)), "unknown_ids": int((~found).sum())},
        "k": k,
        "method": req["method"],
        "protected_attributes_used": not req["credit_offer"],
        "results": [{"user_id": u, "rank": i + 1, "similarity": s} for i, (u, s) in enumerate(zip(out.ids.tolist(), sims))],
        "distinguishing_features": out.distinguishing,
        "self_check": {"heldout_share": 0.2, "recall": round(out.recall_heldout, 4),
                       "random_recall": round(out.recall_random, 4),
                       "lift": round(out.recall_heldout / max(out.recall_random, 1e-9), 2)},
        "snapshot_as_of": snapshot.as_of,
    }, seed_rows
