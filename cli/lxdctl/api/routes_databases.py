"""/api/databases: create (``lxdctl db create``) and backup (``lxdctl db backup``)."""
from lxdctl.api import cli_bridge
from lxdctl.api.routes_common import accepted, only_fields, require_project, text_field


def create(req):
    """Add a database to a project: ``{"project": "myapp", "db": "postgres|mysql"}``."""
    body = only_fields(req, ("project", "db"))
    req.require("project", "db")
    require_project(req, req.project)
    return accepted(req, cli_bridge.argv_for(["db", "create"], [req.project], {"db": text_field(body, "db")}),
                    req.project)


def backup(req):
    """Back up a project's database now: ``{"db": "postgres", "keep": 7}`` (both optional)."""
    body = only_fields(req, ("db", "keep"))
    require_project(req, req.project)
    options = {"db": text_field(body, "db"), "keep": text_field(body, "keep")}
    return accepted(req, cli_bridge.argv_for(["db", "backup"], [req.project], options), req.project)


def list_databases(req):
    """A project's databases (never passwords)."""
    require_project(req, req.project)
    rows = req.store.list_databases(req.project)
    return {"databases": [dict((k, v) for k, v in r.items() if k != "password_encrypted") for r in rows]}


def register(router):
    router.add("POST", "/api/databases", create, "write", "body:project", body={"project": "the project",
                                                                                 "db": "postgres or mysql"})
    router.add("POST", "/api/databases/:id/backup", backup, "write", "id", body={"db": "which", "keep": "how many"})
    router.add("GET", "/api/projects/:id/databases", list_databases, "read", "id")
