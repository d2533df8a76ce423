"""POST /api/cli: the remote CLI.  ``{"argv": [...]}`` runs ``lxdctl ARGV`` on the server.

Authorization is by command and project: the command path (``db create``) decides read,
write or admin (``COMMAND_PERMISSIONS``); the project is the command's ``name`` argument (or
``--project``), checked against the caller's scope and role like any route.  A command with
no project needs a caller for all projects.  Commands that only make sense on the host
(``LOCAL_ONLY``) and options that name files on the caller's machine are refused.

The answer streams frames ``<channel byte><4-byte length><data>``: channel 1 stdout, 2
stderr, 3 the exit code (text), so the client prints exactly what the command printed.
"""
import struct

import click

from lxdctl.api import cli_bridge
from lxdctl.api.server import ApiError, Streamed

LOCAL_ONLY = {"init", "serve", "user", "config"}
READ = {"list", "status", "logs", "metrics", "deployments", "health-check", "smoke-test", "dns list",
        "db backups", "env list", "platform status", "image list", "pipeline status", "pipeline logs",
        "pipeline runs", "ssl status"}
ADMIN = {"platform", "image", "token", "audit"}
GLOBAL_READ = {"platform status", "image list"}
ADMIN_READ = {"audit", "token list"}  # admin-only, but they change nothing: not audited as mutations
FILE_PARAMS = {"env_file", "path", "output_dir"}  # files and directories of the server's host
CONTENT_TYPE = "application/x-lxdctl-stream"


def resolve(argv):
    """``(words, command, params)`` for ``argv`` without running it (click's resilient parsing)."""
    from lxdctl.main import cli

    ctx = click.Context(cli, info_name="lxdctl", resilient_parsing=True)
    words = []
    cmd = cli
    rest = list(argv)
    while isinstance(cmd, click.Group):
        if not rest or rest[0].startswith("-"):
            break
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            raise ApiError(400, "no such command: %s" % " ".join(words + [rest[0]]))
        words.append(rest[0])
        rest = rest[1:]
        cmd = sub
        ctx = click.Context(cmd, info_name=words[-1], parent=ctx, resilient_parsing=True)
    if not words:
        raise ApiError(400, "name a command")
    params = {}
    if not isinstance(cmd, click.Group):
        try:
            with cmd.make_context(words[-1], list(rest), parent=ctx.parent, resilient_parsing=True) as sub_ctx:
                params = dict(sub_ctx.params)
        except click.exceptions.Exit:
            params = {}
        except click.ClickException:
            params = {}
    return words, cmd, params


def permission_for(words):
    path = " ".join(words)
    if words[0] in LOCAL_ONLY:
        return "local"
    if path in READ or words[0] in READ or "--help" in words:
        return "read"
    if words[0] in ADMIN:
        return "admin"
    return "write"


def run_cli(req):
    """Run an lxdctl command on the server; its output streams back exactly."""
    body = req.json()
    argv = body.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) and "\x00" not in a for a in argv) or len(argv) > 200:
        raise ApiError(400, "argv must be a list of strings")
    words, cmd, params = resolve(argv)
    help_only = any(a in ("--help", "-h") for a in argv) or isinstance(cmd, click.Group)
    permission = "read" if help_only else permission_for(words)
    if permission == "local":
        raise ApiError(400, "`lxdctl %s` works only on the server's host, not in remote mode" % words[0])
    for name in FILE_PARAMS:
        if params.get(name) not in (None, "", ()):
            raise ApiError(400, "option --%s names a file; it is not available in remote mode (run it on the host)"
                           % name.replace("_", "-"))
    project = None
    if not help_only:
        value = params.get("project") or params.get("name")
        if isinstance(value, str) and value:
            project = value
        elif " ".join(words) in GLOBAL_READ:
            project = None
        elif permission != "admin":
            if not req.principal.all_projects:
                req.handler.deny(req, 403, "`lxdctl %s` needs a token for all projects" % " ".join(words))
    req.project = project
    denied = req.principal.decide(permission, project)
    if denied:
        req.handler.deny(req, *denied)
    if permission != "read" and " ".join(words) not in ADMIN_READ and words[0] not in ADMIN_READ:
        # the command and its option names only: values may be secrets (env set KEY=VALUE, --git URL)
        req.audit("api cli %s" % " ".join(words), project,
                  {"command": " ".join(words), "options": sorted(set(a.split("=", 1)[0] for a in argv
                                                                     if a.startswith("-") and a != "--"))})

    def run(req):
        handler = req.handler
        handler.send_response(200)
        handler.send_header("Content-Type", CONTENT_TYPE)
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        out = handler.wfile

        def send(channel, data):
            out.write(struct.pack("!BI", channel, len(data)) + data)
            out.flush()

        proc, rfd = cli_bridge.spawn(argv, events=False, env={"LXDCTL_ACTOR": req.principal.actor})
        try:
            rc = cli_bridge.stream(proc, rfd, lambda name, data: send(1 if name == "stdout" else 2, data))
        except OSError:  # the client went away: stop the command
            import os
            import signal

            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
            proc.wait()
            return
        send(3, str(rc).encode())

    return Streamed(run)


def register(router):
    router.add("POST", "/api/cli", run_cli, "read", body={"argv": "the lxdctl arguments, e.g. [\"list\"]"},
               summary="Run an lxdctl command on the server (the remote CLI); authorized per command and project")
