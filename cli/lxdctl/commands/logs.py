"""``lxdctl logs <name> [--tail N] [--follow] [--since T] [--system]``.

The app's service logs are the journal of its systemd units in the project's container
(``lxdctl-app@<slot>``, written by the deploy role); ``--system`` shows the whole journal.
journalctl runs through ``lxc exec`` as an argument list; its output passes straight through.
"""
import re
import subprocess
import sys

import click

from lxdctl.commands._ops import running_container
from lxdctl.options import rule

APP_UNITS = "lxdctl-app@*"
_SINCE_RE = re.compile(r"^[A-Za-z0-9 :.+-]{1,64}$")


def check_since(ctx, param, value):
    if value is None:
        return None
    if not _SINCE_RE.match(value) or value.startswith("-") and not re.match(r"^-[0-9]+[a-z]*$", value):
        raise click.BadParameter("must be a journalctl time such as '2026-01-01 10:00', 'yesterday', "
                                 "'1 hour ago' or -1h", ctx=ctx, param=param)
    return value


def journal_argv(container, tail=100, follow=False, since=None, system=False):
    argv = ["lxc", "exec", container, "-T", "--", "journalctl", "--no-pager", "--output=short-iso"]
    if not system:
        argv += ["--unit=" + APP_UNITS]
    if tail is not None:
        argv += ["--lines=%d" % tail]
    if since:
        argv += ["--since=" + since]
    if follow:
        argv += ["--follow"]
    return argv


@click.command("logs")
@click.argument("name", callback=rule("project_name"))
@click.option("--tail", "-n", type=click.IntRange(0, 1000000), default=100, show_default=True,
              help="How many of the last lines to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines until Ctrl-C.")
@click.option("--since", callback=check_since, help="Only lines since this time ('1 hour ago', '2026-01-01 10:00').")
@click.option("--system", is_flag=True, help="The container's whole journal, not only the app's service.")
def logs(name, tail, follow, since, system):
    """Show the logs of project NAME's app."""
    _row, container = running_container(name)
    argv = journal_argv(container, tail, follow, since, system)
    proc = None
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _out, err = proc.communicate()
        rc = proc.returncode
    except KeyboardInterrupt:
        if proc is not None:
            proc.terminate()
            proc.wait()
        sys.exit(0 if follow else 130)
    except OSError as exc:
        raise click.ClickException("cannot run lxc: %s" % exc.strerror)
    text = (err or b"").decode("utf-8", "replace")
    if rc != 0 and not system and "Failed to add filter for units" in text:
        click.echo("no logs of the app's service (%s) yet: deploy the app first, or see --system" % APP_UNITS, err=True)
        sys.exit(0)
    if text:
        click.echo(text, err=True, nl=False)
    sys.exit(rc)
