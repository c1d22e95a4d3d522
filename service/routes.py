"""The route a request goes to, as its template: a label whose values are bounded by the routes the
server declares, whatever paths callers send (metrics series and audit lines are keyed by it)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Mount

# The label of a path that no route serves (a 404, or a redirect to nowhere).
UNMATCHED = "unmatched"
_CACHE = "opscore.route"  # the scope key holding the template once found
# Paths that are their own template (the fixed routes every call names), per app: matching one against
# the routes costs 10-30 µs, a lookup here well under one. Bounded by the routes, whatever is sent.
_FIXED: dict[tuple[object, str], str] = {}


def route_template(scope) -> str:
    """`/v1/churn/score`, `/static_content/{path}`, or UNMATCHED; found once per request.

    Paths are matched against the application's own routes (`scope["app"]`, set by Starlette before
    any middleware runs) as its router will; a path that the router would redirect by adding or
    removing a trailing slash takes that route's template."""
    found = scope.get(_CACHE)
    if found is None:
        app, path = scope.get("app"), scope["path"]
        found = _FIXED.get((app, path))
        if found is None:
            routes = getattr(app, "routes", ())
            found = _match(routes, scope) or _match(routes, _slash_toggled(scope)) or UNMATCHED
            if found == path:
                _FIXED[app, path] = found
        scope[_CACHE] = found
    return found


def _match(routes: list[BaseRoute], scope, prefix: str = "") -> str | None:
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if not isinstance(route, Mount):
            return prefix + route.path  # a PARTIAL match (the wrong method) still names its route
        inner = getattr(route.app, "routes", None)
        if inner is None:  # a mounted app without routes of its own (static files): one label for all of it
            return f"{prefix}{route.path}/{{path}}"
        found = _match(inner, {**scope, **child}, prefix + route.path)
        if found:
            return found
    return None


def _slash_toggled(scope) -> dict:
    path = scope.get("path", "")
    if path in ("", "/"):
        return scope
    return {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
