"""The reference point: a bare BentoML endpoint that parses the same body and returns a constant,
with the same server options (workers, logging) as the opscore service. It is async, as the
opscore endpoints are: a sync one pays a hop to a thread and makes the reference slower."""

from __future__ import annotations

import bentoml

from service.config import SERVICE_CONFIG


@bentoml.service(name="bare", **SERVICE_CONFIG)
class Bare:
    @bentoml.api(route="/v1/churn/score")
    async def churn(self, user_ids: list[int]) -> dict:
        return {"results": [{"user_id": user_ids[0], "score": 0.5}]}
