"""/api/pipelines: create, trigger (job kind ``pipeline``, from the pipelines code) and status."""
from lxdctl.api import jobs
from lxdctl.api.routes_common import only_fields, require_project, text_field
from lxdctl.api.server import ApiError, Response


def _pipeline_job(req, payload):
    if not jobs.has_kind("pipeline"):
        raise ApiError(501, "pipelines are not available on this server (no \"pipeline\" job kind is installed)")
    job_id = jobs.enqueue("pipeline", payload, project=req.project, actor=req.principal.actor, store=req.store)
    req.audit_detail["job_id"] = job_id
    return Response(202, {"job_id": job_id, "status": "queued", "job": "/api/jobs/%d" % job_id,
                          "events": "/api/jobs/%d/events" % job_id}, {"Location": "/api/jobs/%d" % job_id})


def create(req):
    """Register a project's pipeline: ``{"project", "name", "config"}`` (config: the pipeline file's content)."""
    body = only_fields(req, ("project", "name", "config", "branch", "notify_slack", "notify_discord"))
    req.require("project")
    require_project(req, req.project)
    payload = dict(body, action="create", project=req.project)
    return _pipeline_job(req, payload)


def trigger(req):
    """Run a project's pipeline: ``{"branch", "commit"}`` (both optional)."""
    body = only_fields(req, ("branch", "commit", "name"))
    require_project(req, req.project)
    payload = {"action": "trigger", "project": req.project, "branch": text_field(body, "branch"),
               "commit": text_field(body, "commit"), "name": text_field(body, "name"), "trigger": "api"}
    return _pipeline_job(req, payload)


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
               body={"project": "the project", "name": "the pipeline", "config": "the pipeline file (text)"})
    router.add("POST", "/api/pipelines/:id/trigger", trigger, "write", "id", body={"branch": "git branch",
                                                                                    "commit": "git commit"})
    router.add("GET", "/api/pipelines/:id/status", status, "read", "id", query={"runs": "runs per pipeline (5)"})
