"""/api/projects: create, list, get, update, delete (the same commands as ``lxdctl project``)."""
import json
import threading

from lxdctl.api import cli_bridge
from lxdctl.api.routes_common import accepted, bool_field, only_fields, require_project, text_field
from lxdctl.api.server import ApiError, Response

CREATE_FIELDS = ("name", "db", "cache", "runtime", "port", "domain", "ssl", "git", "branch", "cpu", "memory", "disk")
_cache = {"key": None, "rows": None, "json": None}
_cache_lock = threading.Lock()


def create_argv(body):
    """``lxdctl create NAME ...`` for a JSON body (the CLI validates every value itself)."""
    options = {}
    for field in ("db", "cache", "runtime", "port", "domain", "git", "branch", "cpu", "memory", "disk"):
        value = text_field(body, field)
        if value is not None:
            options[field] = value
    flags = ["ssl"] if bool_field(body, "ssl") else []
    return cli_bridge.argv_for(["create"], [body["name"]], options, flags)


def create(req):
    """Create a project (a background job running playbooks/project_create.yml)."""
    body = only_fields(req, CREATE_FIELDS)
    req.require("name")
    if req.store.get_project(req.project) is not None:
        raise ApiError(409, "project %s exists; use PUT /api/projects/%s to change it" % (req.project, req.project))
    return accepted(req, create_argv(body), req.project, {"project": req.project})


def _row(row):
    from lxdctl.commands.project import _list_row

    out = _list_row(row)
    out.update(git={"repository": row.get("git_repository"), "branch": row.get("git_branch")},
               limits={"cpu": row.get("cpu"), "memory": row.get("memory"), "disk": row.get("disk")},
               ssl=bool(row.get("ssl")), created_at=row.get("created_at"), updated_at=row.get("updated_at"))
    return out


def _all_rows(store):
    """Every project's public row, cached until a project changes (one cheap query checks)."""
    key = tuple(store._one("SELECT COUNT(*) AS n, MAX(id) AS i, MAX(updated_at) AS u FROM projects").values())
    with _cache_lock:
        if _cache["key"] == key:
            return _cache["rows"]
    rows = [_row(r) for r in store.list_projects()]
    with _cache_lock:
        _cache.update(key=key, rows=rows, json=None)
    return rows


def list_projects(req):
    """Every project the caller may see."""
    rows = _all_rows(req.store)
    if req.principal.all_projects and not req.q("status"):
        with _cache_lock:
            if _cache["rows"] is rows and _cache["json"] is not None:
                return Response(200, raw=_cache["json"])
        data = json.dumps({"projects": rows, "count": len(rows)}, sort_keys=True, default=str).encode("utf-8")
        with _cache_lock:
            if _cache["rows"] is rows:
                _cache["json"] = data
        return Response(200, raw=data)
    if not req.principal.all_projects:
        rows = [r for r in rows if req.principal.can_see(r["name"])]
    status = req.q("status")
    if status:
        rows = [r for r in rows if r["status"] == status]
    return {"projects": rows, "count": len(rows)}


def get_project(req):
    """One project."""
    return {"project": _row(require_project(req, req.project))}


def update(req):
    """Change a project: reruns project_create.yml with the stored settings and the given changes."""
    body = only_fields(req, [f for f in CREATE_FIELDS if f != "name"])
    row = require_project(req, req.project)
    merged = {"name": row["name"], "runtime": row.get("runtime"), "port": row.get("port"),
              "domain": row.get("domain"), "ssl": bool(row.get("ssl")), "git": row.get("git_repository"),
              "branch": row.get("git_branch"), "cpu": row.get("cpu"), "memory": row.get("memory"),
              "disk": row.get("disk"), "db": {"postgresql": "postgres"}.get(row.get("db_type"), row.get("db_type")),
              "cache": row.get("cache_type")}
    merged = dict((k, v) for k, v in merged.items() if v not in (None, "", "none"))
    merged.update(body)
    return accepted(req, create_argv(merged), req.project, {"project": req.project})


def delete(req):
    """Delete a project and everything it owns (``?keep_data=true`` keeps its data)."""
    require_project(req, req.project)
    flags = ["yes"] + (["keep-data"] if (req.q("keep_data") or "").lower() in ("1", "true", "yes") else [])
    return accepted(req, cli_bridge.argv_for(["delete"], [req.project], None, flags), req.project,
                    {"project": req.project})


def register(router):
    router.add("POST", "/api/projects", create, "write", "body:name", body=dict(
        (f, "as `lxdctl create --%s`" % f) for f in CREATE_FIELDS))
    router.add("GET", "/api/projects", list_projects, "read", query={"status": "only projects in this status"})
    router.add("GET", "/api/projects/:id", get_project, "read", "id")
    router.add("PUT", "/api/projects/:id", update, "write", "id", body=dict(
        (f, "as `lxdctl create --%s`" % f) for f in CREATE_FIELDS if f != "name"))
    router.add("DELETE", "/api/projects/:id", delete, "write", "id", query={"keep_data": "true keeps the data"})
    router.add("POST", "/api/containers", create, "write", "body:name", summary="Create a project (its container)",
               body=dict((f, "as `lxdctl create --%s`" % f) for f in CREATE_FIELDS))
