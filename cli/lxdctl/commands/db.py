"""``lxdctl db``: a project's databases.

    lxdctl db create <name> --db postgres|mysql

``create`` runs ``playbooks/db_create.yml`` (role ``project``, action ``db_create``): the
database and its role, a row in the state, and the app's env file rewritten with its URL
(DATABASE_URL for the project's first database, POSTGRES_URL / MYSQL_URL for each type).
"""
import os

import click

from lxdctl.execute import execute
from lxdctl.options import rule, run_options


@click.group()
def db():
    """A project's databases."""


@db.command("create")
@click.argument("name", callback=rule("project_name"))
@click.option("--db", "db_type", type=click.Choice(["postgres", "mysql"]), required=True,
              help="PostgreSQL or MariaDB.")
@run_options
def create(name, db_type, dry_run, verbose):
    """Add a database (and its role) to the existing project NAME."""
    execute("db_create", {"project_action": "db_create", "project_name": name, "project_db": db_type,
                          "lxdctl_owner_pid": os.getpid()}, dry_run=dry_run, verbose=verbose)


from lxdctl.commands.db_backup import backup, backups, restore  # noqa: E402 - the backup commands (Operations)

db.add_command(backup)
db.add_command(backups)
db.add_command(restore)
