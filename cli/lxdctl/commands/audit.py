"""``lxdctl audit [--project P]``: the audit log (secrets are redacted when written)."""
import click

from lxdctl.commands.env import open_state
from lxdctl.options import output_option, rule
from lxdctl.output import emit


@click.command("audit")
@click.option("--project", callback=rule("project_name"), help="Only this project's entries.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@output_option
def audit(project, limit, output):
    """Recent audit log entries, newest first."""
    store = open_state()
    try:
        rows = store.list_audit(project, limit=limit)
    finally:
        store.close()
    emit(rows, output, columns=["id", "at", "actor", "action", "project", "detail"])
