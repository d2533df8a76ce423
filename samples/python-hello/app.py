"""python-hello: the lxdctl sample app (standard library only).

GET /        one line naming the app and its release (LXDCTL_RELEASE, set by the deploy)
GET /health  200 "ok"
GET /db      whether DATABASE_URL is set, and whether its host:port accepts a TCP connection
GET /redis   the same for REDIS_URL
"""
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

APP = "python-hello"


def release():
    return os.environ.get("LXDCTL_RELEASE", "dev")


def greeting():
    return "%s release %s\n" % (APP, release())


def tcp_check(url, default_port, timeout=2.0):
    """{"set": bool, "reachable": bool, "host": ...} for a service URL, by a plain TCP connect."""
    if not url:
        return {"set": False, "reachable": False}
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or default_port
    result = {"set": True, "host": host, "port": port, "scheme": parts.scheme, "reachable": False}
    if not host:
        return result
    try:
        with socket.create_connection((host, port), timeout=timeout):
            result["reachable"] = True
    except OSError as exc:
        result["error"] = str(exc)
    return result


class Handler(BaseHTTPRequestHandler):
    server_version = APP

    def _send(self, code, body, ctype="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, greeting())
        elif path == "/health":
            self._send(200, "ok\n")
        elif path == "/db":
            self._send(200, json.dumps(tcp_check(os.environ.get("DATABASE_URL"), 5432)) + "\n", "application/json")
        elif path == "/redis":
            self._send(200, json.dumps(tcp_check(os.environ.get("REDIS_URL"), 6379)) + "\n", "application/json")
        else:
            self._send(404, "not found\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print("%s release %s listening on :%d" % (APP, release(), port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
