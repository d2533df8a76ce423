"""``lxdctl db backup|backups|restore``: encrypted backups of a project's database.

    lxdctl db backup <name> [--db postgres|mysql] [--keep N] [--schedule daily|hourly|CRON | --unschedule]
    lxdctl db backups <name> [--output json]
    lxdctl db restore <name> [--backup ID] [--into NEW] [--db ...] [--yes]

``backup`` and ``restore`` run ``playbooks/db_backup.yml`` / ``db_restore.yml`` (role
``backup``); ``backups`` reads the manifest under /var/lib/lxdctl/backups/<name>/ directly.
"""
import os
import shutil
import sys

import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import output_option, rule, run_options, yes_option
from lxdctl.output import emit

DB_CHOICE = click.Choice(["postgres", "mysql"])


def _check(func_name):
    def callback(ctx, param, value):
        if value is None:
            return None
        backup = module_utils("_backup")
        errors = module_utils("_errors")
        try:
            getattr(backup, func_name)(value, param.name)
            return value
        except errors.ValidationError as exc:
            raise click.BadParameter(exc.rule, ctx=ctx, param=param)
    return callback


def _check_schedule(ctx, param, value):
    if value is None:
        return None
    backup = module_utils("_backup")
    errors = module_utils("_errors")
    try:
        backup.parse_schedule(value)
    except errors.ValidationError as exc:
        raise click.BadParameter(exc.rule, ctx=ctx, param=param)
    return value


def require_project(name):
    state = module_utils("_state")
    errors = module_utils("_errors")
    try:
        store = state.StateStore.open()
        try:
            if store.get_project(name) is None:
                raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
        finally:
            store.close()
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)


def _database_type(name, db_type):
    """The project's database type (``--db`` or its only database), or a clear error."""
    backup_mod = module_utils("_backup")
    errors = module_utils("_errors")
    try:
        return backup_mod.project_database({"project": name}, db_type)[0]
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)


def _vars(values):
    """Extra vars without empty strings (the role's defaults stand for them)."""
    return dict((k, v) for k, v in values.items() if v not in ("", None))


def lxdctl_bin():
    found = shutil.which("lxdctl")
    return os.path.abspath(found or sys.argv[0])


@click.command("backup")
@click.argument("name", callback=rule("project_name"))
@click.option("--db", "db_type", type=DB_CHOICE, help="Which database (default: the project's only one).")
@click.option("--keep", type=click.IntRange(1, 1000), default=7, show_default=True,
              help="How many backups of the database to keep.")
@click.option("--schedule", callback=_check_schedule, metavar="daily|hourly|CRON",
              help="Install a schedule (systemd timer, or cron without systemd) instead of backing up now.")
@click.option("--unschedule", is_flag=True, help="Remove the project's backup schedule.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (for schedules).")
@output_option
@run_options
def backup(name, db_type, keep, schedule, unschedule, quiet, output, dry_run, verbose):
    """Take an encrypted, checksummed backup of project NAME's database."""
    if schedule and unschedule:
        raise click.UsageError("--schedule and --unschedule exclude each other")
    require_project(name)
    if schedule or unschedule:
        if schedule:
            db_type = _database_type(name, db_type)
        result = execute("db_backup", _vars({"backup_action": "schedule" if schedule else "unschedule",
                                             "backup_project": name, "backup_db": db_type or "postgres",
                                             "backup_schedule": schedule, "backup_keep": keep,
                                             "backup_lxdctl_bin": lxdctl_bin()}),
                         dry_run=dry_run, verbose=verbose, quiet=quiet)
        if not quiet:
            out = result.outputs
            data = {"project": name, "scheduler": out.get("scheduler"), "files": out.get("schedule_files"),
                    "schedule": schedule or None, "on_calendar": out.get("on_calendar") or None}
            emit(data, output)
        return
    result = execute("db_backup", _vars({"backup_action": "backup", "backup_project": name, "backup_db": db_type,
                                         "backup_keep": keep}), dry_run=dry_run, verbose=verbose, quiet=quiet)
    entry = result.outputs.get("backup") or {}
    if quiet or dry_run:
        return
    data = dict((k, entry.get(k)) for k in ("id", "db_type", "database", "size", "sha256", "created_at"))
    data["removed"] = result.outputs.get("removed") or []
    emit(data, output)


@click.command("backups")
@click.argument("name", callback=rule("project_name"))
@click.option("--db", "db_type", type=DB_CHOICE, help="Only this database type.")
@output_option
def backups(name, db_type, output):
    """List the backups of project NAME, newest first."""
    require_project(name)
    backup_mod = module_utils("_backup")
    errors = module_utils("_errors")
    try:
        rows = backup_mod.list_backups(backup_mod.DEFAULT_BACKUP_DIR, name, db_type)
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    if output == "json":
        emit(rows, output)
        return
    table = [dict(id=r["id"], db=r["db_type"], database=r["database"], size=_size(r["size"]),
                  created=r["created_at"], sha256=r["sha256"][:16]) for r in rows]
    emit(table, output, columns=["id", "db", "database", "size", "created", "sha256"])


def _size(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0


@click.command("restore")
@click.argument("name", callback=rule("project_name"))
@click.option("--backup", "backup_id", callback=_check("backup_id"), metavar="ID",
              help="The backup to restore (default: the newest).")
@click.option("--into", callback=_check("sql_identifier"), metavar="NEW",
              help="Restore into a new database NEW (same owner) instead of replacing the project's.")
@click.option("--db", "db_type", type=DB_CHOICE, help="Which database (default: the project's only one).")
@yes_option("Replace the database of project {name} with a backup (see --into to keep it)?")
@output_option
@run_options
def restore(name, backup_id, into, db_type, output, dry_run, verbose):
    """Restore project NAME's database from a backup, after verifying it."""
    require_project(name)
    result = execute("db_restore", _vars({"backup_project": name, "backup_id": backup_id, "backup_into": into,
                                          "backup_db": db_type}), dry_run=dry_run, verbose=verbose)
    entry = result.outputs.get("backup") or {}
    if dry_run:
        return
    emit({"restored": entry.get("id"), "into": result.outputs.get("database"), "db_type": entry.get("db_type"),
          "created_at": entry.get("created_at")}, output)
