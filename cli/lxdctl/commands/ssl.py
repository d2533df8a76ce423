"""``lxdctl ssl renew <name> [--force]``: a new certificate for the project's domain.

Runs ``playbooks/ssl_renew.yml`` (role ``ssl``): acme_certificate for the domain recorded
in the state, then nginx reloads so the site serves it.
"""
import click

from lxdctl.commands._ops import project_row
from lxdctl.execute import execute
from lxdctl.options import output_option, rule, run_options
from lxdctl.output import emit


@click.group()
def ssl():
    """TLS certificates of projects."""


@ssl.command("renew")
@click.argument("name", callback=rule("project_name"))
@click.option("--force", is_flag=True, help="Issue a new certificate even if the current one is still good.")
@click.option("--days", "renew_before_days", type=click.IntRange(1, 365), default=30, show_default=True,
              help="Renew when the certificate expires within this many days.")
@output_option
@run_options
def renew(name, force, renew_before_days, output, dry_run, verbose):
    """Renew the certificate of project NAME's domain and reload nginx."""
    row = project_row(name)
    if not row.get("ssl"):
        raise click.ClickException("project %s was created without TLS (--ssl), so it has no certificate to renew"
                                   % name)
    result = execute("ssl_renew", {"ssl_project": name, "ssl_force": force, "ssl_renew_before_days": renew_before_days},
                     dry_run=dry_run, verbose=verbose)
    if dry_run:
        return
    out = result.outputs
    emit({"project": name, "domain": out.get("domain"), "renewed": bool(out.get("renewed")),
          "not_after": out.get("not_after") or None, "certificate": out.get("cert_path") or None}, output)
