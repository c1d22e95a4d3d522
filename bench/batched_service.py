"""The adaptive-batching variant of single-user churn scoring, kept apart for the benchmark.

BentoML merges concurrent single-user calls into one batch (`batchable=True`); the benchmark
compares it with the plain endpoint on the same model, store, server options, keys and audit.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
from bentoml.models import BentoModel

from scoring.answer import rows
from scoring.settings import get_settings
from scoring.snapshot import Snapshot
from service.auth import RouteScopes, protect
from service.config import SERVICE_CONFIG
from service.served import load_served_model

SCOPES = RouteScopes()


@bentoml.service(name="batched", **SERVICE_CONFIG)
class Batched:
    churn_ref = BentoModel(bentoml.models.get("churn:latest").tag)
    snapshot_ref = BentoModel(bentoml.models.get("feature_snapshot:latest").tag)

    def __init__(self) -> None:
        self.snapshot = Snapshot.load(Path(self.snapshot_ref.path))
        self.model = load_served_model("churn", self.churn_ref, self.snapshot)

    # max_latency_ms well above a batch's scoring time: at 50 ms the dispatcher answered 503s.
    @bentoml.api(route=SCOPES.require("/v1/churn/score", "campaign"), batchable=True, max_batch_size=64, max_latency_ms=1000)
    def churn(self, user_ids: list[int]) -> list[dict]:
        pos, found = self.snapshot.rows(user_ids)
        answers = rows(self.model.layout, self.model.features.take(pos), 3, user_ids=user_ids)
        for uid, ok, row in zip(user_ids, found.tolist(), answers):
            if not ok:
                row.clear()
                row.update(user_id=uid, error="unknown user_id")
        return answers


protect(Batched, get_settings(), SCOPES)
