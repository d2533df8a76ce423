"""``lxdctl health-check <name>`` and ``lxdctl smoke-test <name>``: HTTP through the public route.

The request goes to the platform's public address (nginx), with ``Host:`` the project's
domain, exactly as a visitor's would.  Exit code 0 when every check passes, 1 when one fails
(2 for bad usage), so they fit CI steps.  A project with TLS is checked over HTTPS with SNI
for its domain (``--insecure`` skips certificate verification, e.g. for a staging CA).
"""
import http.client
import json
import re
import socket
import ssl
import sys
import time

import click

from lxdctl.commands._ops import platform_config, project_row
from lxdctl.options import rule
from lxdctl.output import emit

_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def check_path(ctx, param, value):
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if item is not None and (not _PATH_RE.match(item) or len(item) > 2000):
            raise click.BadParameter("must be a URL path starting with / (no spaces or control characters)",
                                     ctx=ctx, param=param)
    return value


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with SNI and certificate checks for the project's domain."""

    def __init__(self, address, port, server_name, timeout, context):
        super().__init__(server_name, port, timeout=timeout, context=context)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(address, port, domain, path, timeout, https=False, insecure=False, ca_file=None):
    """``{"status", "elapsed_ms", "body", "location", "error"}`` of ``GET path`` with ``Host: domain``."""
    started = time.monotonic()
    result = {"url": "%s://%s%s" % ("https" if https else "http", domain, path), "status": None, "error": None}
    try:
        if https:
            context = ssl.create_default_context(cafile=ca_file) if not insecure else ssl._create_unverified_context()
            conn = _PinnedHTTPS(address, port, domain, timeout, context)
        else:
            conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": domain, "User-Agent": "lxdctl-check", "Accept": "*/*"})
            resp = conn.getresponse()
            body = resp.read(65536)
            result.update(status=resp.status, location=resp.getheader("Location"),
                          body=body.decode("utf-8", "replace"))
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        result["error"] = str(exc) or type(exc).__name__
    result["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return result


def route(name):
    """``(domain, address, http port, https port, ssl)`` of the project's public route."""
    row = project_row(name)
    if not row.get("domain"):
        raise click.ClickException("project %s has no domain, so it has no public route" % name)
    cfg = platform_config()
    nginx = cfg.get("nginx") or {}
    address = cfg.get("public_address") or (cfg.get("lxd") or {}).get("bridge_address") or "127.0.0.1"
    return row["domain"], address, int(nginx.get("http_port") or 80), int(nginx.get("https_port") or 443), \
        bool(row.get("ssl"))


def probe(name, path, timeout, insecure):
    domain, address, http_port, https_port, tls = route(name)
    if tls:
        return fetch(address, https_port, domain, path, timeout, https=True, insecure=insecure)
    return fetch(address, http_port, domain, path, timeout)


def _passed(result, expect_status=None):
    if result["status"] is None:
        return False
    if expect_status:
        return result["status"] == expect_status
    return 200 <= result["status"] < 300


def _report(rows, output):
    if output == "json":
        emit(rows if len(rows) != 1 else rows[0], "json")
        return
    for row in rows:
        if row["ok"]:
            click.echo("ok    %s  %s  %d ms" % (row["url"], row["status"], row["elapsed_ms"]))
        else:
            why = row["error"] or "HTTP %s%s" % (row["status"], (" (expected %s)" % row["expected"]) if row.get("expected") else "")
            click.echo("FAIL  %s  %s" % (row["url"], why))


def _public(result, ok, expected=None, expect_text=None):
    out = dict((k, result.get(k)) for k in ("url", "status", "elapsed_ms", "error", "location"))
    out.update(ok=ok, body=(result.get("body") or "")[:200])
    if expected:
        out["expected"] = expected
    if expect_text:
        out["expect_text"] = expect_text
    return out


common = [
    click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
                 help="Seconds to wait for each response."),
    click.option("--insecure", is_flag=True, help="Do not verify the TLS certificate."),
    click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True,
                 help="Plain lines or JSON."),
]


def _common(func):
    for option in reversed(common):
        func = option(func)
    return func


@click.command("health-check")
@click.argument("name", callback=rule("project_name"))
@click.option("--path", default="/health", show_default=True, callback=check_path, help="The health endpoint.")
@click.option("--expect-status", type=click.IntRange(100, 599), help="The status to expect (default: any 2xx).")
@click.option("--retries", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Try again this many times (1 s apart) before failing, e.g. right after a deploy.")
@_common
def health_check(name, path, expect_status, retries, timeout, insecure, output):
    """Check project NAME's health endpoint through its public route; exit 0 healthy, 1 not."""
    for attempt in range(retries + 1):
        result = probe(name, path, timeout, insecure)
        ok = _passed(result, expect_status)
        if ok or attempt == retries:
            break
        time.sleep(1)
    _report([_public(result, ok, expect_status)], output)
    sys.exit(0 if ok else 1)


@click.command("smoke-test")
@click.argument("name", callback=rule("project_name"))
@click.option("--path", "paths", multiple=True, callback=check_path,
              help="A path to request (repeatable; default /). Each must answer 2xx or 3xx.")
@click.option("--expect-text", help="Text every response body must contain.")
@_common
def smoke_test(name, paths, expect_text, timeout, insecure, output):
    """Request a few pages of project NAME through its public route; exit 0 when all answer."""
    rows = []
    for path in paths or ("/",):
        result = probe(name, path, timeout, insecure)
        ok = result["status"] is not None and 200 <= result["status"] < 400
        if ok and expect_text and expect_text not in (result.get("body") or ""):
            ok = False
            result["error"] = "the body does not contain %s" % json.dumps(expect_text)
        rows.append(_public(result, ok, expect_text=expect_text))
    if output == "json":
        emit({"ok": all(r["ok"] for r in rows), "checks": rows}, "json")
    else:
        _report(rows, output)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)
