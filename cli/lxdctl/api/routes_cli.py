"""POST /api/cli: the remote CLI.  ``{"argv": [...]}`` runs ``lxdctl ARGV`` on the server.

Authorization is by command and project: the command path (``db create``) decides read,
write or admin (``COMMAND_PERMISSIONS``); the project is the command's ``name`` argument (or
``--project``), checked against the caller's scope and role like any route.  A command with
no project needs a caller for all projects.  Commands that only make sense on the host
(``LOCAL_ONLY``) are refused.  Options that name files on the caller's machine
(``create --env``, ``deploy --path``, ``pipeline setup --output-dir``) come with the files
(``lxdctl.api.uploads``); a path given without its upload would name the server's own files
and is refused.

The answer streams frames ``<channel byte><4-byte length><data>``: channel 1 stdout, 2
stderr, 4 the files written into an uploaded output directory (a tar), 3 the exit code
(text), so the client prints exactly what the command printed.
"""
import struct

import click

from lxdctl.api import cli_bridge, uploads
from lxdctl.api.server import ApiError, Streamed

LOCAL_ONLY = {"init", "serve", "user", "config"}
READ = {"list", "status", "logs", "metrics", "deployments", "health-check", "smoke-test", "dns list",
        "db backups", "env list", "platform status", "image list", "pipeline status", "pipeline logs",
        "pipeline runs", "ssl status"}
ADMIN = {"platform", "image", "token", "audit"}
GLOBAL_READ = {"platform status", "image list"}
ADMIN_READ = {"audit", "token list"}  # admin-only, but they change nothing: not audited as mutations
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
    sent = _uploads(body, argv)
    at = set(u["index"] for u in sent)
    words, cmd, params = resolve([a for i, a in enumerate(argv) if i not in at])
    help_only = any(a in ("--help", "-h") for a in argv) or isinstance(cmd, click.Group)
    permission = "read" if help_only else permission_for(words)
    if permission == "local":
        raise ApiError(400, "`lxdctl %s` works only on the server's host, not in remote mode" % words[0])
    _check_paths(cmd, [a for i, a in enumerate(argv) if i not in at], len(words), sent)
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
    workspace = None
    if sent:  # unpacked before the audit entry: a refused upload is a 400, not an accepted mutation
        try:
            workspace = uploads.Workspace(sent, req.files or b"")
        except uploads.UploadError as exc:
            raise ApiError(400, str(exc))
    if permission != "read" and " ".join(words) not in ADMIN_READ and words[0] not in ADMIN_READ:
        # the command and its option names only: values may be secrets (env set KEY=VALUE, --git URL)
        try:
            req.audit("api cli %s" % " ".join(words), project,
                      {"command": " ".join(words), "options": sorted(set(a.split("=", 1)[0] for a in argv
                                                                         if a.startswith("-") and a != "--"))})
        except BaseException:
            if workspace:
                workspace.close()
            raise

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

        run_argv = list(argv)
        for n, up in enumerate(sent):
            run_argv[up["index"]] = up["option"] + "=" + workspace.slots[n]
        pairs = workspace.substitutions() if workspace else []
        pending = {1: b"", 2: b""}

        def on_chunk(name, data):
            channel = 1 if name == "stdout" else 2
            if not pairs:
                send(channel, data)
                return
            # whole lines only, so that no server path is cut in two before it is written back
            *lines, pending[channel] = (pending[channel] + data).split(b"\n")
            if lines:
                send(channel, uploads.rewrite(b"\n".join(lines) + b"\n", pairs))

        proc, rfd = cli_bridge.spawn(run_argv, events=False, env={"LXDCTL_ACTOR": req.principal.actor},
                                     cwd=workspace.dir if workspace else None)
        try:
            rc = cli_bridge.stream(proc, rfd, on_chunk)
            for channel, rest in pending.items():
                if rest:
                    send(channel, uploads.rewrite(rest, pairs))
            if workspace:
                try:
                    files = workspace.outputs()
                except uploads.UploadError as exc:
                    send(2, ("Error: %s\n" % exc).encode())
                    files, rc = None, rc or 1
                if files:
                    send(4, files)
            send(3, str(rc).encode())
        except OSError:  # the client went away: stop the command
            import os
            import signal

            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
            proc.wait()

    def run_and_clean(req):
        try:
            run(req)
        finally:
            if workspace:
                workspace.close()

    return Streamed(run_and_clean)


def _uploads(body, argv):
    """The ``uploads`` of the request, checked against ``argv``."""
    sent = body.get("uploads") or []
    if not isinstance(sent, list) or len(sent) > 16:
        raise ApiError(400, "uploads must be a list (at most 16)")
    seen = set()
    stop = argv.index("--") if "--" in argv else len(argv)
    for up in sent:
        if not isinstance(up, dict) or not isinstance(up.get("index"), int) or isinstance(up.get("index"), bool):
            raise ApiError(400, "each upload needs an index into argv")
        for key in ("option", "display", "resolved"):
            if not isinstance(up.get(key, ""), str) or "\x00" in up.get(key, ""):
                raise ApiError(400, "upload %s must be text" % key)
        if up.get("kind") not in ("file", "dir", "missing") or not isinstance(up.get("output", False), bool):
            raise ApiError(400, "upload kind must be file, dir or missing")
        index = up["index"]
        if not 0 <= index < stop or index in seen or argv[index] != "%s=" % up.get("option"):
            raise ApiError(400, "upload index %d does not point at its option %s= in argv" % (index, up.get("option")))
        seen.add(index)
    return sent


def _check_paths(cmd, rest, start, sent):
    """Every local-path option must come with its upload: any other value names the server's files.

    ``rest`` is argv without the uploads' words.  The words are checked, not click's parsed
    values: a callback that fails on a server file (``--env /etc/shadow``) gives None there."""
    found = uploads.path_params(cmd)
    for up in sent:
        name = uploads.option_name(cmd, up["option"])
        if name is None:
            raise ApiError(400, "option %s does not name a local file of this command" % up["option"])
        if found[name][1] != bool(up.get("output")):
            raise ApiError(400, "option %s: output must be %s" % (up["option"], "true" if found[name][1] else "false"))
    uploaded = set(uploads.option_name(cmd, up["option"]) for up in sent)
    given = [opt for _i, opt, _value, _two in uploads.find_path_words(rest, start, cmd)]
    given += [max(param.opts, key=len) for name, (param, _out) in found.items()
              if name not in uploaded and uploads.default_path(param)]
    if given:
        raise ApiError(400, "option %s names a file or directory of your machine, but it came without its "
                       "upload (a newer lxdctl client sends it)" % given[0])


def register(router):
    router.add("POST", "/api/cli", run_cli, "read", uploads=True,
               body={"argv": "the lxdctl arguments, e.g. [\"list\"]",
                     "uploads": "local files named by options (with Content-Type %s, see lxdctl.api.uploads)"
                                % uploads.CONTENT_TYPE},
               summary="Run an lxdctl command on the server (the remote CLI); authorized per command and project")
