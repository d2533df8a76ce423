#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: app_deployment
short_description: Plan and record a deploy of a project in the lxdctl state store, under the project lock
description:
  - V(begin) takes the project lock (C(project:<name>)), reads the project and its deployments,
    works out what the deploy, rollback, promote or abort does (the plan, RV(plan)) and, for a
    deploy or a rollback, records the new deployment row. In check mode it only plans.
    A failure here releases the lock again.
  - V(update) changes the row's status (C(building), C(deploying)) and commit on the way.
  - V(finish) records the outcome (C(success), or C(deploying) for a live canary) with its
    metadata, marks the deployment that served before as C(rolled_back) where asked, marks rows
    that a killed run left unfinished as C(failed), and releases the lock - in one transaction
    per row, one task.
  - V(fail) records the failure message on the row (if there is one) and releases the lock.
  - A lock whose owner process is dead is taken over at once; one without a live owner expires
    after O(lock_ttl). With O(lock_wait) a held lock is waited for instead of refused.
version_added: "0.2.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
options:
  project:
    description: The project.
    type: str
    required: true
  step:
    description: V(begin), V(update), V(finish) or V(fail).
    type: str
    required: true
    choices: [begin, update, finish, fail]
  action:
    description: With V(begin), what the run does.
    type: str
    default: deploy
    choices: [deploy, rollback, promote, abort]
  strategy:
    description: With V(begin) and V(deploy), how the new release takes over.
    type: str
    default: standard
    choices: [standard, blue_green, canary]
  canary_percent:
    description: The share of requests for a canary, 1-99.
    type: int
    default: 10
  to_version:
    description: With V(rollback), the release to go back to (empty means the previous one).
    type: str
    default: ""
  commit:
    description: With V(begin) and O(auto), the commit asked for; when it already serves, nothing is deployed (RV(skip)).
    type: str
    default: ""
  branch:
    description: With V(begin) and O(auto), the branch pushed to; any other than the project's is refused.
    type: str
    default: ""
  auto:
    description: An automatic deploy (a webhook push or CI), recorded in the row's metadata.
    type: bool
    default: false
  slot_port_offset:
    description: The second slot's port is the app port plus this.
    type: int
    default: 1
  cert_dir:
    description:
      - Where the project's TLS certificate is (for the nginx site in the plan).
      - Falls back to C(nginx.cert_dir) of the platform configuration, then to C(/etc/lxdctl/certs).
    type: path
  id:
    description: With V(update), V(finish) and V(fail), the deployment row.
    type: int
  values:
    description: With V(update) and V(finish), the row's new C(status), C(git_commit) and C(metadata).
    type: dict
    default: {}
  rolled_back_id:
    description: With V(finish), the deployment that served before and is now C(rolled_back).
    type: int
  stale_ids:
    description: With V(finish), rows left unfinished by a killed run, now marked C(failed).
    type: list
    elements: int
    default: []
  error:
    description: With V(fail), the failure message.
    type: str
    default: ""
  actor:
    description: Who the deployments table and the audit log name.
    type: str
    default: ""
  lock_ttl:
    description: Seconds after which the project lock may be taken over even if its owner runs.
    type: int
    default: 1800
  lock_wait:
    description: With V(begin), seconds to wait for a held project lock (0 refuses at once).
    type: int
    default: 0
  owner_pid:
    description: The process that owns the lock (its death frees it).
    type: int
"""

EXAMPLES = r"""
- name: Plan a blue-green deploy and record it
  lxdctl.platform.app_deployment:
    project: myapp
    step: begin
    strategy: blue_green
    owner_pid: 4242
  register: _begin

- name: Record the success and release the lock
  lxdctl.platform.app_deployment:
    project: myapp
    step: finish
    id: "{{ _begin.row.id }}"
    values: {status: success}
    owner_pid: 4242
"""

RETURN = r"""
plan:
  description: With V(begin), the plan - version, deploy_type, target (container, slot, port, release), current, site, stale_ids ...
  returned: when step is begin
  type: dict
row:
  description: The deployment row recorded or updated (empty when there is none).
  returned: always
  type: dict
skip:
  description: With V(begin), true when an automatic deploy's commit already serves (nothing to do; the lock is released).
  returned: when step is begin
  type: bool
"""

import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config
from ansible_collections.lxdctl.platform.plugins.module_utils import _release as rel
from ansible_collections.lxdctl.platform.plugins.module_utils import _state
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service

ROW_VALUES = ("status", "git_commit", "metadata", "error_message")


class DeploymentService(object):
    def __init__(self, module, store):
        self.module = module
        self.store = store
        self.p = module.params
        self.project = self.p["project"]
        self.lock = _state.lock_name_for_project(self.project)
        self.pid = self.p["owner_pid"] or None
        self.host = socket.gethostname()
        self.actor = self.p["actor"] or _state.default_actor()

    def run(self):
        return getattr(self, self.p["step"])()

    # --- the lock -----------------------------------------------------------------------
    def acquire(self):
        deadline = time.monotonic() + max(0, self.p["lock_wait"])
        while True:
            try:
                return self.store.acquire_lock(self.lock, ttl=self.p["lock_ttl"], pid=self.pid, host=self.host)
            except LxdctlError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1)

    def release(self):
        if not self.module.check_mode:
            self.store.release_lock(self.lock, pid=self.pid, host=self.host)

    # --- steps --------------------------------------------------------------------------
    def begin(self):
        p = self.p
        if not 1 <= p["canary_percent"] <= 99:
            raise LxdctlError("canary_percent: must be from 1 to 99, got %d" % p["canary_percent"])
        if p["to_version"]:
            rel.check_version(p["to_version"])
        if p["lock_ttl"] <= 0:
            raise LxdctlError("lock_ttl: must be a positive number of seconds, got %d" % p["lock_ttl"])
        if self.module.check_mode:
            row = self.store.get_lock(self.lock)
            if row is not None and not self.store._lock_stale(row, _state._utcnow(), self.host) \
                    and (row["owner_pid"], row["owner_host"]) != (self.pid, self.host):
                raise _state.lock_held_error(row)
            return dict(changed=False, plan=self.plan(), row={}, skip=False)
        self.acquire()
        try:
            plan = self.plan()
            if p["auto"] and p["branch"] and p["branch"] != plan["git_branch"]:
                raise LxdctlError("deploy_branch: an automatic deploy only deploys the project's branch %s, not %s"
                                  % (plan["git_branch"], p["branch"]))
            if p["auto"] and p["commit"] and p["action"] == "deploy" and plan["current_commit"] \
                    and plan["current_commit"].lower().startswith(p["commit"].lower()):
                self.release()
                return dict(changed=False, plan=plan, row={}, skip=True)
            row = {}
            if p["action"] == "deploy":
                row = self.store.create_deployment(
                    self.project, version=plan["version"], deploy_type=plan["deploy_type"], status="pending",
                    deployed_by=self.actor,
                    metadata=dict(target=plan["target"], strategy=p["strategy"], auto=p["auto"]))
            elif p["action"] == "rollback":
                row = self.store.create_deployment(
                    self.project, version=plan["version"], deploy_type="rollback", status="deploying",
                    git_commit=plan["git_commit"] or None, deployed_by=self.actor,
                    metadata={"target": plan["target"], "from": plan["current"]})
            if row:
                self.store.audit(self.actor, "deployment.create", project=self.project,
                                 detail=dict(id=row["id"], version=row["version"], status=row["status"]))
        except BaseException:
            self.store.release_lock(self.lock, pid=self.pid, host=self.host)
            raise
        return dict(changed=bool(row), plan=plan, row=row, skip=False)

    def plan(self):
        p = self.p
        project = self.store.get_project(self.project)
        if project is None:
            raise LxdctlError("project %s does not exist: create it with `lxdctl create %s`" % (self.project, self.project))
        if project.get("status") != "running":
            raise LxdctlError("project %s is %s, not running: complete it with `lxdctl create %s` first"
                              % (self.project, project.get("status"), self.project))
        rows = self.store.list_deployments(self.project, limit=1000)
        return rel.make_plan(project, rows, p["action"], p["strategy"], p["canary_percent"], p["to_version"],
                             p["slot_port_offset"], rel.site_settings(project, self.cert_dir()))

    def cert_dir(self):
        if self.p["cert_dir"]:
            return self.p["cert_dir"]
        try:
            return _platform_config.section("nginx").get("cert_dir") or "/etc/lxdctl/certs"
        except Exception:  # noqa: BLE001 - an unreadable configuration leaves the default
            return "/etc/lxdctl/certs"

    def _row(self):
        if not self.p["id"]:
            raise LxdctlError("id: the deployment row is needed with step=%s" % self.p["step"])
        row = self.store.get_deployment(self.p["id"])
        if row is None:
            raise LxdctlError("Deployment %s of project %s does not exist in the state" % (self.p["id"], self.project))
        return row

    def _values(self, extra=None):
        values = dict((k, v) for k, v in (self.p["values"] or {}).items() if v is not None and v != "")
        unknown = sorted(set(values) - set(ROW_VALUES))
        if unknown:
            raise LxdctlError("values: unknown field(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(ROW_VALUES)))
        values.update(extra or {})
        return values

    def update(self):
        self._row()
        before, after = self.store.plan_deployment(self.p["id"], **self._values())
        changed = before != after
        row = after
        if changed and not self.module.check_mode:
            row, _ = self.store.update_deployment(self.p["id"], **self._values())
        return dict(changed=changed, row=row, diff=dict(before=_view(before), after=_view(after)))

    def finish(self):
        result = self.update()
        if not self.module.check_mode:
            if self.p["rolled_back_id"]:
                self.store.update_deployment(self.p["rolled_back_id"], status="rolled_back")
            for stale in self.p["stale_ids"]:
                if stale != self.p["id"]:
                    self.store.update_deployment(stale, status="failed",
                                                 error_message="interrupted before it finished (the process was killed or lost)")
            row = result["row"]
            self.store.audit(self.actor, "deployment.update", project=self.project,
                             detail=dict(id=row["id"], status=row["status"]))
        self.release()
        return result

    def fail(self):
        row = {}
        if self.p["id"] and not self.module.check_mode:
            row, _ = self.store.update_deployment(self.p["id"], status="failed", error_message=self.p["error"] or "failed")
            self.store.audit(self.actor, "deployment.update", project=self.project,
                             detail=dict(id=row["id"], status=row["status"]))
        self.release()
        return dict(changed=bool(row), row=row)


def _view(row):
    return dict((k, row.get(k)) for k in ("version", "status", "git_commit", "error_message"))


def argument_spec():
    spec = dict(
        project=dict(type=_names.argspec_project_name, required=True),
        step=dict(type="str", required=True, choices=["begin", "update", "finish", "fail"]),
        action=dict(type="str", default="deploy", choices=["deploy", "rollback", "promote", "abort"]),
        strategy=dict(type="str", default="standard", choices=["standard", "blue_green", "canary"]),
        canary_percent=dict(type="int", default=10),
        to_version=dict(type="str", default=""),
        commit=dict(type="str", default=""),
        branch=dict(type="str", default=""),
        auto=dict(type="bool", default=False),
        slot_port_offset=dict(type="int", default=1),
        cert_dir=dict(type="path"),
        id=dict(type="int"),
        values=dict(type="dict", default={}),
        rolled_back_id=dict(type="int"),
        stale_ids=dict(type="list", elements="int", default=[]),
        error=dict(type="str", default=""),
        actor=dict(type="str", default=""),
        lock_ttl=dict(type="int", default=1800),
        lock_wait=dict(type="int", default=0),
        owner_pid=dict(type="int"),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    # the store is closed however the run ends
    run_service(module, _state.open_from_params, DeploymentService)


if __name__ == "__main__":
    main()
