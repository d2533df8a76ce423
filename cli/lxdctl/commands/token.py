"""``lxdctl token create|list|revoke``: API tokens (shown once, stored hashed)."""
import re

import click

from lxdctl.commands.env import open_state
from lxdctl.options import output_option, rule
from lxdctl.output import emit


def _duration(ctx, param, value):
    if value is None:
        return None
    match = re.match(r"^(\d+)([smhd])$", value.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter("a duration like 30d, 12h, 90m or 3600s", ctx=ctx, param=param)
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@click.group()
def token():
    """API tokens for the remote CLI, CI and scripts."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "developer", "viewer"]), default="developer", show_default=True)
@click.option("--project", "projects", multiple=True, callback=rule("project_name"),
              help="A project the token may use (repeat); or --all-projects.")
@click.option("--all-projects", is_flag=True, help="Every project (needed for admin work and `lxdctl list`).")
@click.option("--read-only", is_flag=True, help="Only reads: status, logs, lists.")
@click.option("--expires", callback=_duration, metavar="DURATION", help="e.g. 30d; default: never.")
@output_option
def create(name, role, projects, all_projects, read_only, expires, output):
    """Create token NAME; it is printed once and only its hash is kept."""
    from lxdctl.api import auth

    if bool(projects) == bool(all_projects):
        raise click.UsageError("give --project NAME (repeatable) or --all-projects")
    store = open_state()
    try:
        value, row = auth.create_token(store, name, role, "*" if all_projects else list(projects),
                                       "read" if read_only else "write", expires, _actor())
        store.audit(_actor(), "token create", None, {"token_id": row["token_id"], "role": role,
                                                     "projects": row["projects"], "scope": row["scope"]})
    except ValueError as exc:
        raise click.ClickException(str(exc))
    finally:
        store.close()
    if output == "json":
        emit({"token": value, "token_id": row["token_id"], "expires_at": row["expires_at"]}, "json")
    else:
        click.echo(value)
        click.echo("token %s created; it is shown only now: store it (e.g. as a CI secret)" % row["token_id"], err=True)


@token.command("list")
@output_option
def list_tokens(output):
    """Every token: id, name, role, projects, scope, expiry (never the token)."""
    from lxdctl.api import auth

    store = open_state()
    try:
        rows = auth.list_tokens(store)
    finally:
        store.close()
    rows = [dict(t, projects=",".join(t["projects"] or [])) for t in rows]
    for t in rows:
        t.pop("id", None)
    emit(rows, output, columns=["token_id", "name", "role", "projects", "scope", "expires_at", "revoked_at",
                                "created_at"])


@token.command("revoke")
@click.argument("token_id")
def revoke(token_id):
    """Revoke the token TOKEN_ID (see `lxdctl token list`)."""
    from lxdctl.api import auth

    store = open_state()
    try:
        if not auth.revoke_token(store, token_id):
            raise click.ClickException("no active token %s" % token_id)
        store.audit(_actor(), "token revoke", None, {"token_id": token_id})
    finally:
        store.close()
    click.echo("token %s revoked" % token_id)


def _actor():
    from lxdctl.collection import module_utils

    return module_utils("_state").default_actor()
