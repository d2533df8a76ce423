"""/api/jobs: a job's status, its events live over a WebSocket, cancel."""
import json
import time

from lxdctl.api import jobs, websocket
from lxdctl.api.server import ApiError, Response, Streamed


def _visible_job(req):
    try:
        job_id = int(req.params["id"])
    except ValueError:
        raise ApiError(404, "not found")
    row = jobs.get_job(job_id, req.store)
    if row is None:
        raise ApiError(404, "not found")
    if row["project"] is None and not req.principal.all_projects or \
            row["project"] is not None and not req.principal.can_see(row["project"]):
        req.handler.deny(req, 404, "job of another project")
    req.project = row["project"]
    return row


def get_job(req):
    """A job's status and result."""
    return {"job": jobs.public_job(_visible_job(req))}


def list_jobs(req):
    """Recent jobs the caller may see (``?project=``)."""
    project = req.q("project")
    rows = [jobs.public_job(r) for r in jobs.list_jobs(project, limit=int(req.q("limit", "50") or 50), store=req.store)
            if (r["project"] is None and req.principal.all_projects)
            or (r["project"] is not None and req.principal.can_see(r["project"]))]
    return {"jobs": rows}


def cancel(req):
    """Cancel a queued job, or stop a running one."""
    row = _visible_job(req)
    denied = req.principal.decide("write", row["project"])
    if denied:
        req.handler.deny(req, *denied)
    return {"job": jobs.public_job(jobs.cancel(row["id"], req.store))}


def upgrade_check(req):
    """The client's handshake key, or 400 (call it before answering, so the error is plain HTTP)."""
    try:
        return websocket.check_handshake(req.headers)
    except websocket.ProtocolError as exc:
        raise ApiError(400, "a WebSocket upgrade is needed here: %s" % exc)


def upgrade(req):
    """Answer the WebSocket handshake (or raise 400); returns the connection."""
    key = upgrade_check(req)
    req.handler.wfile.write(websocket.handshake_response(key))
    req.handler.wfile.flush()
    return websocket.Connection(req.handler.connection)


def job_events(req):
    """WebSocket: the job's events (JSON text frames) from ``?after=SEQ``, live, until it ends."""
    row = _visible_job(req)
    after = int(req.q("after", "0") or 0)

    def run(req):
        conn = upgrade(req)
        seq = after
        store = req.store
        while True:
            for event in jobs.events(row["id"], seq, store):
                seq = event["seq"]
                conn.send_text(json.dumps({"seq": seq, "at": event["at"], "event": event["event"]}, default=str))
            current = jobs.get_job(row["id"], store)
            if current["status"] in jobs.TERMINAL and not jobs.events(row["id"], seq, store, limit=1):
                conn.send_text(json.dumps({"type": "job", "status": current["status"], "error": current["error"],
                                           "result": current["result"]}, default=str))
                conn.close()
                return
            if not conn.poll_client(0.1):
                return

    return Streamed(run)


def run_playbook(req):
    """Run one of the collection's playbooks as a job: ``{"playbook": "name", "extravars": {...}}`` (admins)."""
    import os
    import re

    from lxdctl.collection import playbook_path

    body = req.json()
    name = body.get("playbook")
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,63}$", name) or \
            not os.path.isfile(playbook_path(name)):
        raise ApiError(400, "playbook must name a playbook of the collection")
    extravars = body.get("extravars") or {}
    if not isinstance(extravars, dict):
        raise ApiError(400, "extravars must be an object")
    project = extravars.get("project_name") if isinstance(extravars.get("project_name"), str) else None
    job_id = jobs.enqueue("playbook", {"playbook": name, "extravars": extravars, "check": body.get("check") is True},
                          project=project, actor=req.principal.actor, store=req.store)
    req.audit_detail["job_id"] = job_id
    return Response(202, {"job_id": job_id, "status": "queued", "job": "/api/jobs/%d" % job_id,
                          "events": "/api/jobs/%d/events" % job_id}, {"Location": "/api/jobs/%d" % job_id})


def register(router):
    router.add("POST", "/api/jobs", run_playbook, "admin", body={"playbook": "a playbook of the collection",
                                                                "extravars": "its extra vars", "check": "check mode"})
    router.add("GET", "/api/jobs", list_jobs, "read", query={"project": "only this project's jobs", "limit": "at most"})
    router.add("GET", "/api/jobs/:id", get_job, "read")
    router.add("POST", "/api/jobs/:id/cancel", cancel, "read", summary="Cancel a job (needs write on its project)")
    router.add("GET", "/api/jobs/:id/events", job_events, "read", websocket=True, query={"after": "events after SEQ"})
