"""BentoML's HTTP metrics labelled by route template (`service.routes`) instead of the raw path.

Why a patch: BentoML 1.4 labels its request metrics with `endpoint = scope["path"]`, so every unique
path a caller sends, with a key or without, adds series to /metrics for the life of the server
(3.9 KB per path, 1.1 MB for one 60 KB path). Its metrics middleware is the outermost one it
installs, ahead of every middleware a service may add (`add_asgi_middleware`), and no configuration
changes the label. So the class it instantiates (looked up by name in its `instruments` module each
time an app is built) is replaced by a subclass that hands it a copy of the scope whose path is the
route template, and hands the application behind it the original scope, untouched.
tests/service/test_metrics_labels.py fails if BentoML stops building its middleware from that name
or stops labelling from the scope's path.
"""

from __future__ import annotations

from bentoml._internal.server.http import instruments

from service.routes import route_template

_ORIGINAL = "opscore.original_scope"
BentoMetrics = instruments.RunnerTrafficMetricsMiddleware


class RouteLabelledMetrics(BentoMetrics):
    def __init__(self, app, **options) -> None:
        super().__init__(_OriginalScope(app), **options)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        await super().__call__({**scope, "path": route_template(scope), _ORIGINAL: scope}, receive, send)


class _OriginalScope:
    """Behind BentoML's middleware: the application gets the scope as the server made it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope.get(_ORIGINAL, scope), receive, send)


def label_metrics_by_route() -> None:
    """Make BentoML build its metrics middleware from RouteLabelledMetrics; idempotent. Call before the
    service's app is built (BentoML builds it after importing the service's module)."""
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledMetrics
