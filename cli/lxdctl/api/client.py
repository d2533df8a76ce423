"""The remote CLI: settings (``lxdctl config``) and running a command on the server.

Remote mode is on when a server is configured: ``LXDCTL_SERVER`` (and ``LXDCTL_TOKEN``), or
``lxdctl config set server URL`` / ``config set token TOKEN`` (``~/.config/lxdctl/config.json``,
0600).  ``LXDCTL_LOCAL=1`` forces local mode (the server sets it for what it runs).  An
``https://`` server is verified with ``config set ca FILE`` (``LXDCTL_CA_BUNDLE``) or pinned
with ``config set fingerprint SHA256:...`` (``LXDCTL_FINGERPRINT``), see ``lxdctl.api.tls``.
"""
import json
import os
import struct
import sys
import urllib.parse

LOCAL_ONLY = ("init", "serve", "user")


def config_path():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "lxdctl", "config.json")


def load_config():
    try:
        with open(config_path()) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def save_config(data):
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".%d.tmp" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def remote_settings():
    """``(server, token)`` when remote mode is on, else None."""
    if os.environ.get("LXDCTL_LOCAL") == "1":
        return None
    config = load_config()
    server = os.environ.get("LXDCTL_SERVER") or config.get("server")
    if not server:
        return None
    return server.rstrip("/"), os.environ.get("LXDCTL_TOKEN") or config.get("token") or ""


def tls_settings():
    """``(CA bundle, certificate fingerprint)`` for an https:// server: environment, then the config file."""
    config = load_config()
    return (os.environ.get("LXDCTL_CA_BUNDLE") or config.get("ca") or None,
            os.environ.get("LXDCTL_FINGERPRINT") or config.get("fingerprint") or None)


def request(server, token, method, path, body=None, timeout=30):
    """A JSON request to the server: ``(status, decoded body)``."""
    import http.client

    conn = _connection(server, timeout)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    base = urllib.parse.urlsplit(server).path.rstrip("/")
    conn.request(method, base + path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw.decode() or "null")
    except ValueError:
        return resp.status, raw.decode("utf-8", "replace")


def _connection(server, timeout):
    import http.client

    url = urllib.parse.urlsplit(server)
    if url.scheme == "https":
        from lxdctl.api import tls

        ca_file, fingerprint = tls_settings()
        try:
            return tls.https_connection(url.hostname, url.port or 443, timeout, ca_file, fingerprint)
        except tls.TLSError as exc:
            raise SystemExit("Error: fingerprint: %s" % exc)
    if url.scheme != "http":
        raise SystemExit("Error: the server URL must start with http:// or https://")
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)


def run_remote(argv, settings=None):
    """Run ``lxdctl ARGV`` on the server; print its stdout/stderr as they come; return its exit code."""
    from lxdctl.api import uploads

    server, token = settings or remote_settings()
    try:
        argv, sent, files = uploads.prepare(list(argv))
    except uploads.UploadError as exc:
        sys.stderr.write("Error: %s\n" % exc)
        return 1
    headers = {"Content-Type": "application/json"}
    body = {"argv": list(argv)}
    if sent:
        body["uploads"] = sent
        headers["Content-Type"] = uploads.CONTENT_TYPE
        data = json.dumps(body).encode() + b"\n" + files
    else:
        data = json.dumps(body).encode()
    if token:
        headers["Authorization"] = "Bearer " + token
    base = urllib.parse.urlsplit(server).path.rstrip("/")
    try:
        conn = _connection(server, timeout=3600)
        conn.request("POST", base + "/api/cli", body=data, headers=headers)
        resp = conn.getresponse()
    except OSError as exc:
        sys.stderr.write("Error: cannot reach the lxdctl server %s: %s\n" % (server, exc))
        return 1
    if resp.status != 200:
        raw = resp.read()
        try:
            message = json.loads(raw.decode()).get("error")
        except (ValueError, AttributeError):
            message = raw.decode("utf-8", "replace")[:200]
        sys.stderr.write("Error: the lxdctl server %s answered %d: %s\n" % (server, resp.status, message))
        return 1
    out = getattr(sys.stdout, "buffer", sys.stdout)
    err = getattr(sys.stderr, "buffer", sys.stderr)
    code = 1
    while True:
        head = _read_exact(resp, 5)
        if head is None:
            sys.stderr.write("Error: the connection to the lxdctl server ended early\n")
            return 1
        channel, length = struct.unpack("!BI", head)
        data = _read_exact(resp, length) if length else b""
        if data is None:
            return 1
        if channel == 1:
            out.write(data)
            out.flush()
        elif channel == 2:
            err.write(data)
            err.flush()
        elif channel == 4:
            try:
                uploads.write_outputs(data, sent)
            except (uploads.UploadError, OSError) as exc:
                err.write(("Error: cannot write the files the server sent: %s\n" % exc).encode())
                err.flush()
                code = 1
                break
        elif channel == 3:
            code = int(data.decode() or "1")
            break
    conn.close()
    return code


def _read_exact(resp, n):
    buf = b""
    while len(buf) < n:
        chunk = resp.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def remote_command(name):
    """A click command that forwards ``lxdctl NAME ...`` to the server."""
    import click

    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "allow_interspersed_args": False, "help_option_names": []},
                   add_help_option=False)
    @click.pass_context
    def forward(ctx):
        """(runs on the configured lxdctl server)"""
        ctx.exit(run_remote([name] + list(ctx.args)))

    return forward


def local_only_command(name):
    import click

    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "help_option_names": []}, add_help_option=False)
    def refuse():
        raise click.ClickException("`lxdctl %s` runs only on the server's host; remote mode is on (a server is "
                                   "configured); run it there, or set LXDCTL_LOCAL=1" % name)

    return refuse
