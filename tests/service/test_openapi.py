"""The OpenAPI document on a toy service: BentoML's endpoints and a mounted FastAPI app's routes, each with
the bearer requirement of its scopes, the open ones with none."""

from __future__ import annotations

import bentoml
import orjson
from fastapi import FastAPI

from service.auth import RouteScopes
from service.openapi import SCHEME, document

SCOPES = RouteScopes()
extra = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@extra.get(SCOPES.require("/v2/things", "risk").removeprefix("/v2"))
async def things() -> dict:
    return {}


@bentoml.service(name="toy")
@bentoml.asgi_app(extra, path="/v2")
class Toy:
    @bentoml.api(route=SCOPES.require("/v2/score", "campaign"))
    def score(self, x: int = 0) -> int:
        return x


def test_every_operation_says_whether_it_needs_a_key_and_which_scopes():
    spec = orjson.loads(orjson.dumps(document(Toy, SCOPES)))  # as served: text keys only
    assert spec["openapi"].startswith("3.1") and spec["components"]["securitySchemes"][SCHEME]["scheme"] == "bearer"
    ops = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    assert ops["/v2/score", "post"]["security"] == [{SCHEME: ["campaign"]}]
    assert ops["/v2/things", "get"]["security"] == [{SCHEME: ["risk"]}]
    assert ops["/schema.json", "get"]["security"] == [{SCHEME: []}]  # no declared scopes: any valid key
    for path in ("/livez", "/readyz", "/metrics", "/", "/docs.json", "/static_content/{asset}"):
        assert ops[path, "get"]["security"] == [], path
    assert {"401", "403", "413", "429"} <= set(ops["/v2/score", "post"]["responses"])
    assert {"401", "403"} <= set(ops["/v2/things", "get"]["responses"]) and "413" not in ops["/v2/things", "get"]["responses"]
