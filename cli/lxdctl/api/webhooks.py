"""Push webhooks: ``POST /webhook/github`` and ``POST /webhook/gitlab`` (public routes that
authenticate themselves), and the job kind ``pipeline``.

GitHub: the body's HMAC-SHA256 under the project's webhook secret must equal
``X-Hub-Signature-256`` (``sha256=<hex>``), compared in constant time.  GitLab: ``X-Gitlab-Token``
must equal that secret (constant time too).  The secret is the project's ``webhook-secret``
(``lxdctl pipeline secret NAME`` shows it).  The repository of the payload names the project:
the pipeline's ``--github`` / ``--gitlab`` from ``lxdctl pipeline setup``, or the project's git
repository URL.  A push to the configured branch queues a pipeline run (or, for a project
without a pipeline, a deploy of that branch and commit) and the answer (202) comes at once.

Answers: 401 missing or wrong signature/token; 404 unknown repository; 200 ``duplicate`` for a
delivery id seen before (``X-GitHub-Delivery`` / ``X-Gitlab-Event-UUID``), so nothing runs
twice; 200 ``pong`` for GitHub's ping; 200 ``ignored`` for other events and other branches.
"""
import hashlib
import hmac
import json
import re
from urllib.parse import parse_qs

from lxdctl.api import jobs

SECRET_NAME = "webhook-secret"
_SIG_RE = re.compile(r"^sha256=[0-9a-fA-F]{64}$")
_ZERO_SHA = "0" * 40


def _server():
    from lxdctl.api import server

    return server


def _error(status, message):
    return _server().ApiError(status, message)


def _answer(status, body):
    return _server().Response(status, body)


# --- the job kind -----------------------------------------------------------------------
def pipeline_job(payload, emit):
    """Run the queued pipeline run ``payload["run_id"]`` of ``payload["project"]``."""
    from lxdctl.pipelines import run as runmod

    def echo(text):
        if text.strip():
            emit({"type": "log", "text": text[-4000:]})

    final = runmod.execute_run(payload["project"], int(payload["run_id"]), echo=echo)
    return {"project": payload["project"], "run": payload.get("run"), "status": final,
            "exit_code": 0 if final == "success" else 1, "error": None if final == "success" else "run %s" % final}


jobs.register_kind("pipeline", pipeline_job)


# --- matching a payload to a project ----------------------------------------------------
def _norm(url):
    url = (url or "").strip().lower()
    if url.endswith(".git"):
        url = url[:-4]
    return url.rstrip("/")


def _slug_of(url):
    """``owner/repo`` of an http(s)/ssh/scp-style URL, or ''."""
    url = _norm(url)
    match = re.match(r"^(?:[a-z+]+://(?:[^@/]+@)?[^/]+/|[^@]+@[^:]+:)(.+)$", url)
    return match.group(1) if match else ""


def candidates(store, provider, slug, urls):
    """Projects whose pipeline names ``slug`` for ``provider`` or whose repository is one of ``urls``."""
    slug = (slug or "").lower()
    wanted = set(_norm(u) for u in urls if u)
    found = []
    for project in store.list_projects():
        name = project["name"]
        pipeline = store.get_pipeline(name, "default")
        triggers = (pipeline or {}).get("triggers") or {}
        repo = project.get("git_repository") or ""
        if (slug and (triggers.get(provider) or "").lower() == slug) or (repo and _norm(repo) in wanted) \
                or (slug and repo and _slug_of(repo) == slug):
            found.append((project, pipeline))
    return found


def _branch(project, pipeline):
    triggers = (pipeline or {}).get("triggers") or {}
    config = (pipeline or {}).get("config") or {}
    return triggers.get("branch") or config.get("branch") or project.get("git_branch") or "main"


def _body(req):
    raw = req.raw_body or b""
    content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip()
    try:
        if content_type == "application/x-www-form-urlencoded":
            return json.loads((parse_qs(raw.decode("utf-8")).get("payload") or ["{}"])[0])
        return json.loads(raw.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise _error(400, "the body is not valid JSON")


def _start(store, project, pipeline, branch, commit, provider, delivery):
    """Queue the pipeline run (or a deploy) and its job; the 202 answer."""
    name = project["name"]
    if pipeline is not None:
        from lxdctl.pipelines import run as runmod

        row = runmod.queue_run(name, branch=branch, commit=commit, trigger="%s push %s" % (provider, delivery),
                               store=store)
        job_id = jobs.enqueue("pipeline", {"project": name, "run_id": row["id"], "run": row["run_number"]},
                              project=name, actor="webhook:%s" % provider)
        body = {"status": "queued", "project": name, "pipeline_run": row["run_number"], "job_id": job_id,
                "branch": branch, "commit": commit}
    else:
        job_id = jobs.enqueue("cli", {"argv": ["deploy", name, "--auto", "--branch", branch, "--commit", commit]},
                              project=name, actor="webhook:%s" % provider)
        body = {"status": "queued", "project": name, "deploy": True, "job_id": job_id, "branch": branch, "commit": commit}
    store.audit("webhook:%s" % provider, "webhook.push", project=name,
                detail={"delivery": delivery, "branch": branch, "commit": commit, "job_id": job_id})
    try:
        store.update_webhook_delivery(provider, delivery, "queued")
    except Exception:  # noqa: BLE001 - the delivery's status is informative only
        pass
    return _answer(202, body)


def _first_time(store, provider, delivery, project):
    return store.record_webhook_delivery(provider, delivery, project["name"])


def _duplicate(delivery):
    return _answer(200, {"status": "duplicate", "delivery": delivery})


def _accept(req, store, provider, delivery, project, pipeline, ref, commit):
    branch = _branch(project, pipeline)
    if not isinstance(ref, str) or ref != "refs/heads/%s" % branch:
        return _answer(200, {"status": "ignored", "reason": "not a push to branch %s" % branch})
    if not isinstance(commit, str) or not re.match(r"^[0-9a-f]{40}$", commit) or commit == _ZERO_SHA:
        return _answer(200, {"status": "ignored", "reason": "the push deletes the branch or names no commit"})
    return _start(store, project, pipeline, branch, commit, provider, delivery)


# --- GitHub -----------------------------------------------------------------------------
def github(req):
    """GitHub push webhook (X-Hub-Signature-256 HMAC-SHA256 with the project's webhook secret)."""
    signature = req.headers.get("X-Hub-Signature-256") or ""
    if not signature:
        raise _error(401, "missing X-Hub-Signature-256")
    if not _SIG_RE.match(signature):
        raise _error(401, "wrong signature")
    event = req.headers.get("X-GitHub-Event") or ""
    delivery = (req.headers.get("X-GitHub-Delivery") or "").strip()
    payload = _body(req)
    if not isinstance(payload, dict):
        raise _error(400, "the body must be a JSON object")
    repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    urls = [repo.get(k) for k in ("clone_url", "html_url", "ssh_url", "git_url", "url") if isinstance(repo.get(k), str)]
    store = req.store
    found = candidates(store, "github", repo.get("full_name") if isinstance(repo.get("full_name"), str) else "", urls)
    if not found:
        raise _error(404, "unknown repository")
    match = None
    for project, pipeline in found:
        secret = store.get_secret(project["name"], SECRET_NAME)
        if secret is None:
            continue
        expected = "sha256=" + hmac.new(secret.encode("utf-8"), req.raw_body or b"", hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("ascii")):
            match = (project, pipeline)
            break
    if match is None:
        raise _error(401, "wrong signature")
    if not delivery:
        raise _error(400, "missing X-GitHub-Delivery")
    project, pipeline = match
    if not _first_time(store, "github", delivery, project):
        return _duplicate(delivery)
    if event == "ping":
        return _answer(200, {"status": "pong", "project": project["name"], "zen": payload.get("zen")})
    if event != "push":
        return _answer(200, {"status": "ignored", "reason": "event %s is not a push" % (event or "(none)")})
    return _accept(req, store, "github", delivery, project, pipeline, payload.get("ref"), payload.get("after"))


# --- GitLab -----------------------------------------------------------------------------
def gitlab(req):
    """GitLab push webhook (X-Gitlab-Token is the project's webhook secret)."""
    token = req.headers.get("X-Gitlab-Token") or ""
    if not token:
        raise _error(401, "missing X-Gitlab-Token")
    payload = _body(req)
    if not isinstance(payload, dict):
        raise _error(400, "the body must be a JSON object")
    proj = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    urls = [d.get(k) for d in (proj, repo) for k in ("git_http_url", "git_ssh_url", "web_url", "url", "homepage")
            if isinstance(d.get(k), str)]
    slug = proj.get("path_with_namespace") if isinstance(proj.get("path_with_namespace"), str) else ""
    store = req.store
    found = candidates(store, "gitlab", slug, urls)
    if not found:
        raise _error(404, "unknown repository")
    match = None
    for project, pipeline in found:
        secret = store.get_secret(project["name"], SECRET_NAME)
        if secret is not None and hmac.compare_digest(secret.encode("utf-8"), token.encode("utf-8")):
            match = (project, pipeline)
            break
    if match is None:
        raise _error(401, "wrong token")
    project, pipeline = match
    delivery = (req.headers.get("X-Gitlab-Event-UUID") or req.headers.get("Idempotency-Key") or "").strip()
    if not delivery:
        delivery = "sha256:" + hashlib.sha256(req.raw_body or b"").hexdigest()
    if not _first_time(store, "gitlab", delivery, project):
        return _duplicate(delivery)
    event = payload.get("object_kind") or ""
    if event != "push":
        return _answer(200, {"status": "ignored", "reason": "event %s is not a push" % (event or "(none)")})
    return _accept(req, store, "gitlab", delivery, project, pipeline, payload.get("ref"),
                   payload.get("checkout_sha") or payload.get("after"))


def _answered(handler):
    """Errors as plain responses: the body was read already, so nothing is left to drain."""

    def wrapper(req):
        try:
            return handler(req)
        except _server().ApiError as exc:
            return _answer(exc.status, {"error": exc.message, "status": exc.status})

    wrapper.__doc__ = handler.__doc__
    wrapper.__name__ = handler.__name__
    return wrapper


def register(router):
    """Called by the server when it builds its router (and by workers, for the job kind)."""
    jobs.register_kind("pipeline", pipeline_job)
    router.add("POST", "/webhook/github", _answered(github), permission=None,
               summary="GitHub push webhook (X-Hub-Signature-256, per-project secret)")
    router.add("POST", "/webhook/gitlab", _answered(gitlab), permission=None,
               summary="GitLab push webhook (X-Gitlab-Token, per-project secret)")
