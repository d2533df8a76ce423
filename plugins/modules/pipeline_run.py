#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pipeline_run
short_description: Start, log and finish a run of a project's pipeline in the lxdctl state store
description:
  - The records of one pipeline run (table C(pipeline_runs)) - its status
    (queued, running, success, failed, cancelled), its log and its facts (branch, commit, trigger,
    stages and their outcome, files kept, environment).
  - O(state=started) takes the run O(run_id) (or queues a new one when O(run_id) is 0) under the
    lock C(pipeline-run:<id>) owned by O(owner_pid), and moves it from queued to running. A run that
    is not queued is never run again (RV(proceed) is false); a run left running by a runner that
    died (its lock is stale) is returned with RV(interrupted) so the caller can clean up after it.
  - O(state=logged) appends O(text) to the log, records O(stage) and merges O(facts).
  - O(state=finished) writes the final status (a run cancelled meanwhile stays cancelled) and the
    closing line, releases the lock, and sends the outcome of a run that succeeded or failed to the
    Slack- and Discord-compatible URLs of the pipeline's config and of O(notify) (a notice that cannot
    be sent is logged, never a failure). Nothing is sent in check mode.
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
options:
  project:
    description: The project (its pipeline is the one named C(default)).
    type: str
    required: true
  state:
    description: What to do with the run (see the description).
    type: str
    choices: [started, logged, finished]
    default: started
  run_id:
    description: The run's id (not its number). 0 with O(state=started) queues a new run.
    type: int
    default: 0
  branch:
    description: The branch of a new run (empty means the pipeline's).
    type: str
    default: ""
  commit:
    description: The commit of a new run (empty means the branch's newest).
    type: str
    default: ""
  only:
    description: Run only these stages (a new run).
    type: list
    elements: str
    default: []
  trigger:
    description: What started a new run, shown by C(lxdctl pipeline runs).
    type: str
    default: ansible-playbook
  owner_pid:
    description: The pid that owns the run's lock (the C(ansible-playbook) process); 0 for a lock by time only.
    type: int
    default: 0
  text:
    description: Text to append to the log.
    type: str
    default: ""
  stage:
    description: A stage record to write, C({name, status}); status running starts its clock.
    type: dict
  facts:
    description: Facts to merge into the run's record; C(files) is appended to.
    type: dict
  status:
    description: The final status, with O(state=finished).
    type: str
    choices: [success, failed, cancelled]
  notify:
    description: Notice URLs of the pipeline file, merged over those of the pipeline's config.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Take the queued run
  lxdctl.platform.pipeline_run:
    project: myapp
    run_id: 12
    owner_pid: "{{ lxdctl_owner_pid | default(0) }}"
  register: run

- name: Log a line
  lxdctl.platform.pipeline_run:
    project: myapp
    run_id: "{{ run.run.id }}"
    state: logged
    text: "source: fetched\n"

- name: Finish it
  lxdctl.platform.pipeline_run:
    project: myapp
    run_id: "{{ run.run.id }}"
    state: finished
    status: success
    owner_pid: "{{ lxdctl_owner_pid | default(0) }}"
"""

RETURN = r"""
run:
  description: The run, C({id, number, status, facts}).
  returned: always
  type: dict
proceed:
  description: With O(state=started), whether the caller runs it now.
  returned: always
  type: bool
interrupted:
  description: With O(state=started), the run was left running by a runner that died.
  returned: always
  type: bool
container:
  description: The run container's name, C(lxdctl-ci-<project>-<number>).
  returned: always
  type: str
project_info:
  description: With O(state=started), the project's runtime, domain, git repository and branch.
  returned: always
  type: dict
pipeline:
  description: With O(state=started), the pipeline file's path, the branch and the image and profile of the run container.
  returned: always
  type: dict
notice:
  description: With O(state=finished), the notice text and one line per URL it went to (sent or why not).
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _notify, _platform_config, _state
from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_run as records
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service

LOCK_TTL = 4 * 3600


class RunService:
    def __init__(self, module, store):
        self.module = module
        self.store = store
        self.params = module.params
        self.project = self.params["project"]
        self.result = dict(changed=False, proceed=False, interrupted=False, run={}, container="", project_info={},
                           pipeline={}, notice={})

    def run(self):
        getattr(self, self.params["state"])()
        return self.result

    def _describe(self, log):
        self.result["run"] = {"id": log.run_id, "number": log.number, "status": log.row["status"], "facts": log.facts}
        self.result["container"] = records.container_name(self.project, log.number)

    # started ---------------------------------------------------------------------------
    def started(self):
        p = self.params
        project = self.store.get_project(self.project)
        if project is None:
            raise LxdctlError("project: %s does not exist in the state (lxdctl create)" % self.project)
        pipeline = self.store.get_pipeline(self.project, records.PIPELINE)
        if pipeline is None:
            raise LxdctlError("project %s has no pipeline (lxdctl pipeline create %s)" % (self.project, self.project))
        run_id = p["run_id"]
        if not run_id:
            if self.module.check_mode:
                self.result["changed"] = True
                return
            facts = {"branch": p["branch"] or None, "commit": p["commit"] or None, "only": p["only"] or None,
                     "trigger": p["trigger"], "stages": [], "files": []}
            run_id = self.store.create_pipeline_run(self.project, records.PIPELINE, status="queued", artifacts=facts)["id"]
            self.result["changed"] = True
        log = records.RunLog(self.store, self.project, run_id, check_mode=self.module.check_mode)
        self._describe(log)
        status = log.row["status"]
        if status not in ("queued", "running"):
            return  # already run, or cancelled: never twice
        if self.module.check_mode:
            self.result["proceed"] = status == "queued"
            return
        try:
            self.store.acquire_lock(records.lock_name(run_id), ttl=LOCK_TTL, pid=p["owner_pid"] or None)
        except LxdctlError:
            return  # held by a live runner: that one runs it
        self.result["changed"] = True
        if status == "running":
            self.result["interrupted"] = True
            return
        log.write("lxdctl pipeline run #%d of %s (%s)\n" % (log.number, self.project, log.facts.get("trigger")))
        log.flush(status="running", started_at=_state._ts(_state._utcnow()))
        log.row["status"] = "running"
        self._describe(log)
        config = pipeline.get("config") or {}
        lxd = (_platform_config.load() or {}).get("lxd") or {}
        runtime = project.get("runtime") or "python"
        self.result["proceed"] = True
        self.result["project_info"] = {"runtime": runtime, "domain": project.get("domain") or "",
                                       "git_repository": project.get("git_repository") or "",
                                       "git_branch": project.get("git_branch") or "main"}
        self.result["pipeline"] = {
            "file": config.get("file") or ".lxdctl.yml",
            "branch": log.facts.get("branch") or config.get("branch") or project.get("git_branch") or "main",
            "commit": log.facts.get("commit") or "",
            "only": log.facts.get("only") or [],
            "image": (lxd.get("images") or {}).get(runtime) or "lxdctl-%s" % runtime,
            "profile": lxd.get("profile") or "lxdctl",
        }

    # logged ----------------------------------------------------------------------------
    def logged(self):
        p = self.params
        log = self._open()
        if p["stage"]:
            stage = p["stage"]
            if stage.get("status") not in ("running", "success", "failed", "timeout", "cancelled"):
                raise ValidationError("stage.status", "must be running, success, failed, timeout or cancelled",
                                      stage.get("status"))
            record = log.stage(_stage_name(stage.get("name")), stage["status"],
                               started=time.time() if stage["status"] == "running" else None)
        for key, value in (p["facts"] or {}).items():
            if key == "files":
                log.facts["files"].extend(value or [])
            elif key in ("environment", "branch", "commit"):
                log.facts[key] = value
            else:
                raise ValidationError("facts.%s" % key, "is not a fact of a run (files, environment, branch, commit)")
        log.write(p["text"])
        if p["stage"] and p["stage"]["status"] != "running":
            log.write("stage %s: %s (%.1fs)\n" % (record["name"], record["status"], record.get("seconds") or 0))
        log.flush()
        self.result["changed"] = True
        self._describe(log)

    # finished --------------------------------------------------------------------------
    def finished(self):
        p = self.params
        if not p["status"]:
            raise ValidationError("status", "is required with state=finished")
        log = self._open()
        final = p["status"]
        if log.status() == "cancelled":
            final = "cancelled"
        for record in log.facts["stages"]:
            if record.get("status") == "running":
                log.stage(record["name"], "cancelled" if final == "cancelled" else "failed")
        log.write(p["text"])
        log.write("run #%d: %s\n" % (log.number, final))
        log.flush(status=final)
        log.row["status"] = final
        if not self.module.check_mode:
            try:
                self.store.release_lock(records.lock_name(log.run_id), pid=p["owner_pid"] or None)
            except LxdctlError:
                pass  # another owner holds it now: not ours to release
        self.result["changed"] = True
        self._describe(log)
        urls = {}
        if final in ("success", "failed"):
            pipeline = self.store.get_pipeline(self.project, records.PIPELINE) or {}
            urls.update((pipeline.get("config") or {}).get("notify") or {})
            urls.update(p["notify"] or {})
        text = _notify.message(self.project, log.number, final, log.facts)
        lines = []
        if urls and not self.module.check_mode:
            lines = _notify.send_all(urls, text)
            log.write("".join(line + "\n" for line in lines), flush=True)
        self.result["notice"] = {"text": text, "lines": lines}

    def _open(self):
        if not self.params["run_id"]:
            raise ValidationError("run_id", "is required with state=%s" % self.params["state"])
        return records.RunLog(self.store, self.project, self.params["run_id"], check_mode=self.module.check_mode)


def _stage_name(value):
    from ansible_collections.lxdctl.platform.plugins.module_utils._pipeline_spec import STAGES

    if value not in STAGES:
        raise ValidationError("stage.name", "must be one of %s" % ", ".join(STAGES), value)
    return value


def argument_spec():
    spec = dict(
        project=dict(type=_names.argspec_project_name, required=True),
        state=dict(type="str", choices=["started", "logged", "finished"], default="started"),
        run_id=dict(type="int", default=0),
        branch=dict(type="str", default=""),
        commit=dict(type="str", default=""),
        only=dict(type="list", elements="str", default=[]),
        trigger=dict(type="str", default="ansible-playbook"),
        owner_pid=dict(type="int", default=0),
        text=dict(type="str", default=""),
        stage=dict(type="dict"),
        facts=dict(type="dict"),
        status=dict(type="str", choices=["success", "failed", "cancelled"]),
        notify=dict(type="dict", default={}),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    # the store is closed however the run ends
    run_service(module, _state.open_from_params, RunService)


if __name__ == "__main__":
    main()
