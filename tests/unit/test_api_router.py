"""The API router: patterns, parameters, methods, permissions, extensions, and the OpenAPI document."""
import pytest

from lxdctl.api import openapi, router as router_module
from lxdctl.api.router import Router


def handler(req):
    """A handler."""
    return {}


def test_match_params_and_literals_win():
    r = Router()
    r.add("GET", "/api/jobs/:id", handler)
    recent = r.add("GET", "/api/jobs/recent", handler)
    route, params = r.resolve("GET", "/api/jobs/42")
    assert route.pattern == "/api/jobs/:id" and params == {"id": "42"}
    route, params = r.resolve("GET", "/api/jobs/recent")
    assert route is recent and params == {}
    assert r.resolve("GET", "/api/jobs/42/") [1] == {"id": "42"}


def test_unknown_path_and_wrong_method():
    r = Router()
    r.add("GET", "/api/projects/:id", handler)
    r.add("DELETE", "/api/projects/:id", handler, "write", "id")
    assert r.resolve("GET", "/api/nothing") == (None, [])
    assert r.resolve("POST", "/api/projects/x") == (None, ["DELETE", "GET"])
    assert r.resolve("GET", "/api/projects") == (None, [])
    assert r.resolve("GET", "/api/projects/a/b") == (None, [])
    assert r.resolve("HEAD", "/api/projects/a")[0].method == "GET"


def test_add_validates():
    r = Router()
    with pytest.raises(ValueError):
        r.add("GET", "/api/x", handler, permission="root")
    with pytest.raises(ValueError):
        r.add("GET", "/api/x/:id", handler, project_param="name")
    with pytest.raises(ValueError):
        r.add("GET", "api/x", handler)
    r.add("GET", "/api/x", handler)
    with pytest.raises(ValueError):
        r.add("GET", "/api/x", handler)
    r.add("POST", "/api/x", handler, "write", "body:project")
    assert r.add("POST", "/webhook/x", handler, None).permission is None


def test_register_extension_is_called_by_the_server(monkeypatch):
    monkeypatch.setattr(router_module, "_EXTENSIONS", [])
    seen = []

    @router_module.register_extension
    def ext(r):
        seen.append(r)
        r.add("POST", "/webhook/unit-test", handler, None)

    router_module.register_extension(ext)  # twice: still once
    from lxdctl.api.server import build_router

    built = build_router()
    assert seen == [built]
    assert built.resolve("POST", "/webhook/unit-test")[0].permission is None


def test_openapi_is_generated_from_every_route():
    from lxdctl.api.server import build_router

    built = build_router()
    doc = openapi.document(built)
    assert doc["openapi"].startswith("3.")
    ops = [(m.upper(), p) for p, item in doc["paths"].items() for m in item]
    assert len(ops) == len(built.routes)
    assert ("GET", "/api/projects/{id}") in ops and ("POST", "/api/projects") in ops
    assert doc["paths"]["/api/projects/{id}"]["get"]["parameters"][0]["name"] == "id"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
