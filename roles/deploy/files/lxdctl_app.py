#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""lxdctl's release helper (python3 standard library only).

It runs in two places:

* on the platform host, ``source`` fetches the code: a git clone (argument lists, ``--``
  before the URL, option-injection and ``ext::`` URLs refused) or a local directory, and
  writes one tar archive of the tree plus the detected runtime;
* inside the project container (pushed to /usr/local/lib/lxdctl/lxdctl_app.py and run as
  root), ``prepare`` unpacks a release under /srv/app/releases/<version> and builds it as
  the ``app`` user, ``activate`` points a slot (a systemd template unit ``lxdctl-app@<slot>``)
  at a release, starts it and checks its health over HTTP, and ``stop`` stops slots.

Every subcommand prints one JSON object on stdout.  A failure prints ``{"failed": true,
"msg": ...}`` and exits 1, so the playbook can show the message as it is.

The pure functions (``detect_runtime``, ``procfile_web``, ``start_command`` ...) are what the
unit tests exercise.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

RUNTIMES = ("node", "python", "go")
APP_ROOT = "/srv/app"
RELEASES = APP_ROOT + "/releases"
SLOTS = APP_ROOT + "/slots"
SLOT_ENV_DIR = "/etc/lxdctl/slots"
APP_ENV = "/etc/lxdctl/app.env"
UNIT_NAME = "lxdctl-app@"
UNIT_PATH = "/etc/systemd/system/lxdctl-app@.service"
META = ".lxdctl"  # per-release directory: start script, env snapshot, build info
VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
SLOT_RE = re.compile(r"^(blue|green)$")
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
# git refs: no control chars, spaces, ~^:?*[\ , "..", "@{", no leading "-" or "/", no trailing "/" or ".lock"
_BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|\.lock$|/$|^/|^-|//")
_TRANSPORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


class Failure(Exception):
    pass


# --- pure rules ------------------------------------------------------------------------
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


def detect_runtime(files, configured=None):
    """The runtime of a tree, from the names of its top-level files; ``configured`` breaks ties
    and is used when no marker file is there.  ``None`` when nothing is recognised."""
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
    if found:
        return found[0]
    return None


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


def env_file_line(key, value):
    """``KEY='value'`` the way systemd and POSIX sh both read it literally."""
    return "%s='%s'" % (key, str(value).replace("'", "'\"'\"'"))


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


# --- helpers ---------------------------------------------------------------------------
def run(argv, cwd=None, env=None, user=None, timeout=900, check=True, what=None):
    kwargs = {}
    if user is not None:
        import pwd
        entry = pwd.getpwnam(user)
        kwargs = dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, universal_newlines=True, **kwargs)
    except subprocess.TimeoutExpired:
        raise Failure("%s timed out after %ds" % (what or argv[0], timeout))
    except OSError as exc:
        raise Failure("%s could not run: %s" % (what or argv[0], exc))
    if check and proc.returncode != 0:
        raise Failure("%s failed (exit %d):\n%s" % (what or " ".join(argv), proc.returncode, tail(proc.stdout)))
    return proc


def tail(text, lines=25):
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_text(path, content, mode=0o644, uid=None, gid=None):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lxdctl-")
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    if uid is not None:
        os.chown(tmp, uid, gid)
    os.replace(tmp, path)


def emit(data):
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")


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


# --- host side: source -----------------------------------------------------------------
def git_env():
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS, GIT_ASKPASS="/bin/false",
               GIT_SSH_COMMAND="ssh -oBatchMode=yes", LC_ALL="C")
    return env


def git(args, what, cwd=None, timeout=300):
    argv = ["git", "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"] + args
    proc = subprocess.run(argv, cwd=cwd, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)
    if proc.returncode != 0:
        raise Failure("%s: %s" % (what, (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["git failed"]))
    return proc.stdout.strip()


def cmd_source(args):
    work = args.workdir or tempfile.mkdtemp(prefix="lxdctl-deploy-")
    os.makedirs(work, mode=0o700, exist_ok=True)
    try:
        _source(args, work)
    except BaseException:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _source(args, work):
    archive = os.path.join(work, "release.tar")
    commit = None
    if args.path:
        src = os.path.abspath(args.path)
        if not os.path.isdir(src):
            raise Failure("--path %s is not a directory" % args.path)
        tree = src
        with tarfile.open(archive, "w") as tar:
            for name in sorted(os.listdir(src)):
                if name in (".git", "node_modules", ".venv", META):
                    continue
                tar.add(os.path.join(src, name), arcname=name)
        files = os.listdir(src)
    else:
        url = check_repo_url(args.repo)
        if args.commit:
            check_commit(args.commit)
        if args.branch:
            check_branch(args.branch)
        clone = os.path.join(work, "clone")
        clone_args = ["clone", "--quiet", "--no-checkout", "--no-tags"]
        if args.branch and not args.commit:
            clone_args += ["--single-branch", "--branch", args.branch]
        try:
            git(clone_args + ["--", url, clone], "git clone of %s" % url)
        except Failure as exc:
            text = str(exc)
            if args.branch and ("not found" in text or "Could not find remote branch" in text):
                raise Failure("the branch %r does not exist in %s" % (args.branch, url))
            raise
        ref = args.commit or "HEAD"
        try:
            commit = git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], "rev-parse", cwd=clone)
        except Failure:
            raise Failure("the commit %s does not exist in %s%s" % (
                ref, url, " (branch %s)" % args.branch if args.branch else ""))
        if args.commit and args.branch:
            try:
                git(["merge-base", "--is-ancestor", commit, "origin/" + args.branch], "merge-base", cwd=clone)
            except Failure:
                raise Failure("the commit %s is not on branch %s of %s" % (args.commit, args.branch, url))
        git(["archive", "--format=tar", "-o", archive, commit], "git archive", cwd=clone)
        files = git(["ls-tree", "--name-only", commit], "git ls-tree", cwd=clone).splitlines()
        shutil.rmtree(clone, ignore_errors=True)
        tree = None
    runtime = detect_runtime(files, args.runtime)
    if runtime is None and args.runtime and not args.strict:
        runtime = args.runtime
    if runtime is None:
        raise Failure("no runtime recognised: the source has none of package.json (node), requirements.txt or "
                      "pyproject.toml (python), go.mod (go)%s" % ("" if tree is None else " in %s" % tree))
    emit(dict(archive=archive, workdir=work, commit=commit or "", runtime=runtime, files=sorted(files)[:200]))


def cmd_push(args):
    """``lxc file push`` the helper and the archive into the container, then drop the work dir."""
    if not re.match(r"^[a-z][a-z0-9-]{0,62}$", args.container or ""):
        raise Failure("bad container name %r" % args.container)
    try:
        run(["lxc", "file", "push", "--create-dirs", "--mode", "0600", "--"] + args.files
            + ["%s%s/" % (args.container, args.dest)], timeout=600, what="lxc file push into %s" % args.container)
    finally:
        if args.cleanup:
            shutil.rmtree(args.cleanup, ignore_errors=True)
    emit(dict(container=args.container, dest=args.dest, files=[os.path.basename(f) for f in args.files]))


def cmd_second_container(args):
    """Blue-green: make sure the project's second container exists (an ``lxc copy`` of the primary:
    same image, limits, labels), runs, and has the primary's current env file."""
    for name in (args.primary, args.name):
        if not re.match(r"^[a-z][a-z0-9-]{0,62}$", name or ""):
            raise Failure("bad container name %r" % name)
    listing = run(["lxc", "list", "--format", "csv", "--columns", "ns", "^%s$" % args.name], what="lxc list").stdout
    created = False
    if not listing.strip():
        run(["lxc", "copy", args.primary, args.name], timeout=600, what="lxc copy %s %s" % (args.primary, args.name))
        run(["lxc", "config", "set", args.name, "user.lxdctl.role", "green"], what="lxc config set")
        created = True
    if "RUNNING" not in listing:
        run(["lxc", "start", args.name], timeout=120, what="lxc start %s" % args.name)
    work = tempfile.mkdtemp(prefix="lxdctl-env-")
    try:
        local = os.path.join(work, "app.env")
        run(["lxc", "file", "pull", "%s%s" % (args.primary, APP_ENV), local], what="lxc file pull of the env file")
        run(["lxc", "file", "push", "--mode", "0600", local, "%s%s" % (args.name, APP_ENV)], what="lxc file push of the env file")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run(["lxc", "exec", args.name, "--", "chown", "app:app", APP_ENV], what="chown of the env file")
    emit(dict(name=args.name, created=created, started="RUNNING" not in listing))


# --- container side --------------------------------------------------------------------
def app_ids():
    import pwd
    entry = pwd.getpwnam("app")
    return entry.pw_uid, entry.pw_gid


def release_dir(version):
    if not VERSION_RE.match(version or ""):
        raise Failure("bad release version %r" % version)
    return os.path.join(RELEASES, version)


def build_env(rel, runtime):
    env = {
        "HOME": APP_ROOT, "LANG": "C.UTF-8", "USER": "app", "LOGNAME": "app",
        "PATH": "%s/.venv/bin:%s/node_modules/.bin:/usr/local/bin:/usr/bin:/bin" % (rel, rel),
        "GOPROXY": "off", "GOFLAGS": "-mod=mod -buildvcs=false", "GOCACHE": APP_ROOT + "/.cache/go-build",
        "GOPATH": APP_ROOT + "/go", "CGO_ENABLED": "0", "npm_config_offline": "true",
        "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false",
        "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.update(parse_env_file(read_text(APP_ENV) or ""))
    return env


def parse_env_file(text):
    """Read KEY='value' lines (the format lxdctl writes) back into a dict."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        key = key.strip()
        if raw.startswith("'"):
            value, rest, quoted = "", raw, True
            # 'abc'"'"'def' -> abc'def
            parts = re.findall(r"'([^']*)'|\"([^\"]*)\"", rest)
            value = "".join(a or b for a, b in parts)
        else:
            value = raw.strip()
        out[key] = value
    return out


def cmd_prepare(args):
    rel = release_dir(args.version)
    wait_booted()
    uid, gid = app_ids()
    if os.path.exists(rel):
        shutil.rmtree(rel)
    os.makedirs(RELEASES, exist_ok=True)
    os.chown(APP_ROOT, uid, gid)
    os.chown(RELEASES, uid, gid)
    os.makedirs(rel)
    with tarfile.open(args.archive) as tar:
        members = list(safe_members(tar, rel))
        tar.extractall(rel, members=members)
    os.unlink(args.archive)
    os.makedirs(os.path.join(rel, META, "bin"), exist_ok=True)
    for base, dirs, files in os.walk(rel):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), uid, gid)
    os.chown(rel, uid, gid)
    files = os.listdir(rel)
    runtime = detect_runtime(files, args.runtime)
    if runtime is None:
        raise Failure("no runtime recognised in release %s" % args.version)
    env = build_env(rel, runtime)
    steps = []

    def step(argv, what, timeout=900):
        started = time.monotonic()
        run(argv, cwd=rel, env=env, user="app", timeout=timeout, what=what)
        steps.append(dict(step=what, seconds=round(time.monotonic() - started, 2)))

    package_json = read_text(os.path.join(rel, "package.json"))
    if args.build:
        if runtime == "node":
            scripts = package_scripts(package_json)
            deps = json.loads(package_json or "{}")
            has_deps = bool(deps.get("dependencies") or deps.get("devDependencies"))
            if has_deps or os.path.exists(os.path.join(rel, "package-lock.json")):
                if os.path.exists(os.path.join(rel, "package-lock.json")):
                    step(["npm", "ci", "--no-audit", "--no-fund"], "npm ci")
                else:
                    step(["npm", "install", "--no-audit", "--no-fund"], "npm install")
            if "build" in scripts:
                step(["npm", "run", "build"], "npm run build")
        elif runtime == "python":
            reqs = requirements_lines(read_text(os.path.join(rel, "requirements.txt")))
            if reqs:
                step(["python3", "-m", "venv", "--system-site-packages", ".venv"], "python3 -m venv")
                step([".venv/bin/pip", "install", "-r", "requirements.txt"], "pip install -r requirements.txt")
            else:
                step(["python3", "-m", "venv", "--system-site-packages", "--without-pip", ".venv"], "python3 -m venv")
        elif runtime == "go":
            step(["go", "build", "-o", "%s/bin/app" % META, "."], "go build")
    if args.test:
        if runtime == "node":
            if "test" not in package_scripts(package_json):
                raise Failure("--test: package.json has no test script")
            step(["npm", "test"], "npm test (--test)")
        elif runtime == "python":
            python = ".venv/bin/python" if os.path.exists(os.path.join(rel, ".venv/bin/python")) else "python3"
            step([python, "-m", "unittest", "discover", "-v"], "python -m unittest (--test)")
        elif runtime == "go":
            step(["go", "test", "./..."], "go test (--test)")
    command, origin = start_command(runtime, read_text(os.path.join(rel, "Procfile")), package_json, args.start_command)
    if not command:
        raise Failure("no start command: add a Procfile with a 'web:' line%s, or set deploy_start_command"
                      % (" or a package.json start script" if runtime == "node" else ""))
    if runtime == "go" and origin == "go build" and not os.path.exists(os.path.join(rel, META, "bin", "app")):
        raise Failure("no start command: the go binary was not built (deploy with --build) and there is no Procfile")
    start = ("#!/bin/sh\n# Written by lxdctl: the start command of release %s (from the %s).\n"
             "cd %s || exit 1\nexport PATH=%s\nexec %s\n") % (args.version, origin, rel, env["PATH"], command)
    write_text(os.path.join(rel, META, "start"), start, mode=0o755, uid=uid, gid=gid)
    # the env snapshot: a rollback brings back the code and the env it ran with
    app_env = read_text(APP_ENV) or ""
    snapshot = app_env.rstrip("\n") + "\n" + env_file_line("LXDCTL_RELEASE", args.version) + "\n"
    write_text(os.path.join(rel, META, "release.env"), snapshot, mode=0o600, uid=uid, gid=gid)
    info = dict(version=args.version, runtime=runtime, start_command=command, start_origin=origin,
                commit=args.commit or "", steps=steps, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_text(os.path.join(rel, META, "release.json"), json.dumps(info, sort_keys=True), uid=uid, gid=gid)
    emit(info)


def own_address(timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        proc = run(["ip", "-4", "-o", "addr", "show", "scope", "global"], check=False)
        for line in proc.stdout.splitlines():
            match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
            if match:
                return match.group(1)
        if time.monotonic() > deadline:
            raise Failure("the container has no IPv4 address after %ds" % timeout)
        time.sleep(0.2)


def wait_booted(timeout=60):
    """A freshly started container: wait until systemd has finished booting."""
    deadline = time.monotonic() + timeout
    while True:
        state = run(["systemctl", "is-system-running"], check=False).stdout.strip()
        if state in ("running", "degraded"):
            return state
        if time.monotonic() > deadline:
            raise Failure("systemd in the container is still %r after %ds" % (state, timeout))
        time.sleep(0.2)


def systemctl(*args, check=True):
    return run(["systemctl"] + list(args), check=check, timeout=60, what="systemctl " + " ".join(args))


def journal(slot, lines=30):
    proc = run(["journalctl", "-u", UNIT_NAME + slot, "-n", str(lines), "--no-pager", "-o", "cat"], check=False)
    return tail(proc.stdout, lines)


def unit_show(slot):
    proc = run(["systemctl", "show", UNIT_NAME + slot, "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts",
                "-p", "ExecMainStatus"], check=False)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def health(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400, "HTTP %d" % resp.status
    except urllib.error.HTTPError as exc:
        return False, "HTTP %d" % exc.code
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy yet
        return False, str(getattr(exc, "reason", exc))


def cmd_activate(args):
    rel = release_dir(args.version)
    if not SLOT_RE.match(args.slot):
        raise Failure("bad slot %r" % args.slot)
    if not os.path.exists(os.path.join(rel, META, "start")):
        raise Failure("release %s is not in this container (no %s/%s/start)" % (args.version, rel, META))
    wait_booted()
    if read_text(UNIT_PATH) != unit_text():
        write_text(UNIT_PATH, unit_text())
        systemctl("daemon-reload")
    unit = UNIT_NAME + args.slot
    cancel_pending_stop(args.slot)
    if args.exclusive:
        for other in ("blue", "green"):
            if other != args.slot:
                systemctl("disable", "--now", UNIT_NAME + other, check=False)
    write_text(os.path.join(SLOT_ENV_DIR, args.slot + ".env"),
               "# Written by lxdctl: the slot's own settings, over the release's env.\n%s\n%s\n"
               % (env_file_line("PORT", args.port), env_file_line("LXDCTL_SLOT", args.slot)))
    os.makedirs(SLOTS, exist_ok=True)
    link = os.path.join(SLOTS, args.slot)
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(rel, tmp)
    os.replace(tmp, link)
    systemctl("stop", unit, check=False)
    systemctl("reset-failed", unit, check=False)
    systemctl("start", unit)
    address = args.address or own_address()
    url = "http://%s:%d%s" % (address, args.port, args.health_path)
    deadline = time.monotonic() + args.timeout
    last = "not checked"
    while True:
        ok, last = health(url, timeout=min(2.0, max(0.2, deadline - time.monotonic())))
        if ok:
            break
        state = unit_show(args.slot)
        exited = state.get("ActiveState") in ("failed", "inactive") or int(state.get("NRestarts") or 0) > 0
        if exited or time.monotonic() >= deadline:
            logs = journal(args.slot)
            systemctl("stop", unit, check=False)
            why = ("the start command exited (status %s)" % state.get("ExecMainStatus", "?")) if exited else \
                "no healthy answer within %ss (last: %s)" % (args.timeout, last)
            raise Failure("release %s failed its health check on %s: %s; traffic was not switched. "
                          "Last app log lines:\n%s" % (args.version, url, why, logs or "(none)"))
        time.sleep(0.1)
    systemctl("enable", unit, check=False)
    emit(dict(address=address, port=args.port, slot=args.slot, version=args.version, health=last, url=url))


def cancel_pending_stop(slot):
    """Drop a delayed stop of ``slot`` that an earlier switch scheduled and that has not fired."""
    run(["systemctl", "stop", "lxdctl-stop-%s.timer" % slot, "lxdctl-stop-%s.service" % slot], check=False)
    run(["systemctl", "reset-failed", "lxdctl-stop-%s.timer" % slot, "lxdctl-stop-%s.service" % slot], check=False)


def cmd_stop(args):
    slots = ("blue", "green") if args.slot == "all" else (args.slot,)
    for slot in slots:
        if not SLOT_RE.match(slot):
            raise Failure("bad slot %r" % slot)
    for slot in slots:
        cancel_pending_stop(slot)
        if args.delay > 0:
            # let the requests nginx's old workers still proxy finish, without holding the deploy;
            # a precise timer (systemd coalesces timers by a minute by default)
            run(["systemd-run", "--quiet", "--collect", "--unit", "lxdctl-stop-%s" % slot,
                 "--on-active=%sms" % int(args.delay * 1000), "--timer-property=AccuracySec=10ms",
                 "systemctl", "disable", "--now", UNIT_NAME + slot], what="systemd-run (delayed stop)")
        else:
            systemctl("disable", "--now", UNIT_NAME + slot, check=False)
    emit(dict(stopped=list(slots), delay=args.delay))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lxdctl_app")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("source")
    p.add_argument("--workdir", help="default: a new private temporary directory")
    p.add_argument("--repo")
    p.add_argument("--branch")
    p.add_argument("--commit")
    p.add_argument("--path")
    p.add_argument("--runtime")
    p.add_argument("--strict", action="store_true")
    p = sub.add_parser("push")
    p.add_argument("--container", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--cleanup", help="a work directory to remove afterwards")
    p.add_argument("files", nargs="+")
    p = sub.add_parser("second-container")
    p.add_argument("--primary", required=True)
    p.add_argument("--name", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--version", required=True)
    p.add_argument("--archive", required=True)
    p.add_argument("--runtime")
    p.add_argument("--commit")
    p.add_argument("--start-command")
    p.add_argument("--build", action="store_true")
    p.add_argument("--test", action="store_true")
    p = sub.add_parser("activate")
    p.add_argument("--version", required=True)
    p.add_argument("--slot", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--address")
    p.add_argument("--health-path", default="/health")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--exclusive", action="store_true")
    p = sub.add_parser("stop")
    p.add_argument("--slot", required=True)
    p.add_argument("--delay", type=float, default=0)
    args = parser.parse_args(argv)
    try:
        {"source": cmd_source, "push": cmd_push, "second-container": cmd_second_container, "prepare": cmd_prepare, "activate": cmd_activate, "stop": cmd_stop}[args.cmd](args)
    except Failure as exc:
        emit(dict(failed=True, msg=str(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
