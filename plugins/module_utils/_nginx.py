# -*- coding: utf-8 -*-
"""The nginx wrapper: render a site from validated values, write it atomically, check, reload.

A site is one file ``<sites_dir>/<name>.conf``, which the platform's nginx includes in its
http context.  The file is rendered by ``render_site`` from values that went through
``validate_site`` (never user text into a template engine), written through a temp file and
a rename, checked with ``nginx -t`` and only then reloaded.  When the check fails, the
previous file comes back and the error carries nginx's message.

A run killed between writing a file and reloading nginx would leave a file that matches what
the rerun wants while nginx still serves the old one; the rerun would see no difference and
skip the reload.  So every write first leaves the mark ``<sites_dir>/.reload-pending``, only a
reload that took removes it, and while it is there the next run reloads even an unchanged site.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import ipaddress
import os
import re
import subprocess
import tempfile
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _procs
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config

DEFAULT_SITES_DIR = "/etc/nginx/lxdctl-sites"
DEFAULT_NGINX = "nginx"
DEFAULT_WEBROOT = "/var/lib/lxdctl/acme-webroot"
PID_FILES = ("/run/nginx.pid", "/var/run/nginx.pid")
MAX_WEIGHT = 1000
RELOAD_PENDING = ".reload-pending"

# Connection options, written once; the doc fragment lxdctl.platform.nginx documents them.
CONNECTION_ARGSPEC = dict(
    sites_dir=dict(type="path", fallback=(env_fallback, ["LXDCTL_NGINX_SITES_DIR"])),
    nginx_binary=dict(type="path", fallback=(env_fallback, ["LXDCTL_NGINX_BINARY"])),
)

_HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@:=,-]*$")


def connection_params(params):
    """Parameter -> environment -> platform.json section ``nginx`` -> default."""
    resolved = _platform_config.resolve(
        params,
        "nginx",
        {"sites_dir": "sites_dir", "acme_webroot": "acme_webroot", "http_port": "http_port", "https_port": "https_port"},
    )
    resolved["sites_dir"] = resolved.get("sites_dir") or DEFAULT_SITES_DIR
    resolved["nginx_binary"] = resolved.get("nginx_binary") or DEFAULT_NGINX
    return resolved


# --- validation ------------------------------------------------------------------------
def config_path_value(value, field):
    """An absolute file system path that is safe as one nginx token."""
    _names.safe_text(value, field)
    if not _PATH_RE.match(value) or "/../" in value + "/":
        raise ValidationError(field, "must be an absolute path of letters, digits and ._/+@:=,- only", value)
    return value


def upstream_address(value, field="upstreams.address"):
    """``host:port`` where host is an IPv4 address, ``[IPv6]`` or a host name."""
    if not isinstance(value, str) or ":" not in value:
        raise ValidationError(field, "must be host:port", value)
    _names.safe_text(value, field)
    host, _, port_text = value.rpartition(":")
    port = _names.port(port_text, field)
    if host.startswith("[") and host.endswith("]"):
        try:
            host = "[%s]" % ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValidationError(field, "must be host:port with a valid IPv6 address in brackets", value)
    else:
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            name = host.lower()
            if len(name) > 253 or not _HOSTNAME_RE.match(name):
                raise ValidationError(field, "must be host:port with an IPv4 address, [IPv6] or a host name", value)
            host = name
    return "%s:%d" % (host, port)


def weight(value, field="upstreams.weight"):
    if isinstance(value, bool):
        raise ValidationError(field, "must be a whole number from 1 to %d" % MAX_WEIGHT, value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a whole number from 1 to %d" % MAX_WEIGHT, value)
    if str(value).strip() != str(number) or not 1 <= number <= MAX_WEIGHT:
        raise ValidationError(field, "must be a whole number from 1 to %d" % MAX_WEIGHT, value)
    return number


def validate_site(params):
    """Turn module parameters into the validated values ``render_site`` takes."""
    name = _names.project_name(params.get("name"), "name")
    server_names = []
    for value in params.get("server_names") or []:
        canonical = _names.domain(value, "server_names")
        if canonical not in server_names:
            server_names.append(canonical)
    site = {"name": name, "server_names": server_names, "state": params.get("state", "present")}
    if site["state"] == "absent":
        return site
    if not server_names:
        raise ValidationError("server_names", "at least one domain is needed")
    upstreams = []
    for index, entry in enumerate(params.get("upstreams") or []):
        if isinstance(entry, str):
            entry = {"address": entry}
        if not isinstance(entry, dict):
            raise ValidationError("upstreams[%d]" % index, "must be a dict with address and weight")
        unknown = set(entry) - {"address", "weight"}
        if unknown:
            raise ValidationError("upstreams[%d]" % index, "unknown keys %s" % ", ".join(sorted(unknown)))
        address = upstream_address(entry.get("address"), "upstreams[%d].address" % index)
        upstreams.append((address, weight(entry.get("weight", 1), "upstreams[%d].weight" % index)))
    if not upstreams:
        raise ValidationError("upstreams", "at least one upstream (address host:port) is needed")
    if len(set(a for a, _ in upstreams)) != len(upstreams):
        raise ValidationError("upstreams", "each address may appear only once")
    cert, key = params.get("tls_certificate"), params.get("tls_certificate_key")
    if bool(cert) != bool(key):
        raise ValidationError("tls_certificate", "tls_certificate and tls_certificate_key go together")
    site.update(
        upstreams=upstreams,
        tls_certificate=config_path_value(cert, "tls_certificate") if cert else None,
        tls_certificate_key=config_path_value(key, "tls_certificate_key") if key else None,
        redirect_https=bool(params.get("redirect_https")) and bool(cert),
        acme_webroot=config_path_value(params.get("acme_webroot") or DEFAULT_WEBROOT, "acme_webroot"),
        http_port=_names.port(params.get("http_port") or 80, "http_port"),
        https_port=_names.port(params.get("https_port") or 443, "https_port"),
    )
    return site


# --- rendering -------------------------------------------------------------------------
def upstream_name(name):
    return "lxdctl_%s" % name.replace("-", "_")


def render_site(site):
    """The nginx configuration of a validated site, as text."""
    up = upstream_name(site["name"])
    names = " ".join(site["server_names"])
    lines = [
        "# Managed by lxdctl (nginx_site %s). Changes here are overwritten." % site["name"],
        "upstream %s {" % up,
        "    zone %s 64k;" % up,  # shared by all workers, so the weights hold across them
    ]
    for address, wgt in site["upstreams"]:
        lines.append("    server %s weight=%d;" % (address, wgt))
    lines += ["}", ""]
    proxy = [
        "    location / {",
        "        proxy_pass http://%s;" % up,
        "        proxy_http_version 1.1;",
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "    }",
    ]
    acme = [
        "    location ^~ /.well-known/acme-challenge/ {",
        "        root %s;" % site["acme_webroot"],
        "        default_type text/plain;",
        "        try_files $uri =404;",
        "    }",
    ]
    lines += ["server {", "    listen %d;" % site["http_port"], "    server_name %s;" % names, ""]
    lines += acme + [""]
    if site["redirect_https"]:
        target = "https://$host" if site["https_port"] == 443 else "https://$host:%d" % site["https_port"]
        lines += ["    location / {", "        return 301 %s$request_uri;" % target, "    }"]
    else:
        lines += proxy
    lines += ["}"]
    if site["tls_certificate"]:
        lines += [
            "",
            "server {",
            "    listen %d ssl;" % site["https_port"],
            "    server_name %s;" % names,
            "    ssl_certificate %s;" % site["tls_certificate"],
            "    ssl_certificate_key %s;" % site["tls_certificate_key"],
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            "",
        ]
        lines += acme + [""] + proxy + ["}"]
    return "\n".join(lines) + "\n"


# --- files, check, reload --------------------------------------------------------------
class Nginx(object):
    def __init__(self, params, run_command=None):
        conn = connection_params(params)
        self.sites_dir = conn["sites_dir"]
        self.binary = conn["nginx_binary"]
        self._run = run_command or _run

    def site_path(self, name):
        return os.path.join(self.sites_dir, "%s.conf" % _names.project_name(name, "name"))

    @property
    def pending_mark(self):
        return os.path.join(self.sites_dir, RELOAD_PENDING)

    def reload_pending(self):
        """True when a file was written and the reload that should follow it has not taken."""
        return os.path.exists(self.pending_mark)

    def _set_pending(self, pending):
        try:
            if pending:
                with open(self.pending_mark, "w"):
                    pass
            elif os.path.exists(self.pending_mark):
                os.unlink(self.pending_mark)
        except (IOError, OSError) as exc:
            raise LxdctlError("Failed to %s %s: %s" % ("write" if pending else "remove", self.pending_mark, exc))

    @contextlib.contextmanager
    def locked(self):
        """One change at a time: a concurrent run's half-written site must not fail our check,
        and one run's reload must not clear the pending mark of another run's write."""
        self.require_sites_dir()
        lock = os.open(self.sites_dir, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)

    def read_site(self, name):
        try:
            with open(self.site_path(name)) as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            if os.path.exists(self.site_path(name)):
                raise LxdctlError("Failed to read %s: %s" % (self.site_path(name), exc))
            return None

    def require_sites_dir(self):
        if not os.path.isdir(self.sites_dir):
            raise LxdctlError("The nginx sites directory %s does not exist: run `lxdctl init` first" % self.sites_dir)

    def write_file(self, path, content):
        """Write ``content`` to ``path`` through a temp file in the same directory and a rename."""
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lxdctl-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except (IOError, OSError) as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise LxdctlError("Failed to write %s: %s" % (path, exc))

    def _restore(self, path, old):
        if old is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            self.write_file(path, old)

    def test_config(self):
        """``(ok, message)`` of ``nginx -t``."""
        rc, out, err = self._run([self.binary, "-t"])
        return rc == 0, (err or out).strip()

    def apply_site(self, name, content):
        """Install ``content`` (or remove the site when ``None``), check, reload; roll back on failure.

        Also the way to finish a reload that a killed run left pending (same content again)."""
        with self.locked():
            return self._apply_locked(name, content)

    def _apply_locked(self, name, content):
        path = self.site_path(name)
        old = self.read_site(name)
        was_pending = self.reload_pending()

        def put_back():
            self._restore(path, old)
            self._set_pending(was_pending)

        self._set_pending(True)
        if content is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            self.write_file(path, content)
        ok, message = self.test_config()
        if not ok:
            put_back()
            raise LxdctlError("nginx rejected the configuration of site %s; the previous one is back: %s" % (name, message))
        try:
            reloaded = self.reload()
        except LxdctlError:
            put_back()
            raise
        # A stopped nginx would leave the site written but not served while the run reports
        # success: fail clearly instead.  A removal needs no nginx (a stopped one serves nothing).
        if not reloaded and content is not None:
            put_back()
            raise LxdctlError("nginx is not running, so site %s cannot be served; the previous configuration is "
                              "back. Start nginx (`lxdctl init` starts the platform's services) and run again" % name)
        self._set_pending(False)
        return reloaded

    def mark_pending(self):
        """For a writer of other files nginx reads (certificates), before it writes them."""
        with self.locked():
            self._set_pending(True)

    def check_and_reload(self):
        """``nginx -t`` then reload, for a changed certificate; ``False`` when nginx is not running."""
        with self.locked():
            if not (self.master_pid() or self.running_under_systemd()):
                self._set_pending(False)
                return False
            ok, message = self.test_config()
            if not ok:
                raise LxdctlError("nginx rejected its configuration, so it was not reloaded: %s" % message)
            reloaded = self.reload()
            self._set_pending(False)
            return reloaded

    def running_under_systemd(self):
        if not os.path.isdir("/run/systemd/system"):
            return False
        rc, _, _ = self._run(["systemctl", "is-active", "--quiet", "nginx"])
        return rc == 0

    def master_pid(self):
        for pid_file in PID_FILES:
            try:
                with open(pid_file) as handle:
                    pid = int(handle.read().strip())
            except (IOError, OSError, ValueError):
                continue
            if os.path.exists("/proc/%d" % pid):
                return pid
        return None

    def reload(self):
        """Reload nginx the way it runs here; ``False`` when it is not running at all.

        Returns once the new configuration serves: the signal only asks the master to reload,
        and until it has started new workers the old ones keep accepting connections."""
        master = self.master_pid()
        if self.running_under_systemd():
            cmd = ["systemctl", "reload", "nginx"]
        elif master:
            cmd = [self.binary, "-s", "reload"]
        else:
            return False
        old_workers = set(worker_pids(master)) if master else set()
        rc, out, err = self._run(cmd)
        if rc != 0:
            raise LxdctlError("Failed to reload nginx (%s): %s" % (" ".join(cmd), (err or out).strip()))
        if master:
            wait_for_new_workers(master, old_workers)
        return True


def worker_pids(master):
    """The pids of the worker processes of nginx master ``master`` that still accept connections."""
    pids = []
    for pid in _procs.children_of(master):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                title = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            continue
        if "worker process" in title and "is shutting down" not in title:
            pids.append(pid)
    return pids


def wait_for_new_workers(master, old_workers, timeout=15.0, interval=0.05):
    """Wait until every worker that accepts connections was started by this reload."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = set(worker_pids(master))
        if current and not current & old_workers:
            return True
        time.sleep(interval)
    return False


def _run(cmd):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LxdctlError("Failed to run %s: %s" % (cmd[0], exc))
    return proc.returncode, proc.stdout, proc.stderr


def list_sites(nginx):
    """The names of the site files in the sites directory (``<name>.conf``), sorted (reconcile)."""
    nginx.require_sites_dir()
    try:
        entries = os.listdir(nginx.sites_dir)
    except OSError as exc:
        raise LxdctlError("Failed to list %s: %s" % (nginx.sites_dir, exc))
    return sorted(entry[:-len(".conf")] for entry in entries
                  if entry.endswith(".conf") and not entry.startswith("."))
