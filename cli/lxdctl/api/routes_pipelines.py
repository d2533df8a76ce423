"""/api/pipelines: create (``lxdctl pipeline create``), trigger (job kind ``pipeline`` of the
pipelines code) and status (the state)."""
import importlib.util

from lxdctl.api import cli_bridge, jobs
from lxdctl.api.routes_common import accepted, only_fields, require_project, text_field
from lxdctl.api.server import ApiError, Response

UNAVAILABLE = "pipelines are not available on this server (no \"pipeline\" job kind is installed)"


def create(req):
    """Register a project's pipeline: ``{"project", "file", "branch", "notify_slack", "notify_discord"}``
    (``file``: the pipeline file's path inside the repository)."""
    body = only_fields(req, ("project", "file", "branch", "notify_slack", "notify_discord"))
    req.require("project")
    require_project(req, req.project)
    if importlib.util.find_spec("lxdctl.commands.pipeline") is None:
        raise ApiError(501, UNAVAILABLE)
    options = dict((k.replace("_", "-"), text_field(body, k)) for k in ("file", "branch", "notify_slack",
                                                                         "notify_discord"))
    return accepted(req, cli_bridge.argv_for(["pipeline", "create"], [req.project], options), req.project)


def trigger(req):
    """Run a project's pipeline: ``{"branch", "commit"}`` (both optional); 202 with the run and job."""
    body = only_fields(req, ("branch", "commit"))
    require_project(req, req.project)
    if not jobs.has_kind("pipeline") or importlib.util.find_spec("lxdctl.pipelines.run") is None:
        raise ApiError(501, UNAVAILABLE)
    from lxdctl.pipelines import run as runmod

    if req.store.list_pipelines(req.project) == []:
        raise ApiError(404, "project %s has no pipeline (POST /api/pipelines first)" % req.project)
    try:
        row = runmod.queue_run(req.project, branch=text_field(body, "branch"), commit=text_field(body, "commit"),
                               trigger="api", store=req.store)
    except runmod.RunError as exc:
        raise ApiError(400, str(exc))
    job_id = jobs.enqueue("pipeline", {"project": req.project, "run_id": row["id"], "run": row["run_number"]},
                          project=req.project, actor=req.principal.actor, store=req.store)
    req.audit_detail["job_id"] = job_id
    return Response(202, {"job_id": job_id, "status": "queued", "run": row["run_number"],
                          "job": "/api/jobs/%d" % job_id, "events": "/api/jobs/%d/events" % job_id},
                    {"Location": "/api/jobs/%d" % job_id})


def status(req):
    """A project's pipelines and their latest runs."""
    require_project(req, req.project)
    out = []
    for pipe in req.store.list_pipelines(req.project):
        runs = req.store.list_pipeline_runs(req.project, pipe["name"], limit=int(req.q("runs", "5") or 5))
        out.append({"name": pipe["name"], "last_status": pipe["last_status"], "last_run_at": pipe["last_run_at"],
                    "created_at": pipe["created_at"],
                    "runs": [dict((k, r.get(k)) for k in ("run_number", "status", "started_at", "completed_at",
                                                            "artifacts")) for r in runs]})
    return {"project": req.project, "pipelines": out}


def register(router):
    router.add("POST", "/api/pipelines", create, "write", "body:project",
               body={"project": "the project", "file": "the pipeline file in the repository", "branch": "git branch",
                     "notify_slack": "webhook URL", "notify_discord": "webhook URL"})
    router.add("POST", "/api/pipelines/:id/trigger", trigger, "write", "id", body={"branch": "git branch",
                                                                                    "commit": "git commit"})
    router.add("GET", "/api/pipelines/:id/status", status, "read", "id", query={"runs": "runs per pipeline (5)"})
