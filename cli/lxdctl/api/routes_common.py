"""Helpers shared by the route modules."""
from lxdctl.api import cli_bridge, db, jobs
from lxdctl.api.server import ApiError, Response


def accepted(req, argv, project, summary=None):
    """Enqueue the CLI command ``argv`` as a job; answer 202 with its id at once."""
    job_id = jobs.enqueue("cli", {"argv": argv}, project=project, actor=req.principal.actor, store=req.store)
    req.audit_detail["job_id"] = job_id
    body = {"job_id": job_id, "status": "queued", "job": "/api/jobs/%d" % job_id,
            "events": "/api/jobs/%d/events" % job_id}
    if summary:
        body.update(summary)
    return Response(202, body, {"Location": "/api/jobs/%d" % job_id})


def only_fields(req, allowed):
    body = req.json()
    if req.body is not None and not isinstance(req.body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown field(s): %s; known: %s" % (", ".join(unknown), ", ".join(sorted(allowed))))
    return body


def text_field(body, name):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ApiError(400, "%s must be text" % name)
    value = str(value)
    if any(ord(ch) < 32 for ch in value):
        raise ApiError(400, "%s must be one line" % name)
    return value


def bool_field(body, name):
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, "%s must be true or false" % name)
    return value


def require_project(req, name):
    row = req.store.get_project(name)
    if row is None:
        raise ApiError(404, "not found")
    return row


def run_sync(argv, timeout=120):
    """Run a read-only CLI command and return ``(exit_code, stdout, stderr)``."""
    proc, rfd = cli_bridge.spawn(argv, events=False)
    out = {"stdout": b"", "stderr": b""}

    def on_chunk(name, data):
        if len(out[name]) < cli_bridge.OUTPUT_LIMIT:
            out[name] += data

    rc = cli_bridge.stream(proc, rfd, on_chunk)
    return rc, out["stdout"].decode("utf-8", "replace"), out["stderr"].decode("utf-8", "replace")


__all__ = ["accepted", "only_fields", "text_field", "bool_field", "require_project", "run_sync", "db"]
