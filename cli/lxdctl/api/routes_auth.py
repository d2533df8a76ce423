"""Login (sessions with TOTP), who am I, tokens and the audit log over the API."""
from lxdctl.api import auth
from lxdctl.api.routes_common import only_fields, text_field
from lxdctl.api.server import ApiError, Response


def login(req):
    """``{"user", "password", "totp"}`` -> a session cookie (``lxdctl_session``, HttpOnly, SameSite=Strict)."""
    app = req.handler.app
    allowed, retry = app.login_limiter.check(req.client_ip)
    if not allowed:
        raise ApiError(429, "too many login attempts", {"Retry-After": str(max(1, int(retry + 0.999)))})
    body = req.json()
    session = auth.login(req.store, text_field(body, "user"), body.get("password") if isinstance(
        body.get("password"), str) else None, text_field(body, "totp"), req.client_ip)
    if session is None:
        req.handler.deny(req, 401, "wrong user, password or TOTP code")
    req.store.audit("user:%s" % body["user"], "api login", None, {"ip": req.client_ip})
    cookie = "lxdctl_session=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d" % (session, auth.SESSION_TTL)
    if req.headers.get("X-Forwarded-Proto") == "https":
        cookie += "; Secure"
    return Response(200, {"user": body["user"], "expires_in": auth.SESSION_TTL}, {"Set-Cookie": cookie})


def logout(req):
    """End this session."""
    from http.cookies import SimpleCookie

    cookie = SimpleCookie()
    cookie.load(req.headers.get("Cookie") or "")
    if "lxdctl_session" in cookie:
        auth.logout(req.store, cookie["lxdctl_session"].value)
    return Response(200, {"ok": True}, {"Set-Cookie": "lxdctl_session=; Max-Age=0; Path=/"})


def me(req):
    """Who the caller is: kind, role, projects, scope."""
    p = req.principal
    return {"actor": p.actor, "kind": p.kind, "role": p.role, "scope": p.scope,
            "projects": "*" if p.projects is None else sorted(p.projects or p.project_roles)}


def list_tokens(req):
    """Every token (never the token itself)."""
    return {"tokens": [dict((k, v) for k, v in t.items() if k != "id") for t in auth.list_tokens(req.store)]}


def create_token(req):
    """A new token: ``{"name", "role", "projects": [...] or "*", "scope": "read|write", "expires_in": seconds}``."""
    body = only_fields(req, ("name", "role", "projects", "scope", "expires_in"))
    req.require("name", "role", "projects")
    try:
        token, row = auth.create_token(req.store, body["name"], body["role"], body["projects"],
                                       body.get("scope", "write"), body.get("expires_in"), req.principal.actor)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc))
    req.audit("api token create", None, {"token_id": row["token_id"], "role": row["role"], "projects": row["projects"],
                                         "scope": row["scope"]})
    return Response(201, {"token": token, "token_id": row["token_id"], "note": "shown once; store it now"})


def revoke_token(req):
    """Revoke a token by its id."""
    if not auth.revoke_token(req.store, req.params["id"]):
        raise ApiError(404, "not found")
    return {"revoked": req.params["id"]}


def audit_all(req):
    """The audit log (``?project=``, ``?limit=``)."""
    limit = min(1000, max(1, int(req.q("limit", "100") or 100)))
    return {"audit": req.store.list_audit(req.q("project"), limit=limit)}


def audit_project(req):
    """A project's audit log."""
    limit = min(1000, max(1, int(req.q("limit", "100") or 100)))
    return {"audit": req.store.list_audit(req.project, limit=limit)}


def register(router):
    router.add("POST", "/api/login", login, None, body={"user": "name", "password": "password", "totp": "6 digits"})
    router.add("POST", "/api/logout", logout, "read")
    router.add("GET", "/api/me", me, "read")
    router.add("GET", "/api/tokens", list_tokens, "admin")
    router.add("POST", "/api/tokens", create_token, "admin", body={"name": "", "role": "", "projects": "",
                                                                   "scope": "", "expires_in": "seconds"})
    router.add("DELETE", "/api/tokens/:id", revoke_token, "admin")
    router.add("GET", "/api/audit", audit_all, "admin", query={"project": "", "limit": ""})
    router.add("GET", "/api/projects/:id/audit", audit_project, "read", "id", query={"limit": ""})
