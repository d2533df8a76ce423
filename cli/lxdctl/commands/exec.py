"""``lxdctl exec <name> [--root] -- <command...>`` (also ``lxdctl container exec``).

Runs the command in the project's container through ``lxc exec`` (an argument list) as the
app user (``app``; root with a note when the container has no such user) or as root with
``--root``, with the project's environment: a fixed ``sh`` prologue sources
``/etc/lxdctl/app.env`` and then ``exec "$@"`` - the user's words are positional parameters,
never parsed by the shell.  Exit code, stdout and stderr pass through; with stdin on a
terminal the command gets a TTY.
"""
import subprocess
import sys

import click

from lxdctl.commands._ops import running_container
from lxdctl.options import rule

APP_USER = "app"
ENV_FILE = "/etc/lxdctl/app.env"
# Constant text: the command's own words arrive as "$@" and are never evaluated.
PROLOGUE = 'if [ -r "$0" ]; then set -a; . "$0"; set +a; fi; exec "$@"'


def app_user_ids(container, user=APP_USER):
    """``(uid, gid, home)`` of ``user`` in the container, or None."""
    proc = subprocess.run(["lxc", "exec", container, "-T", "--", "getent", "passwd", user],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    fields = proc.stdout.strip().split(":")
    return int(fields[2]), int(fields[3]), fields[5] or "/"


def exec_argv(container, command, ids=None, tty=False):
    argv = ["lxc", "exec", container, "-t" if tty else "-T"]
    if ids is not None:
        uid, gid, home = ids
        argv += ["--user", str(uid), "--group", str(gid), "--cwd", home, "--env", "HOME=" + home,
                 "--env", "USER=" + APP_USER, "--env", "LOGNAME=" + APP_USER]
    else:
        argv += ["--cwd", "/root"]
    return argv + ["--", "sh", "-c", PROLOGUE, ENV_FILE] + list(command)


def run_in_project(name, command, root=False):
    _row, container = running_container(name)
    ids = None
    if not root:
        ids = app_user_ids(container)
        if ids is None:
            click.echo("note: the container has no user %s; running as root" % APP_USER, err=True)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        return subprocess.call(exec_argv(container, command, ids, tty))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        raise click.ClickException("cannot run lxc: %s" % exc.strerror)


_SETTINGS = {"ignore_unknown_options": True}


@click.command("exec", context_settings=_SETTINGS)
@click.argument("name", callback=rule("project_name"))
@click.option("--root", is_flag=True, help="Run as root instead of the app user.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(name, root, command):
    """Run COMMAND in project NAME's container, with the app's environment.

    \b
      lxdctl exec myapp -- python manage.py migrate
      lxdctl exec myapp --root -- apt-get install -y curl
    """
    sys.exit(run_in_project(name, command, root))


@click.group()
def container():
    """The project's container."""


container.add_command(exec_command, "exec")
