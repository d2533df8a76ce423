# -*- coding: utf-8 -*-
"""The rules of a release, without I/O: what a deploy accepts, how a release is built and
started, and what a deploy, rollback, promote or abort does (the plan).

The modules ``app_source`` (the code, on the host), ``app_release`` (the release, in a
container) and ``app_deployment`` (the record, in the state store) apply these rules; the CLI
validates its options with the same functions, so a bad value gets the same message from
``lxdctl deploy``, ``ansible-playbook`` and AWX.

The deployments table is the record of what serves.  Each successful deployment's
``metadata.live`` lists the upstreams nginx sends traffic to after it, and
``metadata.target`` the container, slot, port, release and address of the release it started.
The current deployment is the newest ``success``, or a canary that is still ``deploying``.
A standard deploy and a canary go into the other slot of the live container (two systemd
units on ``port`` and ``port + offset``); a blue-green deploy goes into the other container
(``lxdctl-<name>`` and ``lxdctl-<name>-green``).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError


class Failure(LxdctlError):
    """A release rule was broken; the message says which and why."""


RUNTIMES = ("node", "python", "go")
SLOTS = ("blue", "green")
APP_ROOT = "/srv/app"
RELEASES = APP_ROOT + "/releases"
SLOT_DIR = APP_ROOT + "/slots"
SLOT_ENV_DIR = "/etc/lxdctl/slots"
APP_ENV = "/etc/lxdctl/app.env"
UNIT_NAME = "lxdctl-app@"
UNIT_PATH = "/etc/systemd/system/lxdctl-app@.service"
META = ".lxdctl"  # per-release directory: start script, env snapshot, build info
DEFAULT_KEEP_RELEASES = 5
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")
SLOT_RE = re.compile(r"^(blue|green)$")
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
HEALTH_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/-]*$")
# git refs: no control chars, spaces, ~^:?*[\ , "..", "@{", no leading "-" or "/", no trailing "/" or ".lock"
_BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|\.lock$|/$|^/|^-|//")
_TRANSPORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


# --- inputs --------------------------------------------------------------------------
def check_repo_url(url):
    """Refuse what git would treat as an option or a remote helper (``ext::``, ``fd::``)."""
    if not isinstance(url, str) or not url.strip():
        raise Failure("the repository URL is empty")
    if url != url.strip() or any(ord(ch) < 32 for ch in url):
        raise Failure("the repository URL must not contain spaces at its ends or control characters")
    if url.startswith("-"):
        raise Failure("the repository URL %r starts with '-': refused (it would be read as a git option)" % url)
    if _TRANSPORT_RE.match(url) or "ext::" in url:
        raise Failure("the repository URL %r uses a git remote helper (<transport>::): refused" % url)
    return url


def check_branch(branch):
    if not branch or _BAD_REF_RE.search(branch):
        raise Failure("the branch %r is not a valid git branch name" % (branch,))
    return branch


def check_commit(commit):
    if not commit or not COMMIT_RE.match(commit):
        raise Failure("the commit %r must be 4-40 hexadecimal characters" % (commit,))
    return commit.lower()


def check_version(version):
    if not VERSION_RE.match(version or ""):
        raise Failure("a release version looks like v3, got %r" % (version,))
    return version


def check_slot(slot):
    if not SLOT_RE.match(slot or ""):
        raise Failure("a slot is blue or green, got %r" % (slot,))
    return slot


def check_health_path(path):
    if not HEALTH_PATH_RE.match(path or ""):
        raise Failure("the health check path must be a plain absolute path such as /health, got %r" % (path,))
    return path


def one_line(value, field):
    if value and any(ord(ch) < 32 for ch in value):
        raise Failure("%s: must be one line" % field)
    return value


def version_number(version):
    match = VERSION_RE.match(version or "")
    return int(match.group(1)) if match else 0


def release_dir(version):
    return "%s/%s" % (RELEASES, check_version(version))


# --- the code ------------------------------------------------------------------------
def detect_runtime(files, configured=None):
    """The runtime of a tree, from the names of its top-level files; ``configured`` breaks ties.
    ``None`` when nothing is recognised."""
    names = set(files)
    found = []
    if "package.json" in names:
        found.append("node")
    if names & {"requirements.txt", "pyproject.toml", "setup.py", "Pipfile"}:
        found.append("python")
    if "go.mod" in names:
        found.append("go")
    if configured in found:
        return configured
    return found[0] if found else None


def procfile_web(text):
    """The command of the ``web:`` line of a Procfile, or ``None``."""
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or ":" not in stripped:
            continue
        name, _, command = stripped.partition(":")
        if name.strip() == "web" and command.strip():
            return command.strip()
    return None


def package_scripts(text):
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise Failure("package.json is not valid JSON: %s" % exc)
    scripts = data.get("scripts") if isinstance(data, dict) else None
    return dict((k, v) for k, v in (scripts or {}).items() if isinstance(v, str) and v.strip())


def package_has_dependencies(text):
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise Failure("package.json is not valid JSON: %s" % exc)
    return isinstance(data, dict) and bool(data.get("dependencies") or data.get("devDependencies"))


def start_command(runtime, procfile=None, package_json=None, configured=None):
    """Where the start command comes from, in order: the configuration, a Procfile ``web:``
    line, the package.json ``start`` script, then the runtime's default (go: the built binary)."""
    if configured:
        return configured, "configuration"
    web = procfile_web(procfile)
    if web:
        return web, "Procfile"
    if runtime == "node" and package_json is not None:
        start = package_scripts(package_json).get("start")
        if start:
            return start, "package.json"
    if runtime == "go":
        return "./%s/bin/app" % META, "go build"
    return None, None


def requirements_lines(text):
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


def build_steps(runtime, files, package_json=None, requirements=None, build=True, test=False):
    """The argv lists of the build and test, each with what a failure message calls it."""
    names = set(files)
    steps = []
    if build:
        if runtime == "node":
            scripts = package_scripts(package_json)
            if "package-lock.json" in names:
                steps.append((["npm", "ci", "--no-audit", "--no-fund"], "npm ci"))
            elif package_has_dependencies(package_json):
                steps.append((["npm", "install", "--no-audit", "--no-fund"], "npm install"))
            if "build" in scripts:
                steps.append((["npm", "run", "build"], "npm run build"))
        elif runtime == "python":
            if requirements_lines(requirements):
                steps.append((["python3", "-m", "venv", "--system-site-packages", ".venv"], "python3 -m venv"))
                steps.append(([".venv/bin/pip", "install", "-r", "requirements.txt"], "pip install -r requirements.txt"))
            else:
                steps.append((["python3", "-m", "venv", "--system-site-packages", "--without-pip", ".venv"],
                              "python3 -m venv"))
        elif runtime == "go":
            steps.append((["go", "build", "-o", "%s/bin/app" % META, "."], "go build"))
    if test:
        if runtime == "node":
            if "test" not in package_scripts(package_json):
                raise Failure("--test: package.json has no test script")
            steps.append((["npm", "test"], "npm test (--test)"))
        elif runtime == "python":
            python = ".venv/bin/python" if build else "python3"
            steps.append(([python, "-m", "unittest", "discover", "-v"], "python -m unittest (--test)"))
        elif runtime == "go":
            steps.append((["go", "test", "./..."], "go test (--test)"))
    return steps


def build_env(rel, app_env):
    """The build's environment: offline package managers, the release's own tools first, the app env."""
    env = {
        "HOME": APP_ROOT, "LANG": "C.UTF-8", "USER": "app", "LOGNAME": "app",
        "PATH": "%s/.venv/bin:%s/node_modules/.bin:/usr/local/bin:/usr/bin:/bin" % (rel, rel),
        "GOPROXY": "off", "GOFLAGS": "-mod=mod -buildvcs=false", "GOCACHE": APP_ROOT + "/.cache/go-build",
        "GOPATH": APP_ROOT + "/go", "CGO_ENABLED": "0", "npm_config_offline": "true",
        "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
        "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.update(parse_env_file(app_env or ""))
    return env


def start_script(version, origin, rel, path, command):
    return ("#!/bin/sh\n# Written by lxdctl: the start command of release %s (from the %s).\n"
            "cd %s || exit 1\nexport PATH=%s\nexec %s\n") % (version, origin, rel, path, command)


def env_file_line(key, value):
    """``KEY='value'`` the way systemd and POSIX sh both read it literally."""
    return "%s='%s'" % (key, str(value).replace("'", "'\"'\"'"))


def env_snapshot(app_env, version):
    """The release's env: the app env it was built with, so a rollback brings back code and env."""
    return (app_env or "").rstrip("\n") + "\n" + env_file_line("LXDCTL_RELEASE", version) + "\n"


def slot_env(slot, port):
    return ("# Written by lxdctl: the slot's own settings, over the release's env.\n%s\n%s\n"
            % (env_file_line("PORT", port), env_file_line("LXDCTL_SLOT", slot)))


def parse_env_file(text):
    """Read KEY='value' lines (the format lxdctl writes) back into a dict."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if raw.startswith("'"):
            value = "".join(a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", raw))
        else:
            value = raw.strip()
        out[key.strip()] = value
    return out


def unit_text():
    return """# Written by lxdctl (deploy). One instance per slot: lxdctl-app@blue, lxdctl-app@green.
[Unit]
Description=lxdctl app, slot %i
After=network-online.target

[Service]
Type=simple
User=app
Group=app
WorkingDirectory=/srv/app/slots/%i
EnvironmentFile=/srv/app/slots/%i/.lxdctl/release.env
EnvironmentFile=/etc/lxdctl/slots/%i.env
ExecStart=/srv/app/slots/%i/.lxdctl/start
Restart=on-failure
RestartSec=1
KillMode=mixed
TimeoutStopSec=10
StandardOutput=journal
StandardError=journal
SyslogIdentifier=app-%i

[Install]
WantedBy=multi-user.target
"""


def safe_members(tar, dest):
    """Tar members that stay inside ``dest`` (no absolute paths, .., devices or links out)."""
    root = os.path.realpath(dest)
    for member in tar.getmembers():
        name = member.name
        target = os.path.realpath(os.path.join(root, name))
        if name.startswith("/") or (target != root and not target.startswith(root + os.sep)):
            raise Failure("the archive holds a path outside the release: %r" % name)
        if member.isdev():
            continue
        if member.issym() or member.islnk():
            link = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
            if member.linkname.startswith("/") or not (link == root or link.startswith(root + os.sep)):
                raise Failure("the archive holds a link pointing outside the release: %r" % name)
        yield member


def tail(text, lines=25):
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


# --- pruning -------------------------------------------------------------------------
def releases_to_prune(present, keep, protected):
    """Which of the releases ``present`` in a container go: all but the newest ``keep``, never
    one in ``protected`` (what serves, what served before, what a slot points at)."""
    if int(keep) < 2:
        raise Failure("keep_releases: must be at least 2 (the current and the previous release), got %s" % keep)
    versions = sorted((v for v in present if VERSION_RE.match(v)), key=version_number, reverse=True)
    kept = set(versions[:int(keep)]) | set(p for p in protected if p)
    return sorted((v for v in versions if v not in kept), key=version_number)


# --- the plan ------------------------------------------------------------------------
def metadata(row):
    meta = row.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = {}
    return meta if isinstance(meta, dict) else {}


def current_row(rows):
    """The deployment that describes what serves now (rows newest first)."""
    for row in rows:
        meta = metadata(row)
        if not meta.get("live"):
            continue
        if row["status"] == "success":
            return row
        if row["status"] == "deploying" and row["deploy_type"] == "canary" and meta.get("canary_live"):
            return row
    return None


def pruned_releases(rows):
    """``{(container, version)}`` of releases a deploy pruned (they are gone from the container)."""
    gone = set()
    for row in rows:
        for item in metadata(row).get("pruned") or []:
            if isinstance(item, dict) and item.get("container") and item.get("release"):
                gone.add((item["container"], item["release"]))
    return gone


def built_releases(rows):
    """Releases that were built, passed their health check once and are still there:
    version -> row (the row that built it)."""
    gone = pruned_releases(rows)
    releases = {}
    for row in reversed(rows):
        meta = metadata(row)
        if row["deploy_type"] == "rollback" or not meta.get("healthy"):
            continue
        if ((meta.get("target") or {}).get("container"), row["version"]) in gone:
            continue
        releases.setdefault(row["version"], row)
    return releases


def other(slot):
    return "green" if slot == "blue" else "blue"


def slot_port(port, slot, offset):
    return int(port) + (int(offset) if slot == "green" else 0)


def make_plan(project_row, rows, action, strategy, canary_percent, to_version, offset, site):
    name = project_row["name"]
    primary = project_row.get("container_name") or "lxdctl-%s" % name
    secondary = primary + "-green"
    port = int(project_row.get("port") or 3000)
    cur = current_row(rows)
    cur_meta = metadata(cur) if cur else {}
    cur_target = cur_meta.get("target") if cur else None
    canary_in_progress = bool(cur and cur["status"] == "deploying")
    stale = [r["id"] for r in rows if r["status"] in ("pending", "building", "deploying")
             and not (cur is not None and r["id"] == cur["id"])]
    plan = dict(project=name, action=action, port=port, primary=primary, secondary=secondary, site=site,
                current=cur_target, current_id=cur["id"] if cur else None, current_commit=(cur or {}).get("git_commit") or "",
                current_live=cur_meta.get("live") or [], current_meta=cur_meta, stale_ids=stale,
                runtime=project_row.get("runtime") or "",
                git_repository=project_row.get("git_repository") or "", git_branch=project_row.get("git_branch") or "main",
                domain=project_row.get("domain") or "", canary_id=None, previous_target=None,
                previous_release=(cur_meta.get("previous") or {}).get("release") if cur else None)
    if action == "deploy":
        if canary_in_progress:
            raise LxdctlError("a canary of %s (%s at %s%%) is in progress: finish it with --promote or --abort first"
                              % (name, cur["version"], cur_meta.get("canary_percent")))
        if strategy == "canary" and cur_target is None:
            raise LxdctlError("--canary needs a release that already serves: deploy %s once without --canary" % name)
        numbers = [version_number(r["version"]) for r in rows if r["deploy_type"] != "rollback"]
        version = "v%d" % (max(numbers + [0]) + 1)
        if cur_target is None:
            target = dict(container=primary, slot="blue")
            exclusive = True
        elif strategy == "blue_green":
            target = dict(container=secondary if cur_target["container"] == primary else primary, slot="blue")
            exclusive = True
        else:
            target = dict(container=cur_target["container"], slot=other(cur_target["slot"]))
            exclusive = False
        target.update(port=slot_port(port, target["slot"], offset), release=version)
        plan.update(version=version, deploy_type=strategy if cur_target is not None or strategy != "canary" else "standard",
                    target=target, exclusive=exclusive, create_container=target["container"] == secondary)
        return plan
    if action == "rollback":
        if canary_in_progress:
            raise LxdctlError("a canary of %s is in progress: use --abort to send all traffic back" % name)
        if cur_target is None:
            raise LxdctlError("%s has no successful deployment to roll back from" % name)
        releases = built_releases(rows)
        current_version = cur_target["release"]
        if to_version:
            if to_version not in releases:
                raise LxdctlError("release %s of %s does not exist, was pruned or never passed its health check; "
                                  "releases: %s" % (to_version, name,
                                                    ", ".join(sorted(releases, key=version_number)) or "none"))
            if to_version == current_version:
                raise LxdctlError("release %s already serves %s" % (to_version, name))
            version = to_version
        else:
            older = [v for v in releases if version_number(v) < version_number(current_version)]
            if not older:
                raise LxdctlError("%s has no release before %s to roll back to" % (name, current_version))
            version = max(older, key=version_number)
        where = metadata(releases[version])["target"]["container"]
        if where == cur_target["container"]:
            target = dict(container=where, slot=other(cur_target["slot"]))
            exclusive = False
        else:
            target = dict(container=where, slot="blue")
            exclusive = True
        target.update(port=slot_port(port, target["slot"], offset), release=version)
        plan.update(version=version, deploy_type="rollback", target=target, exclusive=exclusive,
                    create_container=False, git_commit=releases[version].get("git_commit") or "",
                    runtime=metadata(releases[version]).get("runtime") or plan["runtime"])
        return plan
    # promote / abort
    if not canary_in_progress:
        raise LxdctlError("%s has no canary in progress to %s" % (name, "promote" if action == "promote" else "abort"))
    plan.update(version=cur["version"], deploy_type="canary", canary_id=cur["id"], target=cur_target,
                previous_target=cur_meta.get("previous") or {}, exclusive=False, create_container=False,
                canary_percent=cur_meta.get("canary_percent"))
    return plan


def site_settings(project_row, cert_dir):
    domain = project_row.get("domain")
    if not domain:
        raise LxdctlError("project %s has no domain in the state" % project_row["name"])
    site = dict(name=project_row["name"], server_names=[domain], tls_certificate=None, tls_certificate_key=None)
    if project_row.get("ssl"):
        cert_dir = cert_dir or "/etc/lxdctl/certs"
        site.update(tls_certificate="%s/%s.crt" % (cert_dir, domain), tls_certificate_key="%s/%s.key" % (cert_dir, domain))
    return site

