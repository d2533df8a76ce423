"""Run a playbook for a command and turn its result into output and an exit code."""
import sys

import click

from lxdctl.runner import run_playbook


class PlaybookFailed(click.ClickException):
    exit_code = 1

    def __init__(self, result):
        where = result.failed_task or "the playbook"
        detail = result.failed_msg or "it ended with status %s (rc=%s)" % (result.status, result.rc)
        super().__init__("%s failed: %s" % (where, detail))
        self.result = result


def execute(playbook, extravars, dry_run=False, verbose=0, envvars=None, quiet=False):
    """Run the playbook with live progress; raise ``PlaybookFailed`` on failure."""
    from lxdctl.progress import Progress

    progress = Progress(enabled=not quiet and verbose == 0)
    if dry_run:
        click.echo("dry run: nothing will be changed", err=True)
    result = run_playbook(playbook, extravars, check=dry_run, verbosity=verbose, progress=progress, envvars=envvars)
    if not result.ok:
        raise PlaybookFailed(result)
    if not quiet:
        click.echo("done: %d change%s%s" % (result.changed, "" if result.changed == 1 else "s",
                                             " would be made" if dry_run else ""), err=True)
    return result


def fail(message, code=1):
    click.echo("Error: %s" % message, err=True)
    sys.exit(code)
