"""The reference points: bare BentoML endpoints that parse the same body and return a constant,
with the same server options (workers, logging) as the opscore service, async as its endpoints are.

`Bare` returns its constant already serialised, the way the opscore endpoints return their answers
(orjson bytes in a Response): the framework's floor, and the reference for the throughput target.
`BareDict` returns a dict for BentoML to serialise, the idiomatic endpoint; on one user that
serialisation costs more than the opscore service's scoring does."""

from __future__ import annotations

import bentoml
from starlette.responses import Response

from service.config import SERVICE_CONFIG

CONSTANT = {"results": [{"user_id": 0, "score": 0.5}]}
CONSTANT_JSON = b'{"results":[{"user_id":0,"score":0.5}]}'


@bentoml.service(name="bare", **SERVICE_CONFIG)
class Bare:
    @bentoml.api(route="/v1/churn/score")
    async def churn(self, user_ids: list[int]) -> dict:
        return Response(CONSTANT_JSON, media_type="application/json")


@bentoml.service(name="bare_dict", **SERVICE_CONFIG)
class BareDict:
    @bentoml.api(route="/v1/churn/score")
    async def churn(self, user_ids: list[int]) -> dict:
        return CONSTANT
