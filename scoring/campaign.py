"""A plan request carried out over the serving snapshot: audience, exclusions, caps, the plan, its rows.

What the service's workers and `python -m training plan` both run; they differ only in where the
models, the snapshot and its per-arm probabilities come from (`Planning`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.arms import ARMS, CONTACT_CHANNELS, Arm
from scoring.artifacts import ArtifactError, file_sha256
from scoring.derived import derived
from scoring.optimise import NONE
from scoring.plan import (CREDIT_INCENTIVES, OPT_OUTS_FILE, USER_VALUE_COLUMN, ArmTable, Campaign, Planned,
                          alike, arm_probabilities, plan, summary, uplift_table)
from scoring.plan_request import PlanRequest
from scoring.plans import PlanStore, StoredPlan
from scoring.segments import CELLS, grid_columns
from scoring.seeds import load_seed
from scoring.snapshot import FeatureRows, Snapshot, id_array


SEGMENT_NAMES = [str(c) for c in CELLS]
# The least plan request (`Planning.warm` names the arms).
DEFAULT_REQUEST = {"audience": {"all": True}, "send_date": "2026-01-01", "budget": 1.0}


class PlanError(ValueError):
    """A request the snapshot cannot serve as asked (an unknown seed, a model it needs missing)."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field


@dataclass
class Planning:
    """What planning needs of the snapshot, computed once: per-arm probabilities, segments, the scores
    exclusions read, opt-outs, and the identities of the models and snapshot a plan records."""

    snapshot: Snapshot
    table: ArmTable
    segments: np.ndarray  # (n,) int8: each user's cell of the lifecycle × value grid (into CELLS)
    abuse: np.ndarray | None  # (n,) abuse score
    credit_pd: np.ndarray | None  # (n,) probability of default
    opted_out: np.ndarray  # (n, channels) bool
    seeds: Path
    provenance: dict  # model versions and snapshot checksum

    def warm(self) -> None:
        """What every plan of the table's arms at their trained costs reads, computed now rather than by the first."""
        defaults = campaign_of(PlanRequest.model_validate({**DEFAULT_REQUEST, "arms": [{"arm": a.id} for a in self.table.arms]}))
        cols = self.table.columns(defaults.arms)
        for members in alike(defaults):
            self.table.likeliest(cols[members])

    @staticmethod
    def opt_out_matrix(snapshot: Snapshot, opt_outs: pd.DataFrame | None) -> np.ndarray:
        out = np.zeros((len(snapshot.ids), len(CONTACT_CHANNELS)), dtype=bool)
        if opt_outs is not None and len(opt_outs):
            pos, found = snapshot.rows(id_array(opt_outs["user_id"].to_numpy()))
            ch = opt_outs["channel"].map({c: i for i, c in enumerate(CONTACT_CHANNELS)}).to_numpy()
            out[pos[found], ch[found]] = True
        return out


def build_planning(snapshot: Snapshot, folder: Path, models: dict[str, tuple[dict, object, FeatureRows]],
                   abuse: np.ndarray | None = None, arms: tuple[Arm, ...] = ARMS, cache: Path | None = None) -> Planning:
    """Planning over a snapshot from the champions, each as (identity, scorer, how it reads the
    snapshot): the response model's probabilities for every user under each of `arms`, computed once,
    and with `cache` once for every process that plans over the same snapshot and models (scoring.derived)."""
    if "response" not in models:
        raise PlanError(503, "models", "campaign plans need the response model")
    scorer, rows = models["response"][1:]
    grid, where = scorer.segments, grid_columns(scorer.spec.names)
    if grid is None or where is None:
        raise PlanError(503, "models", "campaign plans need the response model's segment grid")

    def per_user() -> dict[str, np.ndarray]:
        n = len(snapshot.ids)
        # Arm-major, filled a chunk at a time: no float32 copy of the whole table is ever held.
        p_control, uplift_t = np.empty(n, dtype=np.float32), np.empty((len(arms), n), dtype=np.float16)
        start = 0
        for X in rows.chunks():
            p0, p = arm_probabilities(scorer, X, arms)
            p_control[start:start + len(p0)], uplift_t[:, start:start + len(p0)] = p0, uplift_table(p0, p).T
            start += len(p0)
        out = {"p_control": p_control, "uplift_t": uplift_t,
               "segments": rows.map(lambda X: grid.cell(X[:, where[0]], X[:, where[1]], X[:, where[2]]))}
        if "credit" in models:
            out["credit"] = models["credit"][2].map(models["credit"][1].predict)
        return out

    key = {"of": "planning", "snapshot": snapshot.sha256, "arms": [a.id for a in arms],
           **{e: models[e][0]["run_id"] for e in ("response", "credit") if e in models}}
    arrays = derived(cache, key, per_user) if cache is not None and snapshot.sha256 else per_user()
    p_control, uplift, segments, credit = arrays["p_control"], arrays["uplift_t"].T, arrays["segments"], arrays.get("credit")
    if abuse is None and "abuse" in models:
        abuse = models["abuse"][2].map(models["abuse"][1].predict)
    manifest = json.loads((folder / "manifest.json").read_text())
    provenance = {"models": {e: m[0] for e, m in models.items() if e in ("response", "abuse", "credit")},
                  "snapshot": {"as_of": snapshot.as_of, "sha256": manifest["sha256"]["features.parquet"]}}
    planning = Planning(snapshot, ArmTable(arms, p_control, uplift), segments, abuse, credit,
                        Planning.opt_out_matrix(snapshot, read_opt_outs(folder, manifest)), folder / "seeds",
                        provenance)
    planning.warm()
    return planning


def read_opt_outs(folder: Path, manifest: dict) -> pd.DataFrame | None:
    """The snapshot's opt-outs, checked against its manifest; None for a snapshot built before they were carried."""
    path = folder / OPT_OUTS_FILE
    if OPT_OUTS_FILE not in manifest["sha256"]:
        return None
    if not path.exists() or file_sha256(path) != manifest["sha256"][OPT_OUTS_FILE]:
        raise ArtifactError("the snapshot's opt-outs are missing or do not match the manifest checksum")
    return pd.read_parquet(path)


def audience(p: Planning, req: PlanRequest) -> tuple[np.ndarray, int]:
    """Snapshot rows of the audience (distinct, in id order) and how many ids were unknown."""
    a = req.audience
    if a.all:
        return np.arange(len(p.snapshot.ids)), 0
    if a.segments is not None:
        return np.flatnonzero(np.isin(p.segments, [SEGMENT_NAMES.index(s) for s in a.segments])), 0
    if a.seed_name is not None:
        try:
            ids = id_array(load_seed(p.seeds, a.seed_name))
        except KeyError as e:
            raise PlanError(404, "audience.seed_name", str(e.args[0])) from e
    else:
        ids = list(dict.fromkeys(a.user_ids))
    pos, found = p.snapshot.rows(ids)
    return np.unique(pos[found]), int((~found).sum())


def eligibility(p: Planning, req: PlanRequest, campaign: Campaign, rows: np.ndarray,
                held: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Which (audience user, group of alike arms) pairs may be planned (n × groups, `alike`), and users
    excluded per reason. `held`: the sends each audience user already has per channel in the contact
    window (n × channels)."""
    first = [m[0] for m in alike(campaign)]
    n, k = len(rows), len(first)
    ch = campaign.channel_index[first]
    eligible = np.ones((n, k), dtype=bool, order="F")
    excluded: dict[str, int] = {}
    ex = req.exclusions
    if ex.max_abuse_score is not None:
        if p.abuse is None:
            raise PlanError(503, "exclusions.max_abuse_score", "the abuse model is not available")
        abusive = p.abuse[rows] > ex.max_abuse_score
        eligible[abusive] = False
        excluded["abuse_score"] = int(abusive.sum())
    credit_arms = np.array([campaign.arms[i].incentive in CREDIT_INCENTIVES for i in first])
    if ex.credit_max_pd is not None and credit_arms.any():
        if p.credit_pd is None:
            raise PlanError(503, "exclusions.credit_max_pd", "the credit model is not available")
        refused = p.credit_pd[rows] > ex.credit_max_pd
        eligible[np.ix_(refused, credit_arms)] = False
        excluded["credit_not_cleared"] = int(refused.sum())
    if ex.opt_outs:
        out = p.opted_out[rows][:, ch]
        excluded["opted_out"] = int((out & eligible).any(axis=1).sum())
        eligible &= ~out
    caps = req.contact_policy.max_per_channel
    if caps:
        limit = np.array([caps.get(c, np.iinfo(np.int64).max) for c in CONTACT_CHANNELS])
        capped = (held >= limit[None, :])[:, ch]
        excluded["contact_cap"] = int((capped & eligible).any(axis=1).sum())
        eligible &= ~capped
    excluded["no_allowed_arm"] = int((~eligible.any(axis=1)).sum())
    return eligible, excluded


def held_sends(p: Planning, store: PlanStore, rows: np.ndarray, req: PlanRequest, window_days: int) -> np.ndarray:
    """Sends per audience user and channel in the contact window: the warehouse's contacts in the 30 days
    before the snapshot (its contact features), and those of stored plans the snapshot does not yet see."""
    held = np.zeros((len(rows), len(CONTACT_CHANNELS)), dtype=np.int64)
    if not req.contact_policy.max_per_channel:
        return held
    as_of = date.fromisoformat(p.snapshot.as_of)
    if (req.send_date - as_of).days < window_days:
        # The snapshot counts the 30 days before its date: a cap over the send date's window counts them all,
        # those before the window too, which errs on the side of fewer contacts.
        for i, c in enumerate(CONTACT_CHANNELS):
            if (column := f"contacts_{c}_30") in p.snapshot:
                held[:, i] = np.nan_to_num(p.snapshot.at(rows, column))
    counts = store.held_contacts(req.send_date, window_days, since=as_of)
    if len(counts):
        pos, found = p.snapshot.rows(id_array(counts["user_id"].to_numpy()))
        local = np.full(len(p.snapshot.ids), -1)
        local[rows] = np.arange(len(rows))
        at = local[pos]
        ok = found & (at >= 0)
        ch = counts["channel"].map({c: i for i, c in enumerate(CONTACT_CHANNELS)}).to_numpy()
        np.add.at(held, (at[ok], ch[ok]), counts["sends"].to_numpy()[ok])
    return held


def campaign_of(req: PlanRequest) -> Campaign:
    """The request in plain values; its holdout seed drawn now when it names none."""
    offers = req.offers()
    costs = np.array([o.costs for o in offers])
    seed = req.holdout_seed if req.holdout_seed is not None else secrets.randbits(63)
    return Campaign(tuple(o.parsed for o in offers), costs[:, 0], costs[:, 1], req.objective, req.budget,
                    dict(req.capacity), req.value_per_conversion, req.holdout_share, seed)


def make_plan(p: Planning, store: PlanStore, req: PlanRequest, window_days: int) -> tuple[StoredPlan, bool]:
    """Plan the request and store it; (the stored plan, True when made now, False when its client key had one)."""
    if req.client_key is not None and (found := store.by_key(req.client_key)) is not None:
        return found, False
    campaign = campaign_of(req)
    req = req.model_copy(update={"holdout_seed": campaign.holdout_seed})  # stored: the holdout can be redrawn
    rows, unknown = audience(p, req)
    held = held_sends(p, store, rows, req, window_days)
    eligible, excluded = eligibility(p, req, campaign, rows, held)
    user_value = p.snapshot.at(rows, USER_VALUE_COLUMN)
    planned = plan(p.table, rows, campaign, eligible, user_value)
    s = {"status": "issued", "send_date": req.send_date.isoformat(), "holdout_seed": campaign.holdout_seed, "audience_size": int(len(rows)),
         "unknown_ids": unknown, "excluded": excluded, **summary(planned, campaign, p.segments[rows], SEGMENT_NAMES),
         **p.provenance}
    return store.save(req.send_date, req.model_dump(mode="json"), s, assignment_rows(p, planned, campaign),
                      req.client_key)


def assignment_rows(p: Planning, planned: Planned, campaign: Campaign) -> pd.DataFrame:
    """One row per planned user (the holdout marked), with the arm and why; text columns as categories,
    built from codes (a whole base is a million rows)."""
    chosen = np.flatnonzero(planned.arm != NONE)
    arm = planned.arm[chosen]
    arms = campaign.arms

    def labels(codes: np.ndarray, names: list[str]) -> pd.Categorical:
        unique = list(dict.fromkeys(names))
        index = np.array([unique.index(x) for x in names], dtype=np.intp)
        return pd.Categorical.from_codes(index[codes], categories=unique)

    # Why this user and arm: the segment, and that it is the best of the arms allowed by the objective.
    why = f"; best of {len(arms)} arms by {campaign.objective}"
    return pd.DataFrame({
        "user_id": p.snapshot.ids[planned.rows[chosen]],
        "arm": labels(arm, [a.id for a in arms]),
        "channel": labels(arm, [a.channel for a in arms]),
        "window": labels(arm, [a.window for a in arms]),
        "expected_uplift": np.round(planned.uplift[chosen], 6),
        "net_value": np.round(planned.value[chosen] - planned.cost[chosen], 4),
        "reasons": labels(p.segments[planned.rows[chosen]], [f"{n}{why}" for n in SEGMENT_NAMES]),
        "holdout": planned.holdout[chosen],
    })
