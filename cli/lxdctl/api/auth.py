"""Tokens, users, roles, TOTP, sessions and rate limits.

* API tokens: ``lxdctl_<id>_<secret>`` (id: 8 hex, secret: 256 random bits).  Only
  ``sha256(token)`` is stored; a presented token is looked up by its id and compared with
  ``hmac.compare_digest``.  A token has a role (admin, developer, viewer), a project scope
  (a list, or ``*`` for all), a read or write scope, an optional expiry and can be revoked.
* Users: a role (``admin`` sees every project; ``developer`` / ``viewer`` only the projects
  given to them with ``lxdctl user grant``, with a per-project role), a scrypt password hash
  and an optional TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s, verified with +-1 step),
  encrypted at rest with the state key.  ``POST /api/login`` gives a session cookie (its
  sha256 stored) for the coming dashboard.
* Rate limits: token buckets per token (or session) and per client IP; ``429`` with
  ``Retry-After``.
"""
import base64
import hashlib
import hmac
import os
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field

from lxdctl.api import db

ROLES = ("admin", "developer", "viewer")
SCOPES = ("read", "write")
TOKEN_RE = re.compile(r"^lxdctl_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
SESSION_TTL = 12 * 3600
_USER_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


# --- TOTP (RFC 4226 / RFC 6238) -----------------------------------------------------
def hotp(key, counter, digits=6, digest="sha1"):
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def totp(key, at=None, step=30, digits=6, digest="sha1"):
    at = time.time() if at is None else at
    return hotp(key, int(at // step), digits, digest)


def verify_totp(key, code, at=None, step=30, digits=6, window=1):
    """Whether ``code`` is the TOTP of ``key`` at ``at`` within +-``window`` steps (constant time)."""
    code = (code or "").strip()
    if not re.match(r"^\d{%d}$" % digits, code):
        return False
    at = time.time() if at is None else at
    ok = False
    for delta in range(-window, window + 1):
        ok |= hmac.compare_digest(totp(key, at + delta * step, step, digits), code)
    return ok


def new_totp_secret():
    return base64.b32encode(os.urandom(20)).decode("ascii").rstrip("=")


def b32_key(secret):
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def otpauth_uri(user, secret, issuer="lxdctl"):
    return "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=6&period=30" % (issuer, user, secret, issuer)


# --- passwords ----------------------------------------------------------------------
def hash_password(password):
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=1 << 14, r=8, p=1, dklen=32)
    return "scrypt$16384$8$1$%s$%s" % (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def verify_password(password, stored):
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# --- tokens -------------------------------------------------------------------------
def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token():
    """``(token_id, token)``: the token is shown once; only its hash is stored."""
    token_id = secrets.token_hex(4)
    return token_id, "lxdctl_%s_%s" % (token_id, secrets.token_urlsafe(32)[:43])


def _projects_value(projects):
    if projects in (None, "*") or projects == ["*"]:
        return ["*"]
    names = db.state()._names
    return sorted(set(names.project_name(p, "project") for p in projects))


def create_token(st, name, role, projects, scope="write", expires_in=None, created_by=None):
    if role not in ROLES:
        raise ValueError("role must be one of %s" % ", ".join(ROLES))
    if scope not in SCOPES:
        raise ValueError("scope must be read or write")
    name = db.state()._one_line(name, "name")
    token_id, token = new_token()
    with st.transaction(what="create a token"):
        db.execute(st, "INSERT INTO api_tokens (token_id, token_hash, name, role, projects, scope, created_by, "
                       "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (token_id, token_hash(token), name, role, db.dumps(_projects_value(projects)), scope, created_by,
                    db.now(), db.ts_in(expires_in) if expires_in else None))
    return token, get_token(st, token_id)


TOKEN_COLUMNS = ("id", "token_id", "name", "role", "projects", "scope", "created_by", "created_at", "expires_at",
                 "revoked_at", "last_used_at")


def get_token(st, token_id):
    row = db.one(st, "SELECT %s FROM api_tokens WHERE token_id = ?" % ", ".join(TOKEN_COLUMNS), (token_id,))
    if row:
        row["projects"] = db.loads(row["projects"])
    return row


def list_tokens(st):
    out = db.rows(st, "SELECT %s FROM api_tokens ORDER BY id" % ", ".join(TOKEN_COLUMNS))
    for row in out:
        row["projects"] = db.loads(row["projects"])
    return out


def revoke_token(st, token_id):
    with st.transaction(what="revoke a token"):
        return db.execute(st, "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                          (db.now(), token_id)).rowcount > 0


@dataclass
class Principal:
    kind: str  # token | session
    ident: str  # token:<id> | user:<name>
    role: str
    projects: object = None  # None: all projects; else a set of names
    scope: str = "write"
    project_roles: dict = field(default_factory=dict)
    user_id: int = None

    @property
    def actor(self):
        return self.ident

    @property
    def all_projects(self):
        return self.projects is None

    def role_for(self, project):
        if self.kind == "session" and self.role != "admin":
            return self.project_roles.get(project)
        if self.projects is None or project in self.projects:
            return self.role
        return None

    def can_see(self, project):
        return self.role_for(project) is not None

    def decide(self, permission, project):
        """``None`` if allowed, else ``(status, reason)``: 404 hides projects outside the scope."""
        if permission is None:
            return None
        if permission == "admin":
            if self.role == "admin" and self.all_projects and self.scope == "write" and self.kind == "token" or \
                    (self.kind == "session" and self.role == "admin"):
                return None
            return 403, "this needs an admin token for all projects"
        if project is None:
            if permission == "read":
                return None
            if self.scope != "write" or self.role == "viewer":
                return 403, "this token or user may only read"
            if not self.all_projects and self.kind == "token":
                return 403, "this needs a token for all projects"
            if self.kind == "session" and self.role != "admin":
                return 403, "this needs an admin"
            return None
        role = self.role_for(project)
        if role is None:
            return 404, "no such project"
        if permission == "write" and (self.scope != "write" or role == "viewer"):
            return 403, "read-only access to project %s" % project
        return None


def authenticate_token(st, text):
    """The token's ``Principal``, or ``None`` for an unknown, wrong, expired or revoked token."""
    match = TOKEN_RE.match(text or "")
    if not match:
        return None
    row = db.one(st, "SELECT token_id, token_hash, role, projects, scope, expires_at, revoked_at FROM api_tokens "
                     "WHERE token_id = ?", (match.group(1),))
    presented = token_hash(text)
    if row is None:
        hmac.compare_digest(presented, presented)  # same work either way
        return None
    if not hmac.compare_digest(row["token_hash"], presented):
        return None
    if row["revoked_at"] or (row["expires_at"] and db.parse_ts(db.ts_text(row["expires_at"])) <=
                             db.parse_ts(db.now())):
        return None
    projects = db.loads(row["projects"]) or []
    return Principal("token", "token:%s" % row["token_id"], row["role"], None if "*" in projects else set(projects),
                     row["scope"])


# --- users --------------------------------------------------------------------------
def check_user_name(name):
    if not isinstance(name, str) or not _USER_RE.match(name):
        raise ValueError("a user name is 1-64 of a-z 0-9 _ . - starting with a letter")
    return name


def create_user(st, name, role, password, with_totp=False):
    """Create a user; returns the TOTP secret (shown once) when ``with_totp``."""
    check_user_name(name)
    if role not in ROLES:
        raise ValueError("role must be one of %s" % ", ".join(ROLES))
    if not password or len(password) < 12:
        raise ValueError("the password must have at least 12 characters")
    secret = new_totp_secret() if with_totp else None
    now = db.now()
    with st.transaction(what="create user %s" % name):
        if db.one(st, "SELECT id FROM users WHERE name = ?", (name,)):
            raise ValueError("user %s exists" % name)
        db.execute(st, "INSERT INTO users (name, role, password_hash, totp_secret_encrypted, disabled, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (name, role, hash_password(password),
                    st.cipher.encrypt(secret, "users", None, name) if secret else None, False, now, now))
    return secret


def list_users(st):
    users = db.rows(st, "SELECT id, name, role, totp_secret_encrypted, disabled, created_at FROM users ORDER BY name")
    grants = db.rows(st, "SELECT r.user_id, p.name AS project, r.role FROM user_project_roles r "
                         "JOIN projects p ON p.id = r.project_id ORDER BY p.name")
    out = []
    for u in users:
        out.append({"name": u["name"], "role": u["role"], "totp": bool(u["totp_secret_encrypted"]),
                    "disabled": bool(u["disabled"]), "created_at": u["created_at"],
                    "projects": dict((g["project"], g["role"]) for g in grants if g["user_id"] == u["id"])})
    return out


def grant(st, name, project, role):
    if role not in ("developer", "viewer"):
        raise ValueError("a project role is developer or viewer")
    with st.transaction(what="grant"):
        user = db.one(st, "SELECT id FROM users WHERE name = ?", (name,))
        if user is None:
            raise ValueError("no user %s" % name)
        pid = st._project_id(project)
        db.execute(st, "INSERT INTO user_project_roles (user_id, project_id, role) VALUES (?, ?, ?) "
                       "ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role", (user["id"], pid, role))


def revoke_grant(st, name, project):
    with st.transaction(what="revoke a grant"):
        user = db.one(st, "SELECT id FROM users WHERE name = ?", (name,))
        if user is None:
            raise ValueError("no user %s" % name)
        pid = st._project_id(project)
        return db.execute(st, "DELETE FROM user_project_roles WHERE user_id = ? AND project_id = ?",
                          (user["id"], pid)).rowcount > 0


def delete_user(st, name):
    with st.transaction(what="delete user %s" % name):
        return db.execute(st, "DELETE FROM users WHERE name = ?", (name,)).rowcount > 0


def login(st, name, password, code, ip=None):
    """A new session id (the cookie value) or ``None``; a user with TOTP must give a valid code."""
    user = db.one(st, "SELECT id, name, password_hash, totp_secret_encrypted, disabled FROM users WHERE name = ?",
                  (name or "",))
    if user is None:
        verify_password(password or "", hash_password("x" * 12))  # same cost for unknown users
        return None
    if user["disabled"] or not verify_password(password or "", user["password_hash"]):
        return None
    if user["totp_secret_encrypted"]:
        secret = st.cipher.decrypt(user["totp_secret_encrypted"], "users", None, user["name"])
        if not verify_totp(b32_key(secret), code):
            return None
    session = secrets.token_urlsafe(32)
    with st.transaction(what="create a session"):
        db.execute(st, "INSERT INTO sessions (session_hash, user_id, ip, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                   (token_hash(session), user["id"], ip, db.now(), db.ts_in(SESSION_TTL)))
    return session


def logout(st, session):
    with st.transaction(what="end a session"):
        db.execute(st, "UPDATE sessions SET revoked_at = ? WHERE session_hash = ?", (db.now(), token_hash(session)))


def authenticate_session(st, session):
    if not session or len(session) > 100:
        return None
    row = db.one(st, "SELECT s.user_id, s.expires_at, s.revoked_at, u.name, u.role, u.disabled FROM sessions s "
                     "JOIN users u ON u.id = s.user_id WHERE s.session_hash = ?", (token_hash(session),))
    if row is None or row["revoked_at"] or row["disabled"] or \
            db.parse_ts(db.ts_text(row["expires_at"])) <= db.parse_ts(db.now()):
        return None
    grants = db.rows(st, "SELECT p.name AS project, r.role FROM user_project_roles r JOIN projects p "
                         "ON p.id = r.project_id WHERE r.user_id = ?", (row["user_id"],))
    return Principal("session", "user:%s" % row["name"], row["role"], None if row["role"] == "admin" else set(),
                     "write", dict((g["project"], g["role"]) for g in grants), row["user_id"])


# --- rate limits --------------------------------------------------------------------
class RateLimiter:
    """Token buckets: ``rate`` per second, up to ``burst``; ``check(key)`` -> (allowed, retry_after s)."""

    def __init__(self, rate, burst, max_keys=100000):
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets = {}
        self._lock = threading.Lock()

    def check(self, key, now=None):
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                allowed, retry = True, 0
            else:
                self._buckets[key] = (tokens, now)
                allowed, retry = False, (1 - tokens) / self.rate if self.rate > 0 else 3600
            if len(self._buckets) > self.max_keys:
                self._buckets.clear()
        return allowed, retry
