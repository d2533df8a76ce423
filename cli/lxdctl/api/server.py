"""``lxdctl serve``: the HTTP server.

A pool of long-lived request threads (each with its own state-store connection; grown up to
``max_threads`` when all are busy) serves HTTP/1.1 with keep-alive.  Each request passes, in
order: the per-IP rate limit, the router (404/405), authentication (``Authorization: Bearer
<token>`` or the ``lxdctl_session`` cookie; 401), the per-token rate limit (429), the route's
permission for the request's project (403, or 404 for a project outside the caller's scope),
then its handler.  Every denial and every accepted mutation is written once to the audit log.
"""
import http.server
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, unquote, urlsplit

from lxdctl.api import auth, db, jobs, uploads
from lxdctl.api.router import Router

MAX_BODY = 1 << 20
ROUTE_MODULES = ("routes_projects", "routes_jobs", "routes_containers", "routes_databases", "routes_dns",
                 "routes_pipelines", "routes_deployments", "routes_auth", "routes_cli", "openapi")


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Response:
    def __init__(self, status=200, body=None, headers=None, raw=None, content_type="application/json"):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw
        self.content_type = content_type


class Streamed:
    """A handler result that writes the response itself (WebSockets, streamed output)."""

    def __init__(self, func):
        self.func = func


class Request:
    def __init__(self, handler, method, path, query, params, route):
        self.handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.params = params
        self.route = route
        self.principal = None
        self.body = None
        self.raw_body = b""
        self.files = None  # the tar of an application/x-lxdctl-cli body
        self.project = None
        self.audited = False
        self.audit_detail = {}

    @property
    def headers(self):
        return self.handler.headers

    @property
    def client_ip(self):
        return self.handler.client_address[0]

    @property
    def store(self):
        return db.store()

    def q(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        return self.body if isinstance(self.body, dict) else {}

    def require(self, *names):
        body = self.json()
        missing = [n for n in names if body.get(n) in (None, "")]
        if missing:
            raise ApiError(400, "missing field(s): %s" % ", ".join(missing))
        return [body[n] for n in names]

    def audit(self, action, project=None, detail=None):
        self.audited = True
        db.store().audit(self.principal.actor if self.principal else "anonymous@%s" % self.client_ip, action,
                         project if project is not None else self.project, detail)


def scrub(value):
    """A copy fit for the audit log: URLs keep only scheme and host (a git URL may carry a token in
    its user part, a Slack or Discord webhook URL is a secret in its path); the store's ``audit``
    then masks secret-looking keys."""
    import re

    if isinstance(value, dict):
        return dict((k, scrub(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^@/]*@)?([^/?#]*)", value)
        if match:
            return match.group(1) + match.group(2) + ("/…" if len(value) > len(match.group(0)) else "")
        if re.match(r"^[^@\s]+@[^:\s]+:", value):  # scp-like git address user@host:path
            return value.split(":", 1)[0] + ":…"
    return value


def _limits(env, default):
    text = os.environ.get(env) or default
    rate, _, burst = text.partition("/")
    return float(rate), float(burst or rate)


class App:
    def __init__(self):
        self.router = build_router()
        self.ip_limiter = auth.RateLimiter(*_limits("LXDCTL_API_IP_RATE", "200/400"))
        self.token_limiter = auth.RateLimiter(*_limits("LXDCTL_API_RATE", "100/200"))
        self.login_limiter = auth.RateLimiter(*_limits("LXDCTL_API_LOGIN_RATE", "0.2/5"))


def build_router():
    import importlib

    from lxdctl.api import extensions

    router = Router()
    for name in ROUTE_MODULES:
        importlib.import_module("lxdctl.api." + name).register(router)
    extensions.load(router)
    return router


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lxdctl"
    sys_version = ""
    timeout = 60
    app = None

    def log_message(self, fmt, *args):  # no request log with query strings on stderr
        pass

    def setup(self):
        super().setup()
        # headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def send_json(self, status, body, headers=None):
        data = json.dumps(body, sort_keys=True, default=str).encode("utf-8")
        self.send_raw(status, data, "application/json", headers)

    def send_raw(self, status, data, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def dispatch(self, method):
        app = self.app
        req = None
        self._body_read = False
        try:
            split = urlsplit(self.path)
            path = unquote(split.path)
            query = parse_qs(split.query, keep_blank_values=True)
            allowed, retry = app.ip_limiter.check(self.client_address[0])
            if not allowed:
                raise ApiError(429, "too many requests from this address", {"Retry-After": str(max(1, int(retry + 0.999)))})
            route, params = app.router.resolve(method, path)
            if route is None:
                self._drain()
                if params:
                    raise ApiError(405, "method not allowed", {"Allow": ", ".join(params)})
                raise ApiError(404, "not found")
            req = Request(self, method, path, query, params, route)
            if route.permission is not None:
                req.principal = self.authenticate(req)
                key = req.principal.ident
                allowed, retry = app.token_limiter.check(key)
                if not allowed:
                    raise ApiError(429, "too many requests for this token",
                                   {"Retry-After": str(max(1, int(retry + 0.999)))})
            self.read_body(req)
            if route.permission is not None:
                req.project = self.project_of(req)
                denied = req.principal.decide(route.permission, req.project)
                if denied:
                    self.deny(req, denied[0], denied[1])
            result = route.handler(req)
            if isinstance(result, Streamed):
                self.close_connection = True
                result.func(req)
                return
            if not isinstance(result, Response):
                result = Response(200, result)
            if method not in ("GET", "HEAD") and result.status < 400 and route.permission is not None \
                    and not req.audited:
                detail = {"method": method, "path": path, "status": result.status}
                if isinstance(result.body, dict) and result.body.get("job_id"):
                    detail["job_id"] = result.body["job_id"]
                if isinstance(req.body, dict):
                    detail["body"] = scrub(req.body)
                detail.update(req.audit_detail)
                req.audit("api %s %s" % (method, route.pattern), detail=detail)
            if result.raw is not None:
                self.send_raw(result.status, result.raw, result.content_type, result.headers)
            else:
                self.send_json(result.status, result.body, result.headers)
        except ApiError as exc:
            self._drain()
            self.send_json(exc.status, {"error": exc.message, "status": exc.status}, exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001
            errors = db.errors()
            if isinstance(exc, errors.ValidationError):
                self.send_json(400, {"error": exc.msg, "status": 400})
            elif isinstance(exc, errors.LxdctlError):
                self.send_json(500, {"error": exc.msg, "status": 500})
            else:
                traceback.print_exc()
                self.send_json(500, {"error": "internal error", "status": 500})

    def _drain(self):
        if getattr(self, "_body_read", False):
            return
        self._body_read = True
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            try:
                self.rfile.read(int(length))
            except OSError:
                pass
        elif length:
            self.close_connection = True

    def read_body(self, req):
        length = self.headers.get("Content-Length")
        if not length:
            return
        self._body_read = True
        content_type = self.headers.get("Content-Type") or ""
        with_files = req.route.uploads and content_type.startswith(uploads.CONTENT_TYPE)
        limit = uploads.MAX_UPLOAD if with_files else MAX_BODY
        if not length.isdigit() or int(length) > limit:
            self.close_connection = True
            raise ApiError(413, "the body is limited to %d bytes" % limit)
        req.raw_body = self.rfile.read(int(length))
        if with_files:
            try:
                req.body, req.files = uploads.split_body(req.raw_body)
            except uploads.UploadError as exc:
                raise ApiError(400, str(exc))
            req.raw_body = b""
        elif req.raw_body and content_type.startswith("application/json"):
            try:
                req.body = json.loads(req.raw_body.decode("utf-8"))
            except ValueError:
                raise ApiError(400, "the body is not valid JSON")

    def authenticate(self, req):
        header = self.headers.get("Authorization") or ""
        st = db.store()
        principal = None
        presented = False
        if header:
            presented = True
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer":
                principal = auth.authenticate_token(st, value.strip())
        else:
            cookie = SimpleCookie()
            try:
                cookie.load(self.headers.get("Cookie") or "")
            except Exception:  # noqa: BLE001
                pass
            if "lxdctl_session" in cookie:
                presented = True
                principal = auth.authenticate_session(st, cookie["lxdctl_session"].value)
                if principal and req.method not in ("GET", "HEAD") and \
                        self.headers.get("X-Lxdctl-Request") != "1":
                    principal = None  # cookie sessions need the custom header on mutations (CSRF)
        if principal is None:
            reason = "invalid, expired or revoked credentials" if presented else "authentication required"
            self.deny(req, 401, reason, {"WWW-Authenticate": 'Bearer realm="lxdctl"'})
        return principal

    def project_of(self, req):
        spec = req.route.project_param
        if not spec:
            return None
        if spec.startswith("body:"):
            value = req.json().get(spec[5:])
        else:
            value = req.params.get(spec)
        if value in (None, ""):
            return None
        names = db.state()._names
        errors = db.errors()
        try:
            return names.project_name(value, "project")
        except errors.ValidationError as exc:
            raise ApiError(400, exc.msg)

    def deny(self, req, status, reason, headers=None):
        detail = {"method": req.method, "path": req.path, "status": status, "reason": reason}
        try:
            db.store().audit(req.principal.actor if req.principal else "anonymous@%s" % self.client_address[0],
                             "api denied", req.project if req.principal else None, detail)
        except Exception:  # noqa: BLE001 - never turn a denial into an error
            traceback.print_exc()
        req.audited = True
        raise ApiError(status, "not found" if status == 404 else reason, headers)


class PooledHTTPServer(http.server.HTTPServer):
    """Long-lived request threads (each keeps its store); grows to ``max_threads`` when busy."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, min_threads=8, max_threads=128, ssl_context=None):
        super().__init__(address, handler)
        self.ssl_context = ssl_context
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self.max_threads = max_threads
        for _ in range(min_threads):
            self._start_thread()

    def _start_thread(self):
        self._threads += 1
        self._idle += 1
        threading.Thread(target=self._work, daemon=True).start()

    def get_request(self):
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            # the handshake waits for the request thread: a slow client must not hold up accept()
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request, client_address):
        with self._lock:
            if self._idle <= self._queue.qsize() and self._threads < self.max_threads:
                self._start_thread()
        self._queue.put((request, client_address))

    def _work(self):
        while True:
            request, client_address = self._queue.get()
            with self._lock:
                self._idle -= 1
            try:
                if self.ssl_context is not None:
                    request.settimeout(Handler.timeout)
                    request.do_handshake()
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._idle += 1

    def handle_error(self, request, client_address):
        pass


def serve(host="127.0.0.1", port=8765, workers=2, ready=None, ssl_context=None):
    """Run the API server until SIGTERM/SIGINT (HTTPS with ``ssl_context``)."""
    store = db.state().StateStore.open()  # migrate before anything else
    store.close()
    Handler.app = App()
    dispatcher = jobs.Dispatcher(max_workers=workers)
    dispatcher.start()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    PooledHTTPServer.address_family = family
    httpd = PooledHTTPServer((host, port), Handler, ssl_context=ssl_context)

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write("lxdctl serve: listening on %s://%s:%d (%d routes)\n"
                     % ("https" if ssl_context else "http", host, httpd.server_address[1],
                        len(Handler.app.router.routes)))
    sys.stderr.flush()
    if ready:
        ready(httpd)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        dispatcher.stop()
        httpd.server_close()
    return 0
