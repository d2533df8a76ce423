"""``lxdctl deploy`` (playbooks/deploy.yml, role ``deploy``) and ``lxdctl deployments``."""
import getpass
import os
import time
import types
from functools import lru_cache

import click

from lxdctl.collection import module_utils
from lxdctl.execute import PlaybookFailed, execute
from lxdctl.options import output_option, rule
from lxdctl.output import emit


@lru_cache(maxsize=None)
def helper():
    """The release rules (module_utils/_release.py) and the git wrapper (_git.py) in one namespace:
    the URL, branch, commit, runtime and start-command rules the modules apply, so the CLI, the
    pipelines and the role refuse the same values with the same words."""
    names = dict(vars(module_utils("_release")))
    git = module_utils("_git")
    names.update(git=git.git, git_env=git.git_env)
    return types.SimpleNamespace(**names)


def _check(func_name):
    def callback(ctx, param, value):
        if value is None or value == "":
            return None
        try:
            return getattr(helper(), func_name)(value)
        except helper().Failure as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param)

    return callback


def _canary(ctx, param, value):
    if value is None:
        return None
    if not 1 <= value <= 99:
        raise click.BadParameter("must be a percentage from 1 to 99 (use --promote for 100, --abort for 0), got %d"
                                 % value, ctx=ctx, param=param)
    return value


def _version(ctx, param, value):
    if value is None:
        return None
    if not helper().VERSION_RE.match(value):
        raise click.BadParameter("a release version looks like v3, got %r" % value, ctx=ctx, param=param)
    return value


def _health_path(ctx, param, value):
    if not helper().HEALTH_PATH_RE.match(value or ""):
        raise click.BadParameter("must be a plain absolute path such as /health", ctx=ctx, param=param)
    return value


def conflicts(params):
    """``(option, message)`` of the first conflicting combination, or ``None``."""
    source = [opt for opt, key in (("--branch", "branch"), ("--commit", "commit"), ("--path", "path"), ("--repo", "repo"))
              if params.get(key)]
    modes = [opt for opt, key in (("--rollback", "rollback"), ("--promote", "promote"), ("--abort", "abort"))
             if params.get(key)]
    if len(modes) > 1:
        return modes[1], "cannot be combined with %s" % modes[0]
    if params.get("blue_green") and params.get("canary") is not None:
        return "--canary", "cannot be combined with --blue-green"
    if params.get("to") and not params.get("rollback"):
        return "--to", "only goes with --rollback"
    if modes:
        for opt, key in (("--blue-green", "blue_green"), ("--test", "test"), ("--auto", "auto")):
            if params.get(key):
                return opt, "cannot be combined with %s" % modes[0]
        if params.get("canary") is not None:
            return "--canary", "cannot be combined with %s" % modes[0]
        if source:
            return source[0], "cannot be combined with %s (it uses a release that is already built)" % modes[0]
        if params.get("build") is False:
            return "--no-build", "cannot be combined with %s" % modes[0]
    if params.get("path") and len(source) > 1:
        return [s for s in source if s != "--path"][0], "cannot be combined with --path (a local directory)"
    own = [opt for opt in source if opt in ("--path", "--repo")]
    if params.get("auto") and own:
        return own[0], "cannot be combined with --auto (it deploys the project's recorded repository and branch)"
    return None


@click.command("deploy")
@click.argument("name", callback=rule("project_name"))
@click.option("--branch", callback=_check("check_branch"), help="The git branch (default: the project's branch).")
@click.option("--commit", callback=_check("check_commit"), metavar="SHA", help="The git commit to deploy.")
@click.option("--repo", callback=_check("check_repo_url"), metavar="URL",
              help="Deploy from this git repository instead of the project's (any URL git clones, local paths too).")
@click.option("--path", type=click.Path(exists=True, file_okay=False, resolve_path=True), metavar="DIR",
              help="Deploy a local directory instead of a git repository.")
@click.option("--build/--no-build", default=True, show_default=True, help="Build the release (npm, pip, go build).")
@click.option("--test", is_flag=True, help="Run the project's tests; a failure stops the deploy.")
@click.option("--blue-green", is_flag=True, help="Run the new release in a second container and switch atomically.")
@click.option("--canary", type=int, callback=_canary, metavar="PERCENT", help="Send PERCENT (1-99) of requests to the new release.")
@click.option("--promote", is_flag=True, help="Send all requests to the canary (100%).")
@click.option("--abort", is_flag=True, help="Send all requests back to the old release (0%).")
@click.option("--rollback", is_flag=True, help="Go back to the previous release (code and env), without a rebuild.")
@click.option("--to", callback=_version, metavar="VERSION", help="With --rollback: the release to go back to, e.g. v3.")
@click.option("--auto", is_flag=True,
              help="An automatic deploy (webhook push, CI) of the recorded repository and branch, at --commit if given: "
                   "nothing happens when that commit serves already, and a running deploy is waited for, not refused.")
@click.option("--start-command", help="The start command when there is no Procfile web: line or package.json start script.")
@click.option("--health-path", default="/health", show_default=True, callback=_health_path, help="The health check's path.")
@click.option("--health-timeout", type=click.IntRange(1, 600), default=30, show_default=True,
              help="Seconds the new release has to pass its health check.")
@click.option("--keep-releases", type=click.IntRange(2, 1000), default=5, show_default=True,
              help="Releases each container keeps after a successful deploy (what serves and what served before always stay).")
@click.option("--dry-run", is_flag=True, help="Show what the deploy would do (version, slot, what serves now); change nothing.")
@click.option("-v", "--verbose", count=True, help="Show Ansible's own output (repeat for more).")
@click.pass_context
def deploy(ctx, name, branch, commit, repo, path, build, test, blue_green, canary, promote, abort, rollback, to, auto,
           start_command, health_path, health_timeout, keep_releases, dry_run, verbose):
    """Deploy project NAME: fetch, build, start the new release, check its health, switch.

    \b
    The old release keeps serving until the new one is healthy, and whenever a step fails.
    Examples:
      lxdctl deploy myapp                      the project's repository and branch
      lxdctl deploy myapp --path ./src --test  a local directory, tests first
      lxdctl deploy myapp --blue-green         a second container, switched atomically
      lxdctl deploy myapp --canary 10          10% of requests; then --promote or --abort
      lxdctl deploy myapp --rollback --to v3   back to release v3
    """
    found = conflicts(ctx.params)
    if found:
        opt, message = found
        param = next(p for p in ctx.command.params if opt in p.opts or opt in getattr(p, "secondary_opts", []))
        raise click.BadParameter(message, ctx=ctx, param=param)
    if start_command and any(ord(ch) < 32 for ch in start_command):
        raise click.BadParameter("must be one line", ctx=ctx, param_hint="--start-command")
    action = "rollback" if rollback else "promote" if promote else "abort" if abort else "deploy"
    strategy = "blue_green" if blue_green else "canary" if canary is not None else "standard"
    extravars = {
        "deploy_project": name,
        "deploy_action": action,
        "deploy_strategy": strategy,
        "deploy_canary_percent": canary or 10,
        "deploy_repository": repo or "",
        "deploy_branch": branch or "",
        "deploy_commit": commit or "",
        "deploy_path": path or "",
        "deploy_build": bool(build),
        "deploy_test": bool(test),
        "deploy_to_version": to or "",
        "deploy_auto": bool(auto),
        "deploy_start_command": start_command or "",
        "deploy_health_path": health_path,
        "deploy_health_timeout": health_timeout,
        "deploy_keep_releases": keep_releases,
        "deploy_deployed_by": os.environ.get("LXDCTL_ACTOR") or os.environ.get("SUDO_USER") or getpass.getuser(),
        "lxdctl_owner_pid": os.getpid(),
    }
    extravars = dict((k, v) for k, v in extravars.items() if v != "")
    started = time.time()
    try:
        result = execute("deploy", extravars, dry_run=dry_run, verbose=verbose)
    except PlaybookFailed as exc:
        raise click.ClickException(_failure(name, exc))
    if dry_run:
        emit(result.outputs.get("plan") or {}, "table")
        return
    summary = dict(result.outputs.get("deployment") or {})
    if summary:
        summary["seconds"] = round(time.time() - started, 1)
        emit(summary, "table")


def _failure(name, exc):
    """The failed step's own message (the role turns each helper failure into a plain one)."""
    message = (exc.result.failed_msg or str(exc.message)).strip()
    for prefix in ("Task failed: Action failed: ", "Task failed: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return "deploy of %s failed: %s" % (name, message) if not message.startswith(("deploy ", "rollback ")) else message


@click.command("deployments")
@click.argument("name", callback=rule("project_name"))
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="How many, newest first.")
@output_option
def deployments(name, limit, output):
    """The deployments of project NAME, newest first (from the state store)."""
    state = module_utils("_state")
    errors = module_utils("_errors")
    try:
        store = state.StateStore.open()
        try:
            if store.get_project(name) is None:
                raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
            rows = store.list_deployments(name, limit=limit)
        finally:
            store.close()
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    if output == "json":
        emit(rows, "json")
        return
    table = []
    for row in rows:
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        target = meta.get("target") or {}
        error = (row.get("error_message") or "").strip().splitlines()
        table.append({
            "id": row["id"],
            "version": row["version"],
            "type": row["deploy_type"],
            "status": row["status"] + (" (canary %s%%)" % meta.get("canary_percent") if meta.get("canary_live") else ""),
            "commit": (row.get("git_commit") or "")[:10] or None,
            "where": "%s/%s" % (target.get("container"), target.get("slot")) if target else None,
            "by": row.get("deployed_by"),
            "started": row.get("started_at"),
            "completed": row.get("completed_at"),
            "error": (error[0][:80] if error else None),
        })
    emit(table, "table", columns=["id", "version", "type", "status", "commit", "where", "by", "started", "completed", "error"])
