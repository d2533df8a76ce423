"""``lxdctl pipeline ...``: a project's CI/CD pipeline (file ``.lxdctl.yml`` in its repository).

\b
The pipeline file sits at the root of the app's repository: ``.lxdctl.yml`` by default, or the
path given to ``pipeline create --file``.  Its format is described in
``lxdctl/pipelines/spec.py`` (stages build, test, deploy, verify).  Runs happen in an ephemeral
container made from the project's runtime image; ``pipeline trigger`` runs one here and now
(no server needed), a webhook on ``lxdctl serve`` queues one.
"""
import sys
import time

import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import output_option, rule
from lxdctl.output import emit
from lxdctl.pipelines import ci_files, run as runmod, spec as specmod

SECRET_NAME = "webhook-secret"  # module pipeline_config's SECRET_NAME
MANAGE_PLAYBOOK = "pipeline_manage"


def _errors():
    return module_utils("_errors")


def _store():
    try:
        return runmod.open_store()
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def _project(store, name):
    row = store.get_project(name)
    if row is None:
        raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
    return row


def _pipeline(store, name):
    _project(store, name)
    row = store.get_pipeline(name, runmod.PIPELINE)
    if row is None:
        raise click.ClickException("project %s has no pipeline (lxdctl pipeline create %s)" % (name, name))
    return row


def _check_ref(kind):
    def callback(ctx, param, value):
        if not value:
            return None
        from lxdctl.commands.deploy import helper

        try:
            return getattr(helper(), "check_" + kind)(value)
        except helper().Failure as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param)

    return callback


def _url(ctx, param, value):
    if value and not (value.startswith(("http://", "https://")) and " " not in value):
        raise click.BadParameter("must be an http:// or https:// URL", ctx=ctx, param=param)
    return value


def _file(ctx, param, value):
    if value is None:
        return None
    if not specmod._PATH_RE.match(value) or ".." in value.split("/"):
        raise click.BadParameter("must be a relative path inside the repository, like .lxdctl.yml or ci/pipeline.yml",
                                 ctx=ctx, param=param)
    return value


def branch_option(func):
    return click.option("--branch", callback=_check_ref("branch"), help="The branch (default: the pipeline's).")(func)


def commit_option(func):
    return click.option("--commit", callback=_check_ref("commit"), metavar="SHA",
                        help="The commit (default: the branch's newest).")(func)


@click.group("pipeline")
def pipeline():
    """A project's CI/CD pipeline: create, trigger, status, logs, runs, cancel, setup, secret.

    \b
    The pipeline file is .lxdctl.yml at the root of the project's repository (--file names
    another).  Stages build, test, deploy and verify run in that order in an ephemeral
    container; the first failure stops the run.
    """


@pipeline.command("create")
@click.argument("name", callback=rule("project_name"))
@click.option("--file", "filename", default=specmod.DEFAULT_FILE, show_default=True, callback=_file,
              help="The pipeline file's path inside the repository.")
@branch_option
@click.option("--notify-slack", callback=_url, metavar="URL", help="A Slack-compatible incoming webhook URL.")
@click.option("--notify-discord", callback=_url, metavar="URL", help="A Discord-compatible webhook URL.")
@output_option
def create(name, filename, branch, notify_slack, notify_discord, output):
    """Register the pipeline of project NAME, checking its pipeline file.

    \b
    The file is .lxdctl.yml at the root of the repository (--file names another path in it),
    read from the branch's newest commit; each run reads it again at the commit it runs.
      build:   {script: [npm ci, npm run build], artifacts: [dist/]}
      test:    {script: [npm test], coverage: coverage/, timeout: 300}
      deploy:  {environment: {name: production, url: "https://$PROJECT.$DOMAIN"}}
      verify:  {script: []}        then lxdctl health-check and lxdctl smoke-test
    Top level also: timeout (per stage, seconds), limits {cpu, memory, processes},
    variables {NAME: value}, notify {slack: URL, discord: URL}.  $PROJECT, $BRANCH, $DOMAIN
    and $COMMIT are replaced literally in script lines and URLs.
    """
    store = _store()
    try:
        _project(store, name)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    notify = dict((k, v) for k, v in (("slack", notify_slack), ("discord", notify_discord)) if v)
    result = _manage(name, "create", pipeline_file=filename, pipeline_branch=branch or "", pipeline_notify=notify)
    row = result.outputs.get("pipeline") or {}
    emit({"project": name, "file": row.get("file", filename), "branch": row.get("branch"),
          "stages": row.get("stages") or [], "changed": bool(row.get("changed")), "notify": row.get("notify") or []},
         output)


def _manage(name, action, **extravars):
    """Run the playbook ``pipeline_manage`` (role ``pipeline``) for ``action``; its result."""
    extravars.update(pipeline_project=name, pipeline_action=action)
    return execute(MANAGE_PLAYBOOK, extravars, quiet=True)


def run_now(name, branch, commit, only=None, trigger="cli", quiet=False):
    """Queue a run and execute it here; exit 1 unless it succeeds."""
    store = _store()
    try:
        _pipeline(store, name)
        try:
            row = runmod.queue_run(name, branch=branch, commit=commit, only=only, trigger=trigger, store=store)
        except runmod.RunError as exc:
            raise click.ClickException(str(exc))
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    echo = None if quiet else (lambda text: click.echo(text, nl=False, err=True))
    final = runmod.execute_run(name, row["id"], echo=echo)
    click.echo("%s run #%d: %s" % (name, row["run_number"], final))
    if final != "success":
        sys.exit(1)


@pipeline.command("trigger")
@click.argument("name", callback=rule("project_name"))
@branch_option
@commit_option
@click.option("--quiet", "-q", is_flag=True, help="Print only the outcome, not the log.")
def trigger(name, branch, commit, quiet):
    """Run the pipeline of project NAME now, here (exit 1 unless it succeeds)."""
    run_now(name, branch, commit, quiet=quiet)


def _public_run(row):
    facts = row.get("artifacts") or {}
    return {"run": row["run_number"], "status": row["status"], "branch": facts.get("branch"),
            "commit": facts.get("commit"), "trigger": facts.get("trigger"), "only": facts.get("only"),
            "started_at": row.get("started_at"), "completed_at": row.get("completed_at"),
            "stages": facts.get("stages") or [], "files": facts.get("files") or [],
            "environment": facts.get("environment")}


def _find_run(store, name, number):
    _pipeline(store, name)
    row = runmod.get_run(store, name, number)
    if row is None:
        raise click.ClickException("project %s has no pipeline run%s" % (name, " #%d" % number if number else ""))
    return row


@pipeline.command("status")
@click.argument("name", callback=rule("project_name"))
@click.option("--run", "number", type=click.IntRange(1), help="The run number (default: the newest).")
@output_option
def status(name, number, output):
    """The status of a run of project NAME's pipeline (the newest by default)."""
    store = _store()
    try:
        row = _find_run(store, name, number)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    data = _public_run(row)
    data["artifacts_dir"] = runmod.run_dir(name, row["run_number"])
    if output == "json":
        emit(data, "json")
        return
    table = dict(data)
    table["stages"] = ", ".join("%s %s" % (s["name"], s["status"]) for s in data["stages"]) or None
    table["files"] = len(data["files"])
    emit(table, "table")


@pipeline.command("logs")
@click.argument("name", callback=rule("project_name"))
@click.option("--run", "number", type=click.IntRange(1), help="The run number (default: the newest).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
def logs(name, number, follow):
    """The log of a run of project NAME's pipeline (the newest by default)."""
    store = _store()
    try:
        row = _find_run(store, name, number)
        printed = 0
        grace = None
        while True:
            text = row.get("logs") or ""
            if len(text) > printed:
                click.echo(text[printed:], nl=False)
                printed = len(text)
            if not follow:
                break
            if row["status"] in runmod.TERMINAL:
                # a cancelled run's runner still writes its last lines: follow until it lets go
                if grace is None:
                    grace = time.monotonic() + 30
                if not runmod.runner_active(store, row["id"]) or time.monotonic() > grace:
                    row = runmod.get_run(store, name, row["run_number"])
                    click.echo((row.get("logs") or "")[printed:], nl=False)
                    break
            time.sleep(1)
            row = runmod.get_run(store, name, row["run_number"])
            # the live tail of the current line is replaced by the line's full output later
            if len(row.get("logs") or "") < printed:
                printed = min(printed, len(row.get("logs") or ""))
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()


@pipeline.command("runs")
@click.argument("name", callback=rule("project_name"))
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="How many, newest first.")
@output_option
def runs(name, limit, output):
    """The runs of project NAME's pipeline, newest first."""
    store = _store()
    try:
        _pipeline(store, name)
        rows = store.list_pipeline_runs(name, runmod.PIPELINE, limit=limit)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    data = [_public_run(row) for row in rows]
    if output == "json":
        emit(data, "json")
        return
    for item in data:
        item["commit"] = (item["commit"] or "")[:10] or None
        item["stages"] = ", ".join("%s %s" % (s["name"], s["status"]) for s in item["stages"]) or None
    emit(data, "table", columns=["run", "status", "branch", "commit", "trigger", "stages", "started_at", "completed_at"])


@pipeline.command("cancel")
@click.argument("name", callback=rule("project_name"))
def cancel(name):
    """Cancel the queued and running runs of project NAME's pipeline (a running one's container is killed)."""
    store = _store()
    try:
        _pipeline(store, name)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    done = (_manage(name, "cancel").outputs.get("pipeline") or {}).get("cancelled") or []
    if not done:
        click.echo("%s: no queued or running run" % name)
    else:
        click.echo("%s: cancelled run%s %s" % (name, "" if len(done) == 1 else "s", ", ".join("#%d" % n for n in done)))


@pipeline.command("setup")
@click.argument("name", callback=rule("project_name"))
@click.option("--github", "github", metavar="OWNER/REPO", callback=ci_files.repo_option, help="GitHub Actions workflow.")
@click.option("--gitlab", "gitlab", metavar="GROUP/REPO", callback=ci_files.repo_option, help="GitLab CI file.")
@click.option("--drone", is_flag=True, help="Drone CI file (.drone.yml).")
@click.option("--jenkins", is_flag=True, help="Jenkinsfile (declarative pipeline).")
@click.option("--output-dir", type=click.Path(file_okay=False, writable=True), default=".", show_default=True,
              help="Where to write the file (the repository's root).")
@click.option("--force", is_flag=True, help="Overwrite a file that differs.")
def setup(name, github, gitlab, drone, jenkins, output_dir, force):
    """Write a CI file for project NAME that deploys each push and then runs `lxdctl test`.

    \b
    The file expects two CI secrets: LXDCTL_SERVER (the lxdctl serve URL) and LXDCTL_TOKEN.
    For push webhooks instead, point GitHub at <server>/webhook/github (or GitLab at
    <server>/webhook/gitlab) with the secret that `lxdctl pipeline secret NAME` shows.
    """
    chosen = [k for k, v in (("github", github), ("gitlab", gitlab), ("drone", drone), ("jenkins", jenkins)) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --github OWNER/REPO, --gitlab GROUP/REPO, --drone, --jenkins")
    kind = chosen[0]
    store = _store()
    try:
        project = _project(store, name)
        branch = project.get("git_branch") or "main"
        row = store.get_pipeline(name, runmod.PIPELINE)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    if row is not None:
        branch = (row.get("config") or {}).get("branch") or branch
        # pushes of this repository trigger the pipeline (webhooks); recorded by the playbook
        if kind in ("github", "gitlab") and (row.get("triggers") or {}).get(kind) != (github or gitlab):
            _manage(name, "setup", pipeline_triggers={kind: github or gitlab})
    try:
        path, changed = ci_files.write(kind, name, branch, output_dir, repo=github or gitlab, force=force)
    except ci_files.CIFileError as exc:
        raise click.ClickException(str(exc))
    click.echo("%s %s (validated)" % ("wrote" if changed else "unchanged:", path))
    click.echo("set the CI secrets LXDCTL_SERVER and LXDCTL_TOKEN, then commit the file", err=True)


@pipeline.command("secret")
@click.argument("name", callback=rule("project_name"))
@click.option("--rotate", is_flag=True, help="Make a new secret (the old one stops working).")
def secret(name, rotate):
    """Print the webhook secret of project NAME (for GitHub's secret or GitLab's token)."""
    store = _store()
    try:
        _project(store, name)
        value = store.get_secret(name, SECRET_NAME)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    if value is None or rotate:
        # made (or replaced) by the playbook; the play never carries it, it is read back below
        _manage(name, "secret", pipeline_secret_rotate=bool(rotate))
        store = _store()
        try:
            value = store.get_secret(name, SECRET_NAME)
        except _errors().LxdctlError as exc:
            raise click.ClickException(exc.msg)
        finally:
            store.close()
    click.echo(value)
