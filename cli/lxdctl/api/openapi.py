"""The OpenAPI 3 document, generated from the router's table (so it never drifts)."""
import re

from lxdctl import __version__


def document(router):
    paths = {}
    for route in router.routes:
        path = re.sub(r":([a-z_][a-z0-9_]*)", r"{\1}", route.pattern)
        op = {
            "summary": route.summary or route.pattern,
            "operationId": "%s_%s" % (route.method.lower(), re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")),
            "responses": {"200": {"description": "OK"}},
            "x-permission": route.permission or "public",
        }
        if route.permission is not None:
            op["security"] = [{"bearer": []}, {"session": []}]
            op["responses"].update({"401": {"description": "no or bad credentials"},
                                    "403": {"description": "not allowed"},
                                    "404": {"description": "not found, or outside the caller's projects"},
                                    "429": {"description": "rate limited (Retry-After)"}})
        else:
            op["security"] = []
        if route.websocket:
            op["x-websocket"] = True
            op["responses"]["101"] = {"description": "WebSocket: JSON text frames"}
        params = [{"name": s[1:], "in": "path", "required": True, "schema": {"type": "string"}}
                  for s in route.segments if s.startswith(":")]
        params += [{"name": q, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for q, d in route.query.items()]
        if params:
            op["parameters"] = params
        if route.body:
            op["requestBody"] = {"content": {"application/json": {"schema": {
                "type": "object", "properties": dict((k, {"description": v}) for k, v in route.body.items())}}}}
        if route.method in ("POST", "PUT", "DELETE"):
            op["responses"]["202"] = {"description": "accepted: {job_id}"}
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "lxdctl API", "version": __version__},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an lxdctl API token"},
            "session": {"type": "apiKey", "in": "cookie", "name": "lxdctl_session"}}},
    }


def register(router):
    def openapi_json(req):
        """This document."""
        return document(router)

    router.add("GET", "/api/openapi.json", openapi_json, "read")
