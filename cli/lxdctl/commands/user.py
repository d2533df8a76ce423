"""``lxdctl user create|list|grant|revoke|delete``: users for logins (dashboard), on the host only.

There is no default password: the first admin is created here, on the host.
"""
import sys

import click

from lxdctl.commands.env import open_state
from lxdctl.options import output_option, rule
from lxdctl.output import emit


def _actor():
    from lxdctl.collection import module_utils

    return module_utils("_state").default_actor()


@click.group()
def user():
    """Users, their roles and per-project permissions (run on the host)."""


@user.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "developer", "viewer"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else: prompt twice).")
@click.option("--totp", "with_totp", is_flag=True, help="Require TOTP codes; prints the secret once.")
def create(name, role, password_stdin, with_totp):
    """Create user NAME with ROLE (at least 12 characters of password)."""
    from lxdctl.api import auth

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = open_state()
    try:
        secret = auth.create_user(store, name, role, password, with_totp)
        store.audit(_actor(), "user create", None, {"user": name, "role": role, "totp": with_totp})
    except ValueError as exc:
        raise click.ClickException(str(exc))
    finally:
        store.close()
    click.echo("user %s created (%s)" % (name, role), err=True)
    if secret:
        click.echo("TOTP secret (shown once; add it to an authenticator app):", err=True)
        click.echo(auth.otpauth_uri(name, secret))


@user.command("list")
@output_option
def list_users(output):
    """Every user with role, TOTP and project permissions."""
    from lxdctl.api import auth

    store = open_state()
    try:
        rows = auth.list_users(store)
    finally:
        store.close()
    emit(rows, output, columns=["name", "role", "totp", "disabled", "projects", "created_at"])


@user.command("grant")
@click.argument("name")
@click.argument("project", callback=rule("project_name"))
@click.option("--role", type=click.Choice(["developer", "viewer"]), required=True)
def grant(name, project, role):
    """Give user NAME ROLE on PROJECT."""
    from lxdctl.api import auth

    store = open_state()
    try:
        auth.grant(store, name, project, role)
        store.audit(_actor(), "user grant", project, {"user": name, "role": role})
    except ValueError as exc:
        raise click.ClickException(str(exc))
    finally:
        store.close()
    click.echo("%s is %s of %s" % (name, role, project))


@user.command("revoke")
@click.argument("name")
@click.argument("project", callback=rule("project_name"))
def revoke(name, project):
    """Take user NAME's permission on PROJECT away."""
    from lxdctl.api import auth

    store = open_state()
    try:
        if not auth.revoke_grant(store, name, project):
            raise click.ClickException("%s has no permission on %s" % (name, project))
        store.audit(_actor(), "user revoke", project, {"user": name})
    except ValueError as exc:
        raise click.ClickException(str(exc))
    finally:
        store.close()
    click.echo("%s has no permission on %s any more" % (name, project))


@user.command("delete")
@click.argument("name")
def delete(name):
    """Delete user NAME (its sessions end)."""
    from lxdctl.api import auth

    store = open_state()
    try:
        if not auth.delete_user(store, name):
            raise click.ClickException("no user %s" % name)
        store.audit(_actor(), "user delete", None, {"user": name})
    finally:
        store.close()
    click.echo("user %s deleted" % name)
