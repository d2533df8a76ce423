"""``lxdctl reconcile [NAME ...]``: find drift between the state store and the services, and repair it.

It runs ``playbooks/reconcile.yml`` (role ``reconcile``), which converges every chosen
project with role ``project``'s own create and the stored settings.  With ``--dry-run`` that
converge runs in check mode, so the tasks that would change are the drift; without it they
are the repairs.  The run's events say which project each change belongs to; the role's
``set_stats`` lists the orphans.
"""
import os
import re

import click

from lxdctl.execute import PlaybookFailed
from lxdctl.options import output_option, rule, run_options
from lxdctl.output import emit
from lxdctl.progress import Progress

EXIT_IN_SYNC = 0
# Not 2: click exits 2 for bad usage (an invalid NAME), which must not read as drift.
EXIT_DRIFT = 3

# What a changed task of role project touched, by its module.
RESOURCES = {
    "lxd_instance": "container",
    "async_status": "container",
    "command": "container",
    "lxd_file": "env_file",
    "powerdns_record": "dns",
    "powerdns_zone": "dns",
    "nginx_site": "site",
    "acme_certificate": "certificate",
    "postgres_tenant": "postgres",
    "mysql_tenant": "mysql",
    "redis_acl_user": "redis",
    "memcached_instance": "memcached",
    "lxdctl_state": "state",
    "lxdctl_secret": "state",
}


# ansible-runner replaces a no_log task's whole result with {"censored": ...}, "changed"
# included; the line the default callback printed for the event still says it.
_CHANGED_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)*changed: \[", re.MULTILINE)


def event_changed(event, res):
    if res.get("changed"):
        return True
    return bool(res.get("censored")) and bool(_CHANGED_LINE.search(event.get("stdout") or ""))


def resource_of(action):
    return RESOURCES.get((action or "").rsplit(".", 1)[-1], (action or "").rsplit(".", 1)[-1] or "task")


class DriftRecorder(Progress):
    """Progress that also keeps every changed task of role project, per project."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = None
        self.drift = {}

    def handle(self, event):
        kind = event.get("event")
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        if kind in ("runner_on_ok", "runner_item_on_ok"):
            facts = res.get("ansible_facts") or {}
            if kind == "runner_on_ok" and "_reconcile_current_project" in facts:
                self.current = facts["_reconcile_current_project"]
                self.drift.setdefault(self.current, [])
            elif self.current and data.get("role") == "project" and event_changed(event, res):
                found = self.drift[self.current]
                # A loop reports each changed item and then the whole task: one entry per task.
                if not any(item["_uuid"] == data.get("task_uuid") for item in found):
                    found.append(dict(drift_item(data, res), _uuid=data.get("task_uuid")))
        return super().handle(event)

    def drift_of(self):
        return dict((name, [dict((k, v) for k, v in item.items() if k != "_uuid") for item in items])
                    for name, items in self.drift.items())


def drift_item(data, res):
    action = data.get("resolved_action") or data.get("task_action") or ""
    item = {
        "task": data.get("task") or "",
        "module": action.rsplit(".", 1)[-1],
        "resource": resource_of(action),
    }
    diff = res.get("diff")
    if not res.get("censored") and isinstance(diff, dict) and ("before" in diff or "after" in diff):
        item["diff"] = {"before": diff.get("before"), "after": diff.get("after")}
    return item


def build_report(stats, drift, dry_run):
    """The command's result from the role's ``set_stats`` and the recorded drift."""
    summary = stats.get("reconcile") or {}
    projects = []
    for row in summary.get("projects") or []:
        items = drift.get(row["name"], [])
        projects.append(dict(row, drift=items, in_sync=not items, repaired=bool(items) and not dry_run))
    pruned = bool(summary.get("pruned")) and not dry_run
    orphans = [dict(orphan, pruned=pruned) for orphan in summary.get("orphans") or []]
    drifted = any(p["drift"] for p in projects)
    # A repair leaves no drift behind; orphans stay unless pruned.
    left = (dry_run and drifted) or any(not o["pruned"] for o in orphans)
    return {
        "dry_run": dry_run,
        "drift_found": drifted or bool(orphans),
        "in_sync": not left,
        "projects": projects,
        "orphans": orphans,
    }


@click.command()
@click.argument("names", nargs=-1, callback=rule("project_name"), metavar="[NAME]...")
@click.option("--prune-orphans", is_flag=True,
              help="Also remove the orphans found (things named like a project's that no project owns).")
@output_option
@run_options
def reconcile(names, prune_orphans, output, dry_run, verbose):
    """Find drift between the state store and reality, and repair it.

    For each project NAME (default: every project) the project's own create runs again with
    its stored settings: a container deleted or stopped by hand, a DNS record removed or
    changed, an nginx site edited or removed, a database, role or Redis user dropped, or an
    edited env file is put back.  With --dry-run nothing changes and the drift is reported.

    Orphans - containers lxdctl-*, SQL databases and roles p_*, Redis users p-*, A records
    NAME.<zone>, nginx sites and memcached instances with no project in the state - are
    reported, and removed
    only with --prune-orphans, because they may be the data of an interrupted delete.  With
    NAMEs, only orphans named for those projects are looked at.

    \b
    Exit codes:
      0  in sync: nothing found (--dry-run), or everything found was repaired / pruned
      1  error (e.g. a service is down); a rerun after the fault is fixed is safe
      2  bad usage, e.g. an invalid NAME (nothing was run)
      3  drift found by --dry-run, or orphans left (found without --prune-orphans)
    """
    from lxdctl.runner import run_playbook

    extravars = {
        "reconcile_projects": list(names),
        "reconcile_prune_orphans": bool(prune_orphans),
        "lxdctl_owner_pid": os.getpid(),
    }
    recorder = DriftRecorder(enabled=verbose == 0 and output != "json")
    if dry_run:
        click.echo("dry run: nothing will be changed", err=True)
    result = run_playbook("reconcile", extravars, check=dry_run, verbosity=verbose, progress=recorder)
    if not result.ok:
        raise PlaybookFailed(result)
    report = build_report(result.outputs, recorder.drift_of(), dry_run)
    if output == "json":
        emit(report, "json")
    else:
        show(report)
    raise SystemExit(EXIT_IN_SYNC if report["in_sync"] else EXIT_DRIFT)


def show(report):
    verb = "would repair" if report["dry_run"] else "repaired"
    rows = [{"project": p["name"], "resource": d["resource"], "task": d["task"]}
            for p in report["projects"] for d in p["drift"]]
    if rows:
        click.echo("Drift (%s):" % verb)
        emit(rows, "table", columns=["project", "resource", "task"])
    else:
        click.echo("No drift in %d project(s)." % len(report["projects"]))
    if report["orphans"]:
        click.echo("Orphans (%s):" % ("pruned" if any(o["pruned"] for o in report["orphans"])
                                      else "kept; remove them with --prune-orphans"))
        emit(report["orphans"], "table", columns=["kind", "name", "project", "pruned"])
    else:
        click.echo("No orphans.")
