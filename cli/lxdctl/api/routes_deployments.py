"""Deployments: list (state) and deploy (``lxdctl deploy``, as a job)."""
from lxdctl.api import cli_bridge
from lxdctl.api.routes_common import accepted, bool_field, only_fields, require_project, text_field

DEPLOY_OPTIONS = ("branch", "commit", "repo", "canary", "to", "start_command", "health_path", "health_timeout")
DEPLOY_FLAGS = ("test", "blue_green", "promote", "abort", "rollback", "auto", "no_build")


def deploy(req):
    """Deploy a project (``lxdctl deploy`` options as fields; flags as true)."""
    body = only_fields(req, DEPLOY_OPTIONS + DEPLOY_FLAGS)
    require_project(req, req.project)
    options = dict((k.replace("_", "-"), text_field(body, k)) for k in DEPLOY_OPTIONS)
    flags = [k.replace("_", "-") for k in DEPLOY_FLAGS if bool_field(body, k)]
    return accepted(req, cli_bridge.argv_for(["deploy"], [req.project], options, flags), req.project)


def list_deployments(req):
    """A project's deployments, newest first."""
    require_project(req, req.project)
    limit = min(500, max(1, int(req.q("limit", "50") or 50)))
    return {"deployments": req.store.list_deployments(req.project, limit=limit)}


def register(router):
    router.add("POST", "/api/projects/:id/deploy", deploy, "write", "id",
               body=dict((k, "as `lxdctl deploy --%s`" % k.replace("_", "-")) for k in DEPLOY_OPTIONS + DEPLOY_FLAGS))
    router.add("GET", "/api/projects/:id/deployments", list_deployments, "read", "id", query={"limit": "at most"})
    router.add("POST", "/api/deployments", _deploy_body, "write", "body:project",
               body=dict([("project", "the project")] + [(k, "as lxdctl deploy") for k in DEPLOY_OPTIONS + DEPLOY_FLAGS]))


def _deploy_body(req):
    """Deploy a project: ``{"project": ..., deploy options}``."""
    body = dict(req.json())
    body.pop("project", None)
    req.body = body
    req.params["id"] = req.project
    return deploy(req)
