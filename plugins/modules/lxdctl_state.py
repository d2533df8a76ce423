#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxdctl_state
short_description: Write rows of the lxdctl state store (projects, databases, DNS records, deployments, env)
description:
  - Creates, updates or removes one entity of a project in the lxdctl state store, the store
    that C(lxdctl list), C(lxdctl status) and C(lxdctl env) read. A project created by
    C(ansible-playbook) or AWX through this module shows up exactly like one made by the CLI.
  - Values are taken literally. Env values with newlines or C({{ }}) are stored as they are and
    never templated.
  - Env values, database passwords and secrets are stored encrypted (AES-256-GCM); the module never
    returns them.
  - Every real change is appended to the audit log, with secret-looking keys redacted.
  - O(records) writes several entities of one project in one call and one transaction (all or
    nothing), e.g. everything a create provisioned plus the final status.
  - O(lock) takes the project lock (V(project:<name>), as M(lxdctl.platform.lxdctl_lock) does) before
    writing, or gives it back after writing, so a playbook needs no separate lock round trips.
version_added: "0.1.0"
options:
  entity:
    description:
      - What to write.
      - V(project) - the project row itself; O(values) holds its fields (C(status), C(runtime),
        C(port), C(domain), C(ssl), C(db_type), C(cache_type), C(cpu), C(memory), C(disk),
        C(container_name), C(container_id), C(address), C(git_repository), C(git_branch),
        C(display_name), C(description), C(spec)). O(state=absent) removes the project and,
        by cascade, everything it owns in the state.
      - V(database) - O(values) needs C(type) and C(name), optionally C(host), C(port),
        C(username), C(connection_string), C(size_mb); the password goes in
        O(secret_values.password).
      - V(dns_record) - O(values) needs C(zone), C(name), C(type), C(content) (not for absent),
        optionally C(ttl) and C(priority).
      - V(deployment) - without C(values.id) a new deployment is recorded (always a change);
        with C(values.id) that deployment is updated (C(status), C(error_message), C(metadata) ...),
        or removed with O(state=absent).
      - V(env) - O(values) and O(secret_values) are variables to set (those in O(secret_values)
        are marked secret); with O(state=absent), the keys of O(values) and O(keys) are removed.
      - One of O(entity) and O(records) is required, unless only O(lock) is given.
    type: str
    choices: [project, database, dns_record, deployment, env]
  project:
    description: The project name (lowercase letters, digits and single hyphens, starting with a letter).
    type: str
    required: true
  values:
    description: The fields of the entity (see O(entity)).
    type: dict
    default: {}
  secret_values:
    description:
      - Sensitive fields, never logged. For O(entity=env), secret variables; for
        O(entity=database), C(password).
    type: dict
    default: {}
  keys:
    description: With O(entity=env) and O(state=absent), the variable names to remove.
    type: list
    elements: str
    default: []
  state:
    description: Whether the entity should exist.
    type: str
    choices: [present, absent]
    default: present
  records:
    description:
      - Several entities of O(project), written in this order in one transaction; if one fails,
        none is written. Mutually exclusive with O(entity).
      - Each item takes O(entity), O(values), O(secret_values), O(keys) and O(state) as described
        for the single-entity form.
      - In check mode, rows that hang off a project that is not in the state yet are reported as
        would-be-created.
    type: list
    elements: dict
    suboptions:
      entity:
        description: What to write (see the top-level O(entity)).
        type: str
        required: true
        choices: [project, database, dns_record, deployment, env]
      values:
        description: The fields of the entity.
        type: dict
        default: {}
      secret_values:
        description: Sensitive fields, never logged.
        type: dict
        default: {}
      keys:
        description: With O(records[].entity=env) and O(records[].state=absent), the variable names to remove.
        type: list
        elements: str
        default: []
      state:
        description: Whether the entity should exist.
        type: str
        choices: [present, absent]
        default: present
  unique_domain:
    description:
      - Refuse a project row whose C(domain) another project already has, in the same transaction
        as the write (so two projects cannot claim one domain at once). Nothing is written then.
    type: bool
    default: false
  lock:
    description:
      - V(acquired) takes the project lock C(project:<project>) before anything is written; a lock
        held by a live owner fails the task with C(project NAME is locked by pid N ...) and nothing
        is written. If the write then fails, a lock taken by this call is given back.
      - V(released) gives the lock back after the write, also when the write fails.
      - In check mode the lock is neither taken nor released; V(acquired) still fails when a live
        owner holds it.
      - Taking or releasing the lock is bookkeeping and never reported as a change.
    type: str
    choices: [acquired, released]
  lock_owner_pid:
    description: The pid that owns the lock (see M(lxdctl.platform.lxdctl_lock) O(lxdctl.platform.lxdctl_lock#module:owner_pid)).
    type: int
  lock_ttl:
    description: Seconds after which the lock may be taken over even if its owner still runs.
    type: int
    default: 1800
  actor:
    description: Who the audit log names. Defaults to E(LXDCTL_ACTOR) or the user running the module.
    type: str
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
author:
  - lxdctl authors
"""

EXAMPLES = r"""
- name: Record the project
  lxdctl.platform.lxdctl_state:
    entity: project
    project: myapp
    values:
      status: creating
      runtime: python
      port: 3000
      domain: myapp.example.com

- name: Record its database (password encrypted at rest)
  lxdctl.platform.lxdctl_state:
    entity: database
    project: myapp
    values: {type: postgresql, name: p_myapp, host: 10.77.0.1, port: 5432, username: p_myapp}
    secret_values:
      password: "{{ _project_db_password }}"

- name: Store the environment
  lxdctl.platform.lxdctl_state:
    entity: env
    project: myapp
    values:
      PORT: "3000"
    secret_values:
      DATABASE_URL: "{{ _project_database_url }}"

- name: Take the project lock and record the project in one call
  lxdctl.platform.lxdctl_state:
    entity: project
    project: myapp
    values: {status: creating, domain: myapp.example.com}
    unique_domain: true
    lock: acquired
    lock_owner_pid: "{{ lxdctl_owner_pid | default(omit) }}"

- name: Record everything at once, mark the project running and give the lock back
  lxdctl.platform.lxdctl_state:
    project: myapp
    records:
      - entity: dns_record
        values: {zone: example.com, name: myapp.example.com, type: A, content: 10.77.0.1}
      - entity: env
        secret_values:
          DATABASE_URL: "{{ _project_database_url }}"
      - entity: project
        values: {status: running}
    lock: released
    lock_owner_pid: "{{ lxdctl_owner_pid | default(omit) }}"
  no_log: true

- name: Forget the project and everything it owns
  lxdctl.platform.lxdctl_state:
    entity: project
    project: myapp
    state: absent
"""

RETURN = r"""
row:
  description: The entity's row after the change (predicted in check mode), without secrets.
    For a database, C(has_password) says whether a password is stored. Absent when removed.
  returned: when O(state=present) and O(entity) is not V(env)
  type: dict
  sample: {"name": "myapp", "status": "running", "runtime": "python", "port": 3000}
env:
  description: The project's variables after the change, names and secret flags only.
  returned: when O(entity=env)
  type: list
  elements: dict
  sample: [{"key": "DATABASE_URL", "is_secret": true}, {"key": "PORT", "is_secret": false}]
changed_keys:
  description: The env variables that were (or would be) set or removed.
  returned: when O(entity=env)
  type: list
  elements: str
diff:
  description: C(before) and C(after) of the entity, without secrets (with O(records), one per record).
  returned: always
  type: dict
records:
  description: With O(records), each record's result (C(changed) and the RV(row), RV(env) or RV(changed_keys) above).
  returned: with O(records)
  type: list
  elements: dict
lock:
  description: The project lock row after the task (empty when released).
  returned: with O(lock)
  type: dict
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _state

ENTITIES = ["project", "database", "dns_record", "deployment", "env"]


def record_spec():
    return dict(
        entity=dict(type="str", required=True, choices=ENTITIES),
        values=dict(type="dict", default={}),
        secret_values=dict(type="dict", default={}, no_log=True),
        keys=dict(type="list", elements="str", default=[], no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def argument_spec():
    spec = dict(record_spec(), entity=dict(type="str", choices=ENTITIES))
    spec.update(
        project=dict(type=argspec_project_name, required=True),
        records=dict(type="list", elements="dict", options=record_spec()),
        unique_domain=dict(type="bool", default=False),
        lock=dict(type="str", choices=["acquired", "released"]),
        lock_owner_pid=dict(type="int"),
        lock_ttl=dict(type="int", default=_state.DEFAULT_LOCK_TTL),
        actor=dict(type="str"),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class StateWriter:
    """Writes one record (entity, values, secret_values, keys, state) of the project."""

    def __init__(self, module, store, record, unique_domain=False):
        self.module = module
        self.store = store
        self.params = record
        self.project = module.params["project"]
        self.values = dict(record.get("values") or {})
        self.secret_values = dict(record.get("secret_values") or {})
        self.unique_domain = unique_domain
        self.actor = module.params["actor"] or _state.default_actor()

    def run(self):
        handler = getattr(self, "%s_%s" % (self.params["entity"], self.params["state"]))
        if (self.module.check_mode and self.params["entity"] != "project"
                and self.store.get_project(self.project) is None):
            return self.planned_under_new_project()
        return handler()

    def planned_under_new_project(self):
        """Check mode, project not in the state yet: a row under it would be created, a removal is a no-op."""
        if self.params["state"] == "absent":
            return dict(changed=False, diff=dict(before={}, after={}))
        if self.params["entity"] == "env":
            keys = sorted(set(self.values) | set(self.secret_values))
            rows = [dict(key=k, is_secret=k in self.secret_values) for k in keys]
            return dict(changed=bool(keys), changed_keys=keys, env=rows,
                        diff=dict(before=dict(env=[]), after=dict(env=rows)))
        return dict(changed=True, row=dict(self.values), diff=dict(before={}, after=dict(self.values)))

    def _audit(self, action, detail):
        if not self.module.check_mode:
            self.store.audit(self.actor, action, self.project, detail)

    def _no_secrets(self, entity):
        if self.secret_values:
            raise LxdctlError("secret_values is not used with entity=%s; put the fields in values" % entity)

    # project -----------------------------------------------------------------------
    def _check_domain(self):
        domain = str(self.values.get("domain") or "").lower().rstrip(".")
        if not (self.unique_domain and domain):
            return
        owners = [p["name"] for p in self.store.list_projects()
                  if p["name"] != self.project and str(p.get("domain") or "").lower().rstrip(".") == domain]
        if owners:
            raise LxdctlError("project_domain: %s is already used by project %s" % (domain, ", ".join(owners)))

    def project_present(self):
        self._no_secrets("project")
        self._check_domain()
        before, after = self.store.plan_project(self.project, **self.values)
        changed = before is None or any(before.get(k) != after.get(k) for k in self.values)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.upsert_project(self.project, **self.values)
            self._audit("project.create" if before is None else "project.update",
                        dict((k, row.get(k)) for k in self.values))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def project_absent(self):
        before = self.store.get_project(self.project)
        if before is not None and not self.module.check_mode:
            self.store.delete_project(self.project)
            self._audit("project.delete", {})
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # database ----------------------------------------------------------------------
    def _database_key(self):
        fields = dict(self.values)
        dtype, name = fields.pop("type", None), fields.pop("name", None)
        if not dtype or not name:
            raise LxdctlError("entity=database needs values.type and values.name")
        return dtype, name, fields

    def database_present(self):
        dtype, name, fields = self._database_key()
        password = self.secret_values.pop("password", None)
        if self.secret_values:
            raise LxdctlError("secret_values of a database takes only password, got %s" % ", ".join(sorted(self.secret_values)))
        before, after, password_changed = self.store.plan_database(self.project, dtype, name, password=password, **fields)
        changed = before is None or password_changed or any(before.get(k) != after.get(k) for k in fields)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.add_database(self.project, dtype, name, password=password, **fields)
            changed = changed or password_changed
            self._audit("database.write", dict(type=dtype, name=name, password_changed=password_changed))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def database_absent(self):
        self._no_secrets("database")
        dtype, name, _fields = self._database_key()
        before = self.store.get_database(self.project, dtype, name)
        if before is not None and not self.module.check_mode:
            self.store.remove_database(self.project, dtype, name)
            self._audit("database.remove", dict(type=dtype, name=name))
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # dns record --------------------------------------------------------------------
    def _dns_args(self, need_content=True):
        fields = dict(self.values)
        missing = [k for k in ("zone", "name", "type") + (("content",) if need_content else ()) if not fields.get(k)]
        if missing:
            raise LxdctlError("entity=dns_record needs values.%s" % ", values.".join(missing))
        unknown = set(fields) - set(["zone", "name", "type", "content", "ttl", "priority"])
        if unknown:
            raise LxdctlError("entity=dns_record: unknown value(s) %s" % ", ".join(sorted(unknown)))
        return fields

    def dns_record_present(self):
        self._no_secrets("dns_record")
        f = self._dns_args()
        args = (self.project, f["zone"], f["name"], f["type"], f["content"], f.get("ttl", 3600), f.get("priority"))
        before, after = self.store.plan_dns_record(*args)
        changed = before is None or any(before.get(k) != after.get(k) for k in ("content", "ttl", "priority"))
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.add_dns_record(*args)
            self._audit("dns_record.write", dict((k, row[k]) for k in ("zone", "name", "type", "content", "ttl")))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def dns_record_absent(self):
        self._no_secrets("dns_record")
        f = self._dns_args(need_content=False)
        zone, name, rtype = self.store._dns_key(f["zone"], f["name"], f["type"])
        existing = [r for r in self.store.list_dns_records(self.project)
                    if (r["zone"], r["name"], r["type"]) == (zone, name, rtype)]
        if existing and not self.module.check_mode:
            self.store.remove_dns_record(self.project, zone, name, rtype)
            self._audit("dns_record.remove", dict(zone=zone, name=name, type=rtype))
        return dict(changed=bool(existing), diff=dict(before=existing[0] if existing else {}, after={}))

    # deployment --------------------------------------------------------------------
    def _deployment(self, deployment_id):
        row = self.store.get_deployment(deployment_id)
        if row is None or row["project_id"] != self.store._project_id(self.project):
            return None
        return row

    def deployment_present(self):
        self._no_secrets("deployment")
        fields = dict(self.values)
        deployment_id = fields.pop("id", None)
        if deployment_id is None:
            if self.module.check_mode:
                _state._normalize(_state.DEPLOYMENT_FIELDS, fields, "deployment field")
                self.store._project_id(self.project)
                return dict(changed=True, row=dict(fields, id=None), diff=dict(before={}, after=fields))
            row = self.store.create_deployment(self.project, **fields)
            self._audit("deployment.create", dict(id=row["id"], version=row["version"], status=row["status"]))
            return dict(changed=True, row=row, diff=dict(before={}, after=row))
        if self._deployment(deployment_id) is None:
            raise LxdctlError("Deployment %s of project %s does not exist in the state" % (deployment_id, self.project))
        before, after = self.store.plan_deployment(deployment_id, **fields)
        changed = any(before.get(k) != after.get(k) for k in after)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.update_deployment(deployment_id, **fields)
            self._audit("deployment.update", dict(id=row["id"], status=row["status"]))
        return dict(changed=changed, row=row, diff=dict(before=before, after=row))

    def deployment_absent(self):
        self._no_secrets("deployment")
        deployment_id = self.values.get("id")
        if deployment_id is None:
            raise LxdctlError("entity=deployment with state=absent needs values.id")
        before = self._deployment(deployment_id)
        if before is not None and not self.module.check_mode:
            self.store.delete_deployment(deployment_id)
            self._audit("deployment.delete", dict(id=before["id"]))
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # env ---------------------------------------------------------------------------
    def _env_rows(self):
        return [dict(key=r["key"], is_secret=r["is_secret"]) for r in self.store.list_env(self.project)]

    def env_present(self):
        both = set(self.values) & set(self.secret_values)
        if both:
            raise LxdctlError("env variable(s) %s are in both values and secret_values" % ", ".join(sorted(both)))
        if self.params["keys"]:
            raise LxdctlError("keys is only used with state=absent; put variables in values or secret_values")
        merged = dict(self.values)
        merged.update(self.secret_values)
        secret_keys = set(self.secret_values)
        before = self._env_rows()
        changed_keys = self.store.plan_env(self.project, merged, secret_keys)
        if changed_keys and not self.module.check_mode:
            changed_keys = self.store.set_env(self.project, merged, secret_keys)
            self._audit("env.set", dict(keys=changed_keys))
            after = self._env_rows()
        else:
            current = dict((r["key"], r) for r in before)
            current.update((k, dict(key=k, is_secret=k in secret_keys)) for k in changed_keys)
            after = [current[k] for k in sorted(current)]
        return dict(changed=bool(changed_keys), changed_keys=changed_keys, env=after,
                    diff=dict(before=dict(env=before), after=dict(env=after)))

    def env_absent(self):
        self._no_secrets("env")
        keys = sorted(set(self.params["keys"]) | set(self.values))
        before = self._env_rows()
        existing = set(r["key"] for r in before)
        removed = [k for k in keys if k in existing]
        for key in keys:
            _state._names.env_key(key, "keys")
        if removed and not self.module.check_mode:
            removed = self.store.unset_env(self.project, removed)
            self._audit("env.unset", dict(keys=removed))
        after = [r for r in before if r["key"] not in removed]
        return dict(changed=bool(removed), changed_keys=removed, env=after,
                    diff=dict(before=dict(env=before), after=dict(env=after)))


class LockKeeper:
    """The project lock around a write: taken before it (O(lock=acquired)) or given back after it."""

    def __init__(self, module, store):
        p = module.params
        self.module = module
        self.store = store
        self.state = p["lock"]
        self.name = _state.lock_name_for_project(p["project"])
        self.pid = p["lock_owner_pid"] or None
        self.host = socket.gethostname()
        self.taken = False

    def before(self):
        if self.state != "acquired":
            return
        if self.module.params["lock_ttl"] <= 0:
            raise LxdctlError("lock_ttl: must be a positive number of seconds, got %d" % self.module.params["lock_ttl"])
        if self.module.check_mode:
            row = self.store.get_lock(self.name)
            mine = row is not None and self.pid is not None and (row["owner_pid"], row["owner_host"]) == (self.pid, self.host)
            if row is not None and not mine and not self.store._lock_stale(row, _state._utcnow(), self.host):
                raise _state.lock_held_error(row)
            return
        _row, self.taken = self.store.acquire_lock(self.name, ttl=self.module.params["lock_ttl"], pid=self.pid,
                                                   host=self.host)

    def after(self, failed):
        if self.module.check_mode:
            return
        if self.state == "released" or (failed and self.taken):
            self.store.release_lock(self.name, pid=self.pid, host=self.host)

    def row(self):
        return self.store.get_lock(self.name) or {}


def write(module, store):
    """Every record of the call, in one transaction, inside the lock handling."""
    p = module.params
    single = p["records"] is None
    records = [dict((k, p[k]) for k in record_spec())] if single else p["records"]
    if single and p["entity"] is None and p["lock"] is None:
        raise LxdctlError("one of entity or records is required (or lock alone)")
    if single and p["entity"] is None:
        records = []
    keeper = LockKeeper(module, store)
    keeper.before()
    failed = True
    try:
        with store.transaction(write=not module.check_mode, what="write the state of project %s" % p["project"]):
            results = [StateWriter(module, store, record, p["unique_domain"]).run() for record in records]
        failed = False
    finally:
        keeper.after(failed)
    if single and results:
        result = results[0]
    else:
        result = dict(changed=any(r["changed"] for r in results), records=results,
                      diff=[r["diff"] for r in results])
    if p["lock"]:
        result["lock"] = keeper.row()
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("entity", "records")])
    try:
        with _state.open_from_params(module.params) as store:
            result = write(module, store)
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
