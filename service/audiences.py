"""Lookalike audiences as the service answers them: the verified index, the seed, guards and filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoring.artifacts import verify_folder
from scoring.lookalike import Lookalike, expand
from scoring.seeds import load_seed
from scoring.snapshot import Snapshot, id_array
from service.requests import RequestError
from service.served import NotReady


def load_lookalike(folder: Path, snapshot: Snapshot) -> Lookalike:
    if not folder.exists():
        raise NotReady("no lookalike index with the snapshot: run `python -m training lookalike-index`")
    verify_folder(folder)
    lk = Lookalike.load(folder, snapshot)
    if not lk.built_on(snapshot):
        raise NotReady("lookalike index was built on another snapshot (or before indexes named theirs): "
                       "run `python -m training lookalike-index`")
    return lk


def lookalike_audience(lk: Lookalike, snapshot: Snapshot, seeds_folder: Path, abuse_scores: np.ndarray | None,
                       min_seed: int, req: dict) -> tuple[dict, np.ndarray]:
    """Resolve the seed, apply guards and filters, expand, and self-check; RequestError on bad input."""
    if req["seed_name"] is not None:
        try:
            seed_ids = id_array(load_seed(seeds_folder, req["seed_name"]))
        except KeyError as e:
            raise RequestError(404, "seed_name", str(e.args[0])) from e
        field = "seed_name"
    else:
        seed_ids, field = list(dict.fromkeys(req["seed_user_ids"])), "seed_user_ids"  # distinct, 42 apart from "42"
    rows, found = snapshot.rows(seed_ids)
    seed_rows = np.unique(rows[found])  # in id order
    if len(seed_rows) < min_seed:
        raise RequestError(400, field, f"{field}: a seed needs at least {min_seed} known users, got {len(seed_rows)} "
                                       f"({int((~found).sum())} unknown ids)")
    n = len(snapshot.ids)
    allowed = np.ones(n, dtype=bool)
    if req["city_tiers"]:
        allowed &= np.isin(snapshot.column("city_tier"), req["city_tiers"])
    if req["age_min"] is not None:
        allowed &= snapshot.column("age") >= req["age_min"]
    if req["age_max"] is not None:
        allowed &= snapshot.column("age") <= req["age_max"]
    if req["max_abuse_score"] is not None:
        if abuse_scores is None:
            raise RequestError(503, "max_abuse_score", "max_abuse_score: the abuse model is not available")
        allowed &= abuse_scores <= req["max_abuse_score"]
    pool = int(allowed.sum()) - (len(seed_rows) if req["exclude_seeds"] else 0)
    k = req["k"] or (int(round(req["share"] * n)) if req["share"] else min(10 * len(seed_rows), n // 2))
    k = max(1, min(k, pool))
    if pool <= 0:
        raise RequestError(400, "filters", "filters leave no users to choose from")
    out = expand(lk, seed_rows, k, allowed, exclude_seeds=req["exclude_seeds"],
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
