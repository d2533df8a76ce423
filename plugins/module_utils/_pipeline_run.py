# -*- coding: utf-8 -*-
"""A pipeline run's record in the state store (``pipeline_runs``): its log and its facts.

The modules of the role ``pipeline`` (``pipeline_run``, ``pipeline_step``)
each write to the run through this, so the log's size caps and the shape of the facts
(``artifacts`` JSON: branch, commit, trigger, only, stages, files, environment) are kept in one
place.  Command output stops at ``LOG_CAP`` bytes; lxdctl's own short lines (outcomes, errors)
always fit in a further ``LOG_RESERVE``, so a run that drowned its log still says how it ended.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

PIPELINE = "default"  # one pipeline per project: its row's name in the pipelines table
LOG_CAP = int(os.environ.get("LXDCTL_PIPELINE_LOG_CAP", str(256 * 1024)))
LOG_RESERVE = 64 * 1024
TERMINAL = ("success", "failed", "cancelled")


def lock_name(run_id):
    return "pipeline-run:%d" % int(run_id)


def container_name(project, number):
    return "lxdctl-ci-%s-%d" % (project, int(number))


def find_run(store, project, run_id):
    """The run row ``run_id`` of the project's pipeline, or None."""
    # Rows come with their logs: look among the newest first (the run being run is one of them).
    for limit in (10, 1000000):
        rows = store.list_pipeline_runs(project, PIPELINE, limit=limit)
        for row in rows:
            if row["id"] == int(run_id):
                return row
        if len(rows) < limit:
            return None
    return None


class RunLog:
    """Appends to one run's log and facts; ``flush`` writes them (with any other fields)."""

    def __init__(self, store, project, run_id, check_mode=False):
        self.store = store
        self.project = project
        self.run_id = int(run_id)
        self.check_mode = check_mode
        row = find_run(store, project, run_id)
        if row is None:
            raise LxdctlError("run_id: pipeline run %s of project %s does not exist in the state" % (run_id, project))
        self.row = row
        self.log = row.get("logs") or ""
        self.facts = dict(row.get("artifacts") or {})
        self.facts.setdefault("stages", [])
        self.facts.setdefault("files", [])
        self.written = ""
        self._last_flush = time.monotonic()

    @property
    def number(self):
        return self.row["run_number"]

    def status(self):
        """The run's status now (a ``lxdctl pipeline cancel`` shows here)."""
        row = find_run(self.store, self.project, self.run_id)
        return row["status"] if row else "cancelled"

    def room(self):
        return max(LOG_CAP - len(self.log), 0)

    def write(self, text, output=False, flush=False):
        cap = LOG_CAP if output else LOG_CAP + LOG_RESERVE
        if text and len(self.log) < cap:
            room = cap - len(self.log)
            if len(text) > room:
                text = text[:room] + "\n[log truncated at %d bytes]\n" % cap
            self.log += text
            self.written += text
        if flush or time.monotonic() - self._last_flush > 2:
            self.flush()

    def live(self, tail):
        """Show ``tail`` (the running command's output so far) after the log, without keeping it."""
        if not self.check_mode and tail:
            self.store.update_pipeline_run(self.run_id, logs=self.log + tail)

    def stage(self, name, status, started=None):
        """Record (or update) the stage ``name``; returns its record."""
        for record in self.facts["stages"]:
            if record.get("name") == name:
                break
        else:
            record = {"name": name}
            self.facts["stages"].append(record)
        record["status"] = status
        if started is not None:
            record["started"] = started
        if status != "running" and record.get("started") is not None:
            record["seconds"] = round(time.time() - record["started"], 1)
        return record

    def flush(self, **fields):
        """Write the log and facts (stage records keep their wall-clock ``started``, so a later
        module can time the stage)."""
        self._last_flush = time.monotonic()
        if not self.check_mode:
            self.store.update_pipeline_run(self.run_id, logs=self.log, artifacts=self.facts, **fields)
