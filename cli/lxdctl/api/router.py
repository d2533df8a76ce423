"""A small router: ``router.add(method, pattern, handler, permission=..., project_param=...)``.

Patterns are paths with ``:name`` parameters (``/api/projects/:id``); a parameter matches one
path segment.  ``permission`` is ``None`` (public: the handler authenticates on its own, e.g.
signed webhooks), ``"read"``, ``"write"`` or ``"admin"``.  ``project_param`` names the path
parameter (or, with ``body:`` in front, the JSON body field) that holds the project the request
touches, so authorization happens before the handler runs.

Extensions: ``register_extension(func)`` records ``func(router)``; the server calls every
recorded function (and ``lxdctl.api.webhooks.register(router)`` if that module exists) when it
builds its router.  Job workers import the same modules (``lxdctl.api.extensions.load``), so a
``jobs.register_kind(...)`` at import time or inside ``register(router)`` is seen by both.

The handler contract: ``handler(req)`` gets a ``lxdctl.api.server.Request`` with ``method``,
``path``, ``params`` (path parameters), ``query`` (``req.q(name)``), ``headers``,
``raw_body`` (bytes, for signature checks), ``json()`` (the decoded JSON object or {}),
``client_ip``, ``principal`` (None on public routes), ``store`` (this thread's StateStore)
and ``audit(action, project, detail)``.  It returns a dict (200 JSON), a
``server.Response(status, body, headers)`` (``raw=bytes`` for non-JSON), or raises
``server.ApiError(status, message)``.  Accepted mutations on authenticated routes are audited
by the server unless the handler called ``req.audit`` itself; public routes audit their own.
"""
import re
from dataclasses import dataclass, field

PERMISSIONS = (None, "read", "write", "admin")
_PARAM_RE = re.compile(r"^:([a-z_][a-z0-9_]*)$")

_EXTENSIONS = []


def register_extension(func):
    """Record ``func(router)`` to be called when a server's router is built.  Returns ``func``."""
    if func not in _EXTENSIONS:
        _EXTENSIONS.append(func)
    return func


def extensions():
    return list(_EXTENSIONS)


@dataclass
class Route:
    method: str
    pattern: str
    handler: object
    permission: object = "read"
    project_param: object = None
    summary: str = ""
    websocket: bool = False
    body: dict = field(default_factory=dict)  # OpenAPI: {field: description} of the JSON body
    query: dict = field(default_factory=dict)  # OpenAPI: {param: description}
    segments: tuple = ()
    uploads: bool = False  # takes an application/x-lxdctl-cli body (JSON line + files), see api.uploads

    def match(self, parts):
        if len(parts) != len(self.segments):
            return None
        params = {}
        for seg, part in zip(self.segments, parts):
            if seg.startswith(":"):
                if not part:
                    return None
                params[seg[1:]] = part
            elif seg != part:
                return None
        return params


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler, permission="read", project_param=None, summary="",
            websocket=False, body=None, query=None, uploads=False):
        method = method.upper()
        if permission not in PERMISSIONS:
            raise ValueError("permission must be one of %r" % (PERMISSIONS,))
        if not pattern.startswith("/"):
            raise ValueError("a pattern starts with /")
        segments = tuple(pattern.strip("/").split("/"))
        names = [s[1:] for s in segments if s.startswith(":")]
        for seg in segments:
            if seg.startswith(":") and not _PARAM_RE.match(seg):
                raise ValueError("bad parameter %r in %s" % (seg, pattern))
        if project_param and not project_param.startswith("body:") and project_param not in names:
            raise ValueError("project_param %r is not a parameter of %s" % (project_param, pattern))
        for route in self.routes:
            if route.method == method and route.segments == segments:
                raise ValueError("route %s %s is already registered" % (method, pattern))
        route = Route(method, pattern, handler, permission, project_param, summary or (handler.__doc__ or "").strip()
                      .split("\n")[0], websocket, body or {}, query or {}, segments, uploads)
        self.routes.append(route)
        return route

    def resolve(self, method, path):
        """``(route, params)``, or ``(None, allowed_methods)`` when nothing matches."""
        parts = tuple(path.strip("/").split("/"))
        allowed = []
        best = None
        for route in self.routes:
            params = route.match(parts)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                # literal segments win over parameters: /api/jobs/recent before /api/jobs/:id
                score = sum(1 for s in route.segments if not s.startswith(":"))
                if best is None or score > best[0]:
                    best = (score, route, params)
            else:
                allowed.append(route.method)
        if best:
            return best[1], best[2]
        return None, sorted(set(allowed))
